/**
 * What both FilterState backends share (./redis/filter-state.ts on Redis, ./postgres/filter-state.ts on
 * Postgres): every check made while a batch is matched is queued, and once per microtask
 * round the queue goes out in ONE call - a script, a statement - so stateful filters cost one
 * round trip per batch, not per event. Checks keep the order they were made in (the batch's
 * order), so a rate limit admits a batch's earliest events.
 *
 * A backend supplies the key its state lives under and the call that answers a round.
 */
import type { FilterState } from "./types";

/** One check of a stateful filter. */
export interface Check {
  /** r: rate limit; d: dedupe. */
  op: "r" | "d";
  /** The backend's state key (see stateKey). */
  key: string;
  /** r: max; d: now (consumer clock, ms). */
  a: number;
  /** r: window (key ttl) ms; d: window ms. */
  b: number;
  /** The event's id. */
  member: string;
}

interface Queued extends Check {
  resolve: (ok: boolean) => void;
  reject: (e: unknown) => void;
}

export abstract class BatchedFilterState implements FilterState {
  private queue: Queued[] = [];
  /** Round trips made (for tests and the bench). */
  calls = 0;

  /** The key a filter's state lives under in this backend. */
  protected abstract stateKey(op: Check["op"], key: string): string;
  /** Answers one round of checks, in order: true where the event passes. */
  protected abstract send(batch: Check[]): Promise<boolean[]>;

  rateLimit(key: string, max: number, windowMs: number, eventId: string): Promise<boolean> {
    return this.enqueue("r", key, max, windowMs, eventId);
  }

  dedupe(key: string, windowMs: number, eventId: string, nowMs: number): Promise<boolean> {
    return this.enqueue("d", key, nowMs, windowMs, eventId);
  }

  private enqueue(op: Check["op"], key: string, a: number, b: number, member: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      if (this.queue.length === 0) queueMicrotask(() => void this.flush());
      this.queue.push({ op, key: this.stateKey(op, key), a: Math.floor(a), b: Math.ceil(b), member, resolve, reject });
    });
  }

  private async flush(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    this.calls++;
    try {
      const answers = await this.send(batch);
      for (const [i, c] of batch.entries()) c.resolve(answers[i] === true);
    } catch (e) {
      for (const c of batch) c.reject(e);
    }
  }
}
