/**
 * How many events the next claim asks for (CONSUMER_BATCH_ADAPTIVE).
 *
 * A batch's events are all recorded at its settle, so a batch that takes long holds every
 * one of its events back (publish-to-completed latency) and nears the claims' leases; a
 * small batch pays the per-batch round trips for fewer events. The size therefore starts at
 * the most (CONSUMER_BATCH_SIZE, the best for throughput when handlers are quick) and moves
 * additive-increase, multiplicative-decrease between CONSUMER_BATCH_MIN and it: a batch
 * handled in longer than CONSUMER_BATCH_TARGET_MS halves it, a quicker one adds a tenth of
 * the range back. On top, a claim never asks for more than the time left in the invocation
 * can handle at the rate measured so far, so a run ends near its budget instead of a whole
 * batch past it. Fixed (CONSUMER_BATCH_SIZE every time) when adaptive claims are off.
 */
import type { Config } from "../config";

type SizeConfig = Pick<
  Config,
  | "CONSUMER_BATCH_SIZE"
  | "CONSUMER_BATCH_ADAPTIVE"
  | "CONSUMER_BATCH_MIN"
  | "CONSUMER_BATCH_TARGET_MS"
  | "CONSUMER_TIME_BUDGET_MS"
>;

export class ClaimSize {
  private size: number;
  private readonly min: number;
  private readonly max: number;
  /** Smoothed handling time per event, ms (undefined until a batch was measured). */
  private perEventMs: number | undefined;

  constructor(
    private readonly cfg: SizeConfig,
    /** Date.now() when the run started: the budget counts from it. */
    private readonly started: number,
  ) {
    this.max = cfg.CONSUMER_BATCH_SIZE;
    this.min = Math.min(cfg.CONSUMER_BATCH_MIN, this.max);
    this.size = this.max;
  }

  /** The size of the next claim, at `now` (ms, Date.now()). */
  next(now = Date.now()): number {
    if (!this.cfg.CONSUMER_BATCH_ADAPTIVE) return this.max;
    if (this.perEventMs === undefined || this.perEventMs <= 0) return this.size;
    const left = this.cfg.CONSUMER_TIME_BUDGET_MS - (now - this.started);
    const fits = Math.floor(left / this.perEventMs);
    return Math.max(this.min, Math.min(this.size, fits));
  }

  /** A batch of `events` was handled (dispatch to settle) in `ms`. */
  observe(events: number, ms: number): void {
    if (!this.cfg.CONSUMER_BATCH_ADAPTIVE || events <= 0) return;
    const per = ms / events;
    this.perEventMs = this.perEventMs === undefined ? per : 0.7 * this.perEventMs + 0.3 * per;
    if (ms > this.cfg.CONSUMER_BATCH_TARGET_MS) this.size = Math.max(this.min, Math.floor(this.size / 2));
    else this.size = Math.min(this.max, this.size + Math.max(1, Math.ceil((this.max - this.min) / 10)));
  }
}
