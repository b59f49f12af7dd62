/**
 * The consumer routine. The cron (`scheduled`, the safety net) and the wake-up queue
 * (`queue`, the nudge) both run it; overlapping runs are safe because every claim is
 * exclusive (consumer groups, SKIP LOCKED) and every outcome is recorded only for the
 * consumer that holds the event.
 *
 * One run, under a unique consumer name ("c-<uuid>"):
 *   1. claim the next batch (./claims.ts): the lanes in order, each first its entries whose
 *      consumer went silent, then new ones, with due retries claimed in the same statement;
 *      due retries on their own once the lanes are drained. A claim holds its batch: as
 *      'processing' rows in history (Postgres backend), in a stream's pending-entries list
 *      (Redis; the history row is written at settle);
 *   2. handle it: dispatch (triggers, ./dispatch.ts) -> publish derived events -> settle
 *      (outcomes durable in Postgres, then XACK). The next claim is under way meanwhile, and
 *      the settle overlaps the next batch's dispatch (not with ordered triggers), but handlers
 *      run one batch after another, in claim order;
 *   3. repeat until the claims stop: drained, CONSUMER_TIME_BUDGET_MS passed, or
 *      CONSUMER_MAX_BATCHES batches claimed (Workers' subrequest limit), or a batch failed;
 *   4. finish: send the acknowledgements the store still owes (a failed run too), then
 *      schedule wake-ups for the retries and deferrals it left.
 *
 * Idle consumer names are removed by EventStore.pruneConsumers, which the scheduled DLQ
 * sweeper (src/jobs) calls: a consumer must never delete itself while it might still have
 * entries pending.
 */

import type { ClaimResult, EventStore, FilterState, Outcome, ScopeLocks } from "../backends/types";
import { type Clock, systemClock } from "../clock";
import type { Config, Env } from "../config";
import type { Db } from "../db/client";
import { registry } from "../events/event-types";
import type { EventRegistry } from "../events/type-registry";
import type { Failpoints } from "../failpoints";
import { createLogger, type Logger } from "../obs/log";
import { withSpan } from "../obs/trace";
import type { DispatchHooks } from "../triggers/hooks";
import type { TriggerRegistry } from "../triggers/registry";
import { Claims, type StopReason } from "./claims";
import { type DispatchResult, dispatch } from "./dispatch";
import { Leases } from "./leases";
import { OrderedScopes } from "./ordered-scopes";

export interface ConsumerOptions {
  store: EventStore;
  triggers: TriggerRegistry;
  /** Per-batch hooks of declarative triggers (destinations: breaker admission, attempt records). */
  hooks?: DispatchHooks;
  /** The event types derived events must be (default: the registry ingest validates against). */
  eventTypes?: EventRegistry;
  locks: ScopeLocks;
  filterState: FilterState;
  config: Config;
  env: Env;
  /** The invocation's Postgres: durable steps (ctx.step) and ctx.history. Without it, both throw. */
  db?: Db;
  clock?: Clock;
  log?: Logger;
  /** Crash injection (tests only). */
  failpoints?: Failpoints;
  /** Lanes to drain; default: the store's shard lanes. A replay job passes its own. */
  lanes?: string[];
  /** Default: "c-<uuid>". */
  name?: string;
  /** Skip Postgres-side due retries. */
  skipDue?: boolean;
  /** Claim the redrive lane's due events instead of the live ones (the replay runner's drain). */
  dueLane?: "redrive";
  /** Schedules wake-ups after `delaysSeconds` (retries fall due then); the queue does it in Workers. */
  scheduleWake?: (delaysSeconds: number[]) => Promise<void>;
}

export interface RunReport {
  consumer: string;
  batches: number;
  claimed: number;
  completed: number;
  retried: number;
  deferred: number;
  dlq: number;
  /** Deliveries acknowledged without handling (already final in history, duplicates). */
  skipped: number;
  derived: number;
  /**
   * Claims another consumer had taken over: outcomes that did not apply, and events not run
   * because their claim was found lost before their handlers started.
   */
  lost: number;
  lockCalls: number;
  stoppedBy: StopReason;
  ms: number;
}

export async function runConsumer(o: ConsumerOptions): Promise<RunReport> {
  const run = new ConsumerRun(o);
  try {
    await run.drain();
  } finally {
    await run.finish();
  }
  await run.wakeForRetries();
  run.log.debug("consumer run", { ...run.report });
  return run.report;
}

/** One run of the consumer: the steps of the head comment, one method each. */
class ConsumerRun {
  readonly log: Logger;
  readonly report: RunReport;
  private readonly name: string;
  private readonly cfg: Config;
  private readonly clock: Clock;
  private readonly started = Date.now();
  private readonly claims: Claims;
  /** The leases of the events claimed and not yet settled, renewed while the run holds them. */
  private readonly leases: Leases;
  /** Set when some trigger is ordered (./ordered-scopes.ts). */
  private readonly ordered: OrderedScopes | undefined;
  /** Seconds until each retry or deferral of the run is due: the wake-ups to schedule. */
  private readonly wakeDelays = new Set<number>();

  constructor(private readonly o: ConsumerOptions) {
    this.cfg = o.config;
    this.clock = o.clock ?? systemClock;
    this.name = o.name ?? `c-${crypto.randomUUID()}`;
    this.log = (o.log ?? createLogger(this.cfg.LOG_LEVEL)).child({ consumer: this.name });
    this.report = {
      consumer: this.name,
      batches: 0,
      claimed: 0,
      completed: 0,
      retried: 0,
      deferred: 0,
      dlq: 0,
      skipped: 0,
      derived: 0,
      lost: 0,
      lockCalls: 0,
      stoppedBy: "drained",
      ms: 0,
    };
    this.leases = new Leases({
      store: o.store,
      consumer: this.name,
      leaseMs: this.cfg.VISIBILITY_TIMEOUT_MS,
      clock: this.clock,
      log: this.log,
    });
    this.ordered = OrderedScopes.for(o.triggers, o.db, o.store, this.cfg, this.clock);
    this.claims = new Claims({
      store: o.store,
      config: this.cfg,
      clock: this.clock,
      consumer: this.name,
      lanes: o.lanes ?? o.store.lanes(),
      skipDue: o.skipDue ?? false,
      ...(o.dueLane ? { dueLane: o.dueLane } : {}),
      started: this.started,
      failpoints: o.failpoints,
    });
  }

  /**
   * Claims and handles batches until the claims stop. Pipelined: the next claim (lane read and
   * persist, or the look for due events) is under way while the current batch is dispatched
   * and settled, so their round trips overlap instead of adding up. Handlers run one batch at
   * a time, in claim order: a batch's handlers start only after the previous batch's handlers
   * are done and its scope locks released, so scope exclusivity and per-scope handling order
   * hold. Settles run in claim order too, each after the one before; without ordered triggers
   * a batch's settle runs while the next batch is dispatched (its outcomes are acknowledged
   * only once durable, as ever). With ordered triggers the next batch waits for the settle,
   * as a scope parks or moves on only once its head's outcome is durable. Claims hand out
   * only events this consumer does not already hold, so an entry repeated in the next batch
   * is acknowledged, not handled twice.
   */
  async drain(): Promise<void> {
    /** When the claim under way was asked for: its leases run from then at the latest. */
    let askedAt = Date.now();
    let next = this.claims.next();
    /** The settle of the last batch handled, maybe still under way. */
    let settling: Promise<unknown> = Promise.resolve();
    try {
      for (;;) {
        const batch = await next;
        if (!batch) break;
        this.leases.hold(batch.events, askedAt);
        const handling = this.handle(batch, settling);
        this.claims.handling(
          handling.then(
            (x) => x.derived,
            () => 0,
          ),
          handling.then(
            (x) => x.woke,
            () => 0,
          ),
        );
        askedAt = Date.now();
        next = this.claims.next();
        // Awaited after the batch: a claim failing meanwhile is not "unhandled".
        next.catch(() => {});
        const { settled } = await handling;
        // The batch before's settle, done by now as a rule: a failure ends the run here, so
        // at most one batch was handled past it (its events are reclaimed and handled again).
        await settling;
        settling = settled;
      }
      await settling;
    } catch (e) {
      // A failed claim or batch ends the run, once the settle and the claim under way
      // finished: nothing of this run is still running after it returned (the claimed
      // events are reclaimed later).
      await settling.catch(() => {});
      await this.claims.stop();
      throw e;
    }
  }

  /**
   * One batch: dispatch, publish its derived events, settle (after `previous`, the settle of
   * the batch before). Resolves once the next batch may be dispatched: after the settle, or,
   * without ordered triggers, once the handlers are done and the scope locks released, with
   * the settle still under way in `settled`. Says how many events it derived, and woke
   * (./ordered-scopes.ts).
   */
  private async handle(
    claim: ClaimResult,
    previous: Promise<unknown>,
  ): Promise<{ derived: number; woke: number; settled: Promise<unknown> }> {
    this.report.batches++;
    this.report.claimed += claim.events.length;
    this.report.skipped += claim.skipped.length;
    this.o.failpoints?.hit("after-persist-before-dispatch");
    const began = Date.now();
    const r = await this.dispatch(claim);
    this.report.lockCalls += r.lockCalls;
    // Derived events first: once the parent is settled it is never handled again, so its
    // children must already be durable. A crash in between republishes the same ids.
    if (r.derived.length) {
      await this.o.store.publish(r.derived);
      this.report.derived += r.derived.length;
    }
    // Claims are sized by the handlers' time: the part of a batch the next one waits for (its
    // settle overlaps the next batch).
    this.claims.size.observe(claim.events.length, Date.now() - began);
    const settled = previous.then(() => this.settle(claim, r));
    if (this.ordered) return { derived: r.derived.length, woke: await settled, settled: Promise.resolve() };
    settled.catch(() => {}); // awaited by the caller, after the next batch's dispatch
    try {
      await r.released;
    } catch (e) {
      await settled.catch(() => {});
      throw e;
    }
    return { derived: r.derived.length, woke: 0, settled };
  }

  /** Runs the batch's triggers (./dispatch.ts) and decides every event's outcome. */
  private dispatch(claim: ClaimResult): Promise<DispatchResult> {
    return withSpan("dispatch", { "reflex.events": claim.events.length }, () =>
      dispatch(claim.events, {
        triggers: this.o.triggers,
        hooks: this.o.hooks,
        locks: this.o.locks,
        filterState: this.o.filterState,
        clock: this.clock,
        config: this.cfg,
        env: this.o.env,
        log: this.log,
        db: this.o.db,
        failpoints: this.o.failpoints,
        eventTypes: this.o.eventTypes ?? registry,
        held: (id) => this.leases.held(id),
        ...(this.ordered ? { ordered: this.ordered } : {}),
      }),
    );
  }

  /**
   * Records the outcomes (durable in Postgres, then acknowledged) while the scope locks are
   * released: the handlers are done. The locks are released before the next batch is
   * dispatched (see drain()).
   */
  private async settle(claim: ClaimResult, r: DispatchResult): Promise<number> {
    const now = new Date(this.clock.now());
    const [s] = await Promise.all([
      withSpan("settle", { "reflex.outcomes": r.outcomes.length, "reflex.skipped": claim.skipped.length }, () =>
        this.o.store.settle({
          consumer: this.name,
          outcomes: r.outcomes,
          skipped: claim.skipped,
          now,
          fences: r.fences,
          failpoints: this.o.failpoints,
        }),
      ),
      r.released,
    ]);
    this.leases.release(claim.events.map((c) => c.event.id));
    this.report.lost += r.dropped.length;
    // Ordered scopes move on only once the outcomes are durable.
    const woke = (await this.ordered?.afterSettle(r.outcomes, r.ordered)) ?? 0;
    this.count(r.outcomes, s.recorded, now);
    return woke;
  }

  /** Adds settled outcomes to the report; a retry or deferral adds its wake-up delay. */
  private count(outcomes: Outcome[], recorded: number, now: Date): void {
    this.report.lost += outcomes.length - recorded;
    for (const x of outcomes) {
      if (x.status === "completed") this.report.completed++;
      else if (x.status === "dlq") this.report.dlq++;
      else {
        if (x.status === "retry") this.report.retried++;
        else this.report.deferred++;
        this.wakeDelays.add(Math.max(1, Math.ceil((x.retryAt.getTime() - now.getTime()) / 1000)));
      }
    }
  }

  /**
   * Sends the acknowledgements the store still owes (outcomes already durable), also after a
   * failed batch; if this fails, the entries are reclaimed later and only acknowledged then.
   */
  async finish(): Promise<void> {
    await this.leases.stop();
    await this.o.store
      .flush()
      .catch((e) =>
        this.log.warn("could not acknowledge the last batches; they will be reclaimed", { error: String(e) }),
      );
    this.report.ms = Date.now() - this.started;
    this.report.stoppedBy = this.claims.stoppedBy;
  }

  /** Wake-ups when the run's retries and deferrals fall due, rather than at the next cron tick. */
  async wakeForRetries(): Promise<void> {
    if (!this.wakeDelays.size || !this.o.scheduleWake) return;
    await this.o
      .scheduleWake([...this.wakeDelays].sort((a, b) => a - b))
      .catch((e) =>
        this.log.warn("could not schedule a wake-up for retries; the cron will pick them up", { error: String(e) }),
      );
  }
}
