/**
 * Crash injection for the crash and reliability tests.
 *
 * A Failpoints object is passed to one consumer instance (never global), so production,
 * which passes none, pays one `undefined` check per point. When a point is armed and
 * reached, `hit()` throws CrashInjected, which aborts the whole consumer run exactly as if
 * the isolate had died there: nothing after it runs (no settle, no XACK, no lock release).
 *
 * The points, in the order a batch passes them:
 *  - "after-claim-before-persist": entries read from the stream (they are in this
 *    consumer's pending list), nothing written to Postgres yet.
 *  - "after-persist-before-dispatch": the batch is claimed (Postgres backend: in history as
 *    'processing'; Redis: checked against history, the stream holds the claim), no handler ran.
 *  - "after-step-recorded": inside a handler, a durable step's record was written
 *    (src/triggers/steps.ts) and the handler has not gone on: the crash between two steps.
 *  - "after-persist-before-ack": the outcomes are durable in Postgres (settled), the stream
 *    entries are not acknowledged yet.
 */
export type Failpoint =
  | "after-claim-before-persist"
  | "after-persist-before-dispatch"
  | "after-step-recorded"
  | "after-persist-before-ack";

/** `true`: crash the first time the point is reached; n: crash the n-th time (1-based). */
export type FailpointSpec = Partial<Record<Failpoint, true | number>>;

/** Thrown by Failpoints.hit(): the consumer run stops there as if the isolate had died. */
export class CrashInjected extends Error {
  constructor(readonly point: Failpoint) {
    super(`crash injected at ${point}`);
    this.name = "CrashInjected";
  }
}

export class Failpoints {
  private readonly seen = new Map<Failpoint, number>();
  constructor(private readonly spec: FailpointSpec) {}

  /** Throws CrashInjected if `point` is armed for this passage. */
  hit(point: Failpoint): void {
    const arm = this.spec[point];
    if (arm === undefined) return;
    const n = (this.seen.get(point) ?? 0) + 1;
    this.seen.set(point, n);
    if (arm === true ? n === 1 : n === arm) throw new CrashInjected(point);
  }
}
