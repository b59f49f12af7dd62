/**
 * The claims of one consumer run, in order, and when they stop.
 *
 *  - Lanes are claimed from in order, one claim per lane and round. A lane starts in
 *    "reclaim" (entries whose consumer went silent for VISIBILITY_TIMEOUT_MS, XAUTOCLAIM),
 *    goes on to "new" (XREADGROUP) and ends "drained" when a read comes back empty.
 *  - Due events (retries whose time came, expired Postgres-side claims) ride along: every lane
 *    claim that records a batch in history claims them in the same statement. Once every lane
 *    is drained, the run looks for them on its own unless the last look is fresh (DUE_POLL_MS);
 *    due events found reopen the lanes, as their handlers may publish derived events. This is
 *    how retries happen on time with no new traffic.
 *  - Claims stop at CONSUMER_MAX_BATCHES (Workers' subrequest limit), once
 *    CONSUMER_TIME_BUDGET_MS has passed, after a failed batch (stop()), or when lanes and due
 *    events are drained. Limits are checked before each claim.
 *
 * Only non-empty claims are handed out. The run asks for the next claim while it still handles
 * the current one (./consumer.ts), so a run may end up to one batch past its budget.
 */

import type { ClaimRequest, ClaimResult, EventStore } from "../backends/types";
import type { Clock } from "../clock";
import type { Config } from "../config";
import type { Failpoints } from "../failpoints";
import { withSpan } from "../obs/trace";
import { ClaimSize } from "./claim-size";

/**
 * A drained run ends only after a look for due events in Postgres at most this old found
 * less than a full batch; older, it looks once more (a statement of its own).
 */
const DUE_POLL_MS = 1_000;

export type StopReason = "drained" | "budget" | "max-batches";

export interface ClaimsOptions {
  store: EventStore;
  config: Config;
  clock: Clock;
  consumer: string;
  lanes: string[];
  /** Leave due events to another run. */
  skipDue: boolean;
  /**
   * Which due events: the live ones (default), or the redrive lane's (the replay runner's
   * drain: a DLQ retry-all, behind live traffic).
   */
  dueLane?: "redrive";
  /** Date.now() when the run started: CONSUMER_TIME_BUDGET_MS counts from it. */
  started: number;
  failpoints?: Failpoints;
}

type LaneState = {
  lane: string;
  mode: "reclaim" | "new" | "drained";
  cursor: string;
  /** The in-flight batch whose derived events this lane last waited for. */
  seen?: Promise<number>;
};

export class Claims {
  /** Why the claims stopped (meaningful once next() resolved undefined). */
  stoppedBy: StopReason = "drained";
  /** How many events each claim asks for; the run reports every batch it handled to it. */
  readonly size: ClaimSize;
  private readonly lanes: LaneState[];
  private readonly order: AsyncGenerator<ClaimResult>;
  /** The claim under way, if any. */
  private pending: Promise<ClaimResult | undefined> | undefined;
  /** Claims handed out (the batch cap counts them). */
  private taken = 0;
  /** The last look for due events: when, and whether it came back full (more may be due). */
  private dueLook = { at: -Infinity, full: false };
  /** The size asked of the last look for due events. */
  private dueMax = 0;
  /** The batch being handled: resolves to the derived events it published, never rejects. */
  private inFlight: Promise<number> | undefined;
  /** Set by stop(): no further claim is started. */
  private stopping = false;
  /** The batch being handled: resolves to the due events its settling made due now (ordered scopes' next heads). */
  private woke: Promise<number> | undefined;

  constructor(private readonly o: ClaimsOptions) {
    this.lanes = o.lanes.map((lane) => ({ lane, mode: "reclaim", cursor: "0-0" }));
    this.size = new ClaimSize(o.config, o.started);
    this.order = this.inOrder();
  }

  /** Starts the next claim; resolves to it, or to undefined once the claims stopped. */
  next(): Promise<ClaimResult | undefined> {
    this.pending = this.order.next().then((r) => (r.done ? undefined : r.value));
    return this.pending;
  }

  /**
   * The batch the run is handling now; `derived` resolves to the derived events it published,
   * `woke` to the events it made due now (then the run looks for due events again).
   */
  handling(derived: Promise<number>, woke?: Promise<number>): void {
    this.inFlight = derived;
    this.woke = woke;
  }

  /** After a failed batch: lets the claim under way finish (its events are reclaimed later), starts no other. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.pending?.catch(() => {});
    await this.order.return(undefined).catch(() => {});
  }

  /**
   * The sequence itself. An async generator, so that a claim is started only when the run
   * asks for it, and each resumes where the last one left off (mid-round over the lanes).
   */
  private async *inOrder(): AsyncGenerator<ClaimResult> {
    while (!this.shouldStop()) {
      let progressed = false;
      for (const l of this.lanes) {
        if (this.stopping) return;
        if (l.mode === "drained" || this.taken >= this.o.config.CONSUMER_MAX_BATCHES || this.outOfTime()) continue;
        const claim = await this.claimLane(l, l.mode);
        if (claim.read > 0 || claim.events.length > 0) {
          this.taken++;
          yield claim;
          progressed = true;
        }
      }
      if (!progressed && this.lanes.every((l) => l.mode === "drained")) {
        // Lanes drained: stop once a recent look for due events (with the last claims, or on
        // its own here) found less than a full batch.
        if (this.o.skipDue || (this.dueLookIsFresh() && !(await this.wokeInFlight()))) return;
        const due = await this.lookForDue();
        if (due.events.length) {
          this.taken++;
          yield due;
          // Their handlers may publish derived events: read the lanes again.
          for (const l of this.lanes) l.mode = "new";
        }
      }
    }
  }

  /** Records the stop reason when the batch cap or the time budget is reached. */
  private shouldStop(): boolean {
    if (this.stopping) return true;
    if (this.taken >= this.o.config.CONSUMER_MAX_BATCHES) {
      this.stoppedBy = "max-batches";
      return true;
    }
    if (this.outOfTime()) {
      this.stoppedBy = "budget";
      return true;
    }
    return false;
  }

  private outOfTime(): boolean {
    return Date.now() - this.o.started >= this.o.config.CONSUMER_TIME_BUDGET_MS;
  }

  /**
   * One claim from a lane: read and checked against history (see EventStore.claim), with due events
   * claimed in the same statement. Moves the lane on: reclaim -> new -> drained.
   */
  private async claimLane(l: LaneState, mode: "reclaim" | "new"): Promise<ClaimResult> {
    const cfg = this.o.config;
    const max = this.size.next();
    const backlogUpTo = mode === "reclaim" && l.cursor === "0-0" ? this.size.backlogUpTo() : undefined;
    const claim = await withSpan(
      "claim",
      { "reflex.lane": l.lane, "reflex.mode": mode, "reflex.consumer": this.o.consumer },
      () =>
        this.o.store.claim({
          lane: l.lane,
          consumer: this.o.consumer,
          max,
          mode,
          reclaimIdleMs: cfg.VISIBILITY_TIMEOUT_MS,
          cursor: l.cursor,
          ...(backlogUpTo ? { backlogUpTo } : {}),
          failpoints: this.o.failpoints,
          ...(this.o.skipDue ? {} : { due: this.dueQuery() }),
        }),
    );
    if (claim.due !== undefined) this.lookedAtDue(claim.due);
    if (backlogUpTo) this.size.backlog(claim.backlog);
    if (mode === "reclaim") {
      l.cursor = claim.cursor ?? "0-0";
      if (l.cursor === "0-0") l.mode = "new";
    } else if (claim.read === 0 && claim.events.length === 0 && (await this.derivedInFlight(l)) === 0) {
      // Drained - unless this claim brought due events, or the batch being handled published
      // derived events meanwhile: an empty read then may only mean they were not published
      // yet, and the lane is read again (sequentially, the read came after the publish and
      // would have seen them).
      l.mode = "drained";
    }
    return claim;
  }

  /** Due events on their own, once the lanes are drained (a statement of its own). */
  private async lookForDue(): Promise<ClaimResult> {
    const due = await withSpan("claim_due", { "reflex.consumer": this.o.consumer }, () =>
      this.o.store.claimDue({ consumer: this.o.consumer, ...this.dueQuery() }),
    );
    this.lookedAtDue(due.read);
    return due;
  }

  private dueQuery(): NonNullable<ClaimRequest["due"]> {
    this.dueMax = this.size.next();
    return {
      max: this.dueMax,
      now: new Date(this.o.clock.now()),
      leaseMs: this.o.config.VISIBILITY_TIMEOUT_MS,
      ...(this.o.dueLane ? { lane: this.o.dueLane } : {}),
    };
  }

  /** Stamped when the claim returns, with how many due events it claimed. */
  private lookedAtDue(claimed: number): void {
    this.dueLook = { at: Date.now(), full: claimed >= this.dueMax };
  }

  /** Whether the batch in flight made events due now (asked once per batch). */
  private async wokeInFlight(): Promise<boolean> {
    const w = this.woke;
    this.woke = undefined;
    return w !== undefined && (await w) > 0;
  }

  private dueLookIsFresh(): boolean {
    return !this.dueLook.full && Date.now() - this.dueLook.at < DUE_POLL_MS;
  }

  /**
   * How many derived events the batch in flight published, once per batch and lane, so that a
   * lane is not read again and again for the same batch.
   */
  private async derivedInFlight(l: LaneState): Promise<number> {
    if (!this.inFlight || l.seen === this.inFlight) return 0;
    l.seen = this.inFlight;
    return this.inFlight;
  }
}
