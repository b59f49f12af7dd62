/**
 * The scope locks one batch needs, taken together and waited for together.
 *
 * start() tries to lock every scope of the batch in one call. An event whose scopes are not
 * all held waits; one poller per batch retries the missing scopes (one call per round, for
 * all waiters) until LOCK_WAIT_MS has passed, after which the remaining waiters give up and
 * their events are deferred (retried later without burning an attempt). While waiting, the
 * poller releases scopes this batch has finished with: two invocations that each hold what
 * the other waits for then make progress instead of both timing out.
 */
import type { ScopeLocks } from "../backends/types";

interface Waiter {
  scopes: string[];
  resolve: (ok: boolean) => void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class ScopeGate {
  private held = new Set<string>();
  private readonly remaining = new Map<string, number>();
  private waiters: Waiter[] = [];
  private polling = false;
  private readonly deadline: number;
  private renewTimer: ReturnType<typeof setInterval> | undefined;
  /** Lock calls made (tests and the bench count them). */
  calls = 0;

  constructor(
    private readonly locks: ScopeLocks,
    /** Every scope the batch will run under, once per event that needs it. */
    uses: string[][],
    waitMs: number,
    private readonly leaseMs: number,
    private readonly onError: (e: unknown) => void,
  ) {
    for (const scopes of uses) for (const s of scopes) this.remaining.set(s, (this.remaining.get(s) ?? 0) + 1);
    this.deadline = Date.now() + waitMs;
  }

  async start(): Promise<void> {
    this.calls++;
    this.held = await this.locks.tryAcquire([...this.remaining.keys()]);
    // Long batches keep their leases: renew well before they run out.
    this.renewTimer = setInterval(
      () => {
        if (this.held.size) this.locks.renew([...this.held]).catch(this.onError);
      },
      Math.max(250, Math.floor(this.leaseMs / 3)),
    );
  }

  /** Resolves true once every scope is held by this batch, false when the wait is over. */
  waitFor(scopes: string[]): Promise<boolean> {
    if (scopes.every((s) => this.held.has(s))) return Promise.resolve(true);
    if (Date.now() >= this.deadline) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.waiters.push({ scopes, resolve });
      if (!this.polling) void this.poll();
    });
  }

  /** An event finished with its scopes. */
  done(scopes: string[]): void {
    for (const s of scopes) this.remaining.set(s, (this.remaining.get(s) ?? 1) - 1);
  }

  private async poll(): Promise<void> {
    this.polling = true;
    let interval = 20;
    try {
      while (this.waiters.length) {
        const left = this.deadline - Date.now();
        if (left <= 0) break;
        await sleep(Math.min(interval, left));
        interval = Math.min(interval * 2, 200);
        const finished = [...this.held].filter((s) => (this.remaining.get(s) ?? 0) <= 0);
        if (finished.length) {
          this.calls++;
          await this.locks.release(finished);
          for (const s of finished) this.held.delete(s);
        }
        const missing = [...new Set(this.waiters.flatMap((w) => w.scopes))].filter((s) => !this.held.has(s));
        this.calls++;
        for (const s of await this.locks.tryAcquire(missing)) this.held.add(s);
        this.waiters = this.waiters.filter((w) => {
          const ok = w.scopes.every((s) => this.held.has(s));
          if (ok) w.resolve(true);
          return !ok;
        });
      }
    } catch (e) {
      this.onError(e);
    } finally {
      for (const w of this.waiters) w.resolve(false);
      this.waiters = [];
      this.polling = false;
    }
  }

  /** Releases every scope this batch holds (one call). */
  async close(): Promise<void> {
    clearInterval(this.renewTimer);
    const all = [...this.held];
    this.held.clear();
    if (all.length) {
      this.calls++;
      await this.locks.release(all);
    }
  }
}
