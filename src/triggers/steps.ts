/**
 * Durable steps: ctx.step(name, fn) in every handler.
 *
 *  - The first successful run of a step records its JSON result in Postgres (./step-records.ts)
 *    before ctx.step resolves; a later attempt of the same event (retry, redelivery after a
 *    crash, DLQ retry) gets the recorded result back without running fn. So a crash after a
 *    step resolved never runs that step again, and a retry resumes after the last recorded one.
 *  - Derived events a step publishes (ctx.publish inside fn) are recorded with it and staged
 *    again when it is replayed: a replayed step publishes what its first run did, once the
 *    attempt succeeds, with the same ids.
 *  - A step that throws fails the attempt as any handler error does; it is recorded as failed
 *    (for the event detail) and runs again on the next attempt.
 *  - Names are unique per handler call, and one handler's steps run one at a time (each
 *    awaited before the next starts): a publish during a step belongs to that step.
 *
 * Cost: the batch's recorded steps are read in one statement, the first time a handler of the
 * batch calls ctx.step; records are written as steps finish, those finishing while a write is
 * in flight together in the next statement (group commit), so concurrent handlers share
 * round trips. A batch whose handlers call no step pays nothing.
 */

import type { FencesByEvent } from "../backends/fences";
import type { Db } from "../db/client";
import type { StepRow, StepUsage } from "../db/schema";
import type { EventEnvelope } from "../events/envelope";
import type { Failpoints } from "../failpoints";
import { inc } from "../obs/metrics";
import { completedOf, loadCompleted, recordSteps, type StepRecord } from "./step-records";

/** Largest recorded result (its JSON), bytes: a step result is a value to resume from, not a blob store. */
export const MAX_STEP_RESULT_BYTES = 1024 * 1024;
const MAX_NAME = 200;
const MAX_ERROR = 2000;

export type { StepUsage };

export interface StepOptions<T> {
  /**
   * For a step that calls a model: its model and tokens, recorded with the step (shown in the
   * event detail) and counted in /metrics (reflex_model_tokens_total) when the call ran.
   */
  usage?: (result: T) => StepUsage;
}

const keyOf = (r: { eventId: string; trigger: string; name: string }) =>
  `${r.eventId}\u0000${r.trigger}\u0000${r.name}`;

interface Pending {
  record: StepRecord;
  resolve(row: StepRow): void;
  reject(e: unknown): void;
}

/**
 * The step records of one batch: read once, written in groups. Shared by every handler call
 * of the batch (src/consume/dispatch.ts makes one per batch).
 */
export class StepJournal {
  private loaded: Promise<Map<string, StepRow>> | undefined;
  private queue: Pending[] = [];
  private writing = false;

  constructor(
    private readonly db: Db,
    /** The batch's events that run handlers: their recorded steps are read together. */
    private readonly eventIds: string[],
    /** The scope fences each event runs under: a holder that lost its scope records nothing. */
    private readonly fences?: FencesByEvent,
  ) {}

  /** The completed record of a step, if a former attempt left one. */
  async recorded(eventId: string, trigger: string, name: string): Promise<StepRow | undefined> {
    this.loaded ??= loadCompleted(this.db, this.eventIds).then((rows) => new Map(rows.map((r) => [keyOf(r), r])));
    const p = this.loaded;
    // A failed read must not stick: the next step asks again.
    p.catch(() => {
      if (this.loaded === p) this.loaded = undefined;
    });
    return (await p).get(keyOf({ eventId, trigger, name }));
  }

  /**
   * Writes a record; resolves with the row that stands: the record itself, or the completed
   * row another run wrote first.
   */
  write(record: StepRecord): Promise<StepRow> {
    return new Promise((resolve, reject) => {
      this.queue.push({ record, resolve, reject });
      if (!this.writing) void this.drain();
    });
  }

  /** One statement for everything queued, repeated while records keep arriving. */
  private async drain(): Promise<void> {
    this.writing = true;
    // Records finished in the same turn of the event loop go together.
    await null;
    try {
      while (this.queue.length) {
        const group = this.queue.splice(0);
        try {
          const written = new Map(
            (
              await recordSteps(
                this.db,
                group.map((g) => g.record),
                this.fences,
              )
            ).map((r) => [keyOf(r), r]),
          );
          const lost = group.filter((g) => !written.has(keyOf(g.record))).map((g) => g.record);
          for (const r of await completedOf(this.db, lost)) written.set(keyOf(r), r);
          for (const g of group) {
            const row = written.get(keyOf(g.record));
            if (row) g.resolve(row);
            else if (this.fences?.has(g.record.eventId))
              g.reject(new Error(`step "${g.record.name}" was not recorded: its scope lock passed to a newer holder`));
            else g.reject(new Error(`step "${g.record.name}" was neither recorded nor found`));
          }
        } catch (e) {
          for (const g of group) g.reject(e);
        }
      }
    } finally {
      this.writing = false;
    }
  }
}

/** What a handler call's steps need to know about where they run. */
export interface StepScope {
  journal: StepJournal | undefined;
  eventId: string;
  trigger: string;
  attempt: number;
  failpoints?: Failpoints;
  /**
   * Stages a settled step's derived events, as ctx.publish does. `replayed`: recorded by an
   * earlier attempt, so their numbers (src/consume/derive.ts ids) were not counted in this one yet.
   */
  stage(events: EventEnvelope[], replayed: boolean): void;
}

/** The steps of one handler call: ctx.step, and where its publishes go meanwhile. */
export class HandlerSteps {
  private readonly names = new Set<string>();
  /** The derived events of the step running now, if one is. */
  private open: EventEnvelope[] | undefined;

  constructor(private readonly s: StepScope) {}

  /** Takes a derived event into the running step's record; false when no step runs (stage it directly). */
  capture(e: EventEnvelope): boolean {
    if (!this.open) return false;
    this.open.push(e);
    return true;
  }

  async step<T>(name: string, fn: () => T | Promise<T>, options: StepOptions<Awaited<T>> = {}): Promise<Awaited<T>> {
    const s = this.s;
    if (typeof name !== "string" || name.length === 0 || name.length > MAX_NAME)
      throw new TypeError(`ctx.step: the name must be a string of 1 to ${MAX_NAME} characters`);
    if (!s.journal) throw new Error("ctx.step needs Postgres: the consumer was started without a database (db)");
    if (this.open) throw new Error(`ctx.step("${name}"): another step is running; await each step before the next`);
    if (this.names.has(name))
      throw new Error(`ctx.step("${name}"): a step of this name already ran in this attempt; names must be unique`);
    this.names.add(name);
    this.open = [];
    try {
      const prior = await s.journal.recorded(s.eventId, s.trigger, name);
      if (prior) {
        inc("reflex_steps_total", { outcome: "replayed" });
        return this.settled<Awaited<T>>(prior, true);
      }
      const started = new Date();
      let value: Awaited<T>;
      let json: string | undefined;
      try {
        value = await fn();
        json = JSON.stringify(value);
        // Bytes, as stored: a result too large fails this step (recorded, with why), never the write.
        const bytes = json === undefined ? 0 : new TextEncoder().encode(json).byteLength;
        if (bytes > MAX_STEP_RESULT_BYTES)
          throw new Error(
            `ctx.step("${name}"): the result is ${bytes} bytes of JSON, over the limit of ${MAX_STEP_RESULT_BYTES}`,
          );
      } catch (e) {
        inc("reflex_steps_total", { outcome: "failed" });
        await this.recordFailure(name, started, e);
        throw e;
      }
      const usage = options.usage?.(value);
      const row = await s.journal.write({
        eventId: s.eventId,
        trigger: s.trigger,
        name,
        status: "completed",
        result: json === undefined ? {} : { value: JSON.parse(json) },
        error: null,
        derived: this.open as unknown as Array<Record<string, unknown>>,
        usage: usage ?? null,
        attempt: s.attempt,
        startedAt: started,
        durationMs: Date.now() - started.getTime(),
      });
      inc("reflex_steps_total", { outcome: "ran" });
      if (usage) {
        inc("reflex_model_calls_total", { model: usage.model });
        inc("reflex_model_tokens_total", { model: usage.model, kind: "input" }, usage.input_tokens);
        inc("reflex_model_tokens_total", { model: usage.model, kind: "output" }, usage.output_tokens);
      }
      s.failpoints?.hit("after-step-recorded");
      return this.settled<Awaited<T>>(row, false);
    } finally {
      this.open = undefined;
    }
  }

  /** The recorded outcome: its derived events staged, its result returned (as JSON, the same on every attempt). */
  private settled<T>(row: StepRow, replayed: boolean): T {
    this.s.stage((row.derived ?? []) as unknown as EventEnvelope[], replayed);
    return row.result?.value as T;
  }

  /** Best effort: the attempt fails with the step's own error whether or not this is recorded. */
  private async recordFailure(name: string, started: Date, e: unknown): Promise<void> {
    const s = this.s;
    const error = (e instanceof Error ? e.message || e.name : String(e)).slice(0, MAX_ERROR);
    await s
      .journal!.write({
        eventId: s.eventId,
        trigger: s.trigger,
        name,
        status: "failed",
        result: null,
        error,
        derived: [],
        usage: null,
        attempt: s.attempt,
        startedAt: started,
        durationMs: Date.now() - started.getTime(),
      })
      .catch(() => {});
  }
}
