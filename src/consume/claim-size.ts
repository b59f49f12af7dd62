/**
 * How many events the next claim asks for (CONSUMER_BATCH_ADAPTIVE).
 *
 * A batch's events are all recorded at its settle, so a batch that takes long holds every
 * one of its events back (publish-to-completed latency) and nears the claims' leases; a
 * small batch pays the per-batch round trips for fewer events. The size therefore starts
 * from the backlog the run found waiting (Claims reports the lanes' backlog before their
 * first read): an eighth of it, between CONSUMER_BATCH_MIN and CONSUMER_BATCH_SIZE. A large
 * backlog is drained at full size from the first claim, as its newest events wait for all
 * of it anyway; a small one is drained oldest first in small batches that double, so the
 * events that waited longest for the run are recorded soonest, at a cost of a few claims.
 * With no backlog known (a backend that cannot tell it cheaply), it starts at the most.
 *
 * From there it moves additive-increase, multiplicative-decrease (after a slow start that
 * doubles until the first slow batch): a batch handled in longer than
 * CONSUMER_BATCH_TARGET_MS halves it, a quicker one adds a tenth of the range back. On top,
 * a claim never asks for more than the time left in the invocation can handle at the rate
 * measured so far, so a run ends near its budget instead of a whole batch past it. Fixed
 * (CONSUMER_BATCH_SIZE every time) when adaptive claims are off.
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

/** The first claim asks for this share of the backlog: a backlog is at most ~log2(8) claims more than at full size. */
const START_SHARE = 8;

export class ClaimSize {
  private size: number;
  private readonly min: number;
  private readonly max: number;
  /** Smoothed handling time per event, ms (undefined until a batch was measured). */
  private perEventMs: number | undefined;
  /** Entries waiting in the lanes reported so far; undefined once one lane could not tell. */
  private waiting: number | undefined = 0;
  /** Doubling after quick batches, until the first slow one. */
  private slowStart = true;

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

  /** How far a lane's backlog is worth counting for backlog(): beyond it the start is the most; undefined once not needed. */
  backlogUpTo(): number | undefined {
    if (!this.cfg.CONSUMER_BATCH_ADAPTIVE || this.perEventMs !== undefined) return undefined;
    return this.max * START_SHARE;
  }

  /**
   * A lane's entries waiting to be read (undefined: the backend does not know). Sets the start
   * size; ignored once a batch was handled.
   */
  backlog(entries: number | undefined): void {
    if (!this.cfg.CONSUMER_BATCH_ADAPTIVE || this.perEventMs !== undefined) return;
    this.waiting = entries === undefined || this.waiting === undefined ? undefined : this.waiting + entries;
    this.size =
      this.waiting === undefined
        ? this.max
        : Math.max(this.min, Math.min(this.max, Math.ceil(this.waiting / START_SHARE)));
  }

  /** A batch of `events` was handled (its handlers run and derived events published) in `ms`. */
  observe(events: number, ms: number): void {
    if (!this.cfg.CONSUMER_BATCH_ADAPTIVE || events <= 0) return;
    const per = ms / events;
    this.perEventMs = this.perEventMs === undefined ? per : 0.7 * this.perEventMs + 0.3 * per;
    if (ms > this.cfg.CONSUMER_BATCH_TARGET_MS) {
      this.slowStart = false;
      this.size = Math.max(this.min, Math.floor(this.size / 2));
    } else {
      const grown = this.slowStart ? this.size * 2 : this.size + Math.max(1, Math.ceil((this.max - this.min) / 10));
      this.size = Math.min(this.max, grown);
    }
  }
}
