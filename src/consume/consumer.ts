/**
 * The consumer routine. The cron (`scheduled`, the safety net) and the wake-up queue
 * (`queue`, the nudge) both run it; overlapping runs are safe because every claim is
 * exclusive (consumer groups, SKIP LOCKED) and every outcome is recorded only for the
 * consumer that holds the event.
 *
 * One run, under a unique consumer name ("c-<uuid>"):
 *   1. for every lane: first entries whose consumer went silent for VISIBILITY_TIMEOUT_MS
 *      (XAUTOCLAIM), then new ones (XREADGROUP), CONSUMER_BATCH_SIZE at a time;
 *   2. due events from Postgres (retries whose time came, expired Postgres-side claims):
 *      every claim that records a batch in history claims them in the same statement (no
 *      round trip of its own), and once the lanes are drained the run looks once more on
 *      its own unless the last look is fresh (DUE_POLL_MS). This is how retries happen on
 *      time with no new traffic;
 *   3. each batch: claim (recorded as 'processing' in history) -> dispatch (triggers)
 *      -> publish derived events -> settle (outcomes durable in Postgres, then XACK);
 *      the next batch is claimed while this one is dispatched and settled, but batches are
 *      handled one after another, in claim order;
 * until everything is drained, CONSUMER_TIME_BUDGET_MS has passed, or CONSUMER_MAX_BATCHES
 * batches ran (Workers' subrequest limit).
 *
 * Idle consumer names are removed by EventStore.pruneConsumers, which the scheduled DLQ
 * sweeper (src/ops) calls: a consumer must never delete itself while it might still have
 * entries pending.
 */

import type { ClaimResult, EventStore, FilterState, ScopeLocks } from "../backends/types";
import { type Clock, systemClock } from "../clock";
import type { Config, Env } from "../config";
import type { Failpoints } from "../failpoints";
import { createLogger, type Logger } from "../obs/log";
import { withSpan } from "../obs/trace";
import type { DispatchHooks } from "../triggers/hooks";
import type { TriggerRegistry } from "../triggers/registry";
import { dispatch } from "./dispatch";

export interface ConsumerOptions {
  store: EventStore;
  triggers: TriggerRegistry;
  /** Per-batch hooks of declarative triggers (destinations: breaker admission, attempt records). */
  hooks?: DispatchHooks;
  locks: ScopeLocks;
  filterState: FilterState;
  config: Config;
  env: Env;
  clock?: Clock;
  log?: Logger;
  /** Crash injection (tests only). */
  failpoints?: Failpoints;
  /** Lanes to drain; default: the store's shard lanes. A replay job passes its own. */
  lanes?: string[];
  /** Default: "c-<uuid>". */
  name?: string;
  /** Skip Postgres-side due retries (a replay-lane run leaves them to the main consumer). */
  skipDue?: boolean;
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
  /** Settled outcomes that did not apply because another consumer had taken the event over. */
  lost: number;
  lockCalls: number;
  stoppedBy: "drained" | "budget" | "max-batches";
  ms: number;
}

/**
 * A drained run ends only after a look for due events in Postgres at most this old found
 * less than a full batch; older, it looks once more (a statement of its own).
 */
const DUE_POLL_MS = 1_000;

type LaneState = {
  lane: string;
  mode: "reclaim" | "new" | "drained";
  cursor: string;
  /** The in-flight batch whose derived events this lane last waited for. */
  seen?: Promise<number>;
};

export async function runConsumer(o: ConsumerOptions): Promise<RunReport> {
  const cfg = o.config;
  const clock = o.clock ?? systemClock;
  const name = o.name ?? `c-${crypto.randomUUID()}`;
  const log = (o.log ?? createLogger(cfg.LOG_LEVEL)).child({ consumer: name });
  const started = Date.now();
  const report: RunReport = {
    consumer: name,
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
  const lanes: LaneState[] = (o.lanes ?? o.store.lanes()).map((lane) => ({ lane, mode: "reclaim", cursor: "0-0" }));
  const wakeDelays = new Set<number>();

  /** Dispatches and settles one claimed batch; returns how many derived events it published. */
  const handleBatch = async (claim: ClaimResult): Promise<number> => {
    report.batches++;
    report.claimed += claim.events.length;
    report.skipped += claim.skipped.length;
    o.failpoints?.hit("after-persist-before-dispatch");
    const r = await withSpan("dispatch", { "reflex.events": claim.events.length }, () =>
      dispatch(claim.events, {
        triggers: o.triggers,
        hooks: o.hooks,
        locks: o.locks,
        filterState: o.filterState,
        clock,
        config: cfg,
        env: o.env,
        log,
      }),
    );
    report.lockCalls += r.lockCalls;
    // Derived events first: once the parent is settled it is never handled again, so its
    // children must already be durable. (A crash in between republishes the same ids.)
    if (r.derived.length) {
      await o.store.publish(r.derived);
      report.derived += r.derived.length;
    }
    const now = new Date(clock.now());
    // The scope locks are released while the outcomes are recorded (the handlers are done),
    // and both are complete before the next batch is dispatched.
    const [s] = await Promise.all([
      withSpan("settle", { "reflex.outcomes": r.outcomes.length, "reflex.skipped": claim.skipped.length }, () =>
        o.store.settle({ consumer: name, outcomes: r.outcomes, skipped: claim.skipped, now, failpoints: o.failpoints }),
      ),
      r.released,
    ]);
    report.lost += r.outcomes.length - s.recorded;
    for (const x of r.outcomes) {
      if (x.status === "completed") report.completed++;
      else if (x.status === "dlq") report.dlq++;
      else {
        if (x.status === "retry") report.retried++;
        else report.deferred++;
        wakeDelays.add(Math.max(1, Math.ceil((x.retryAt.getTime() - now.getTime()) / 1000)));
      }
    }
    return r.derived.length;
  };

  const outOfTime = () => Date.now() - started >= cfg.CONSUMER_TIME_BUDGET_MS;

  // The batch being handled (dispatch, derived events, settle), if any; resolves to the number
  // of derived events it published, and never rejects (the main loop sees its error).
  let inFlight: Promise<number> | undefined;
  // Set when a batch failed: the run ends, so no further claim is started.
  let stopping = false;

  /**
   * The claims of the run, in order: each lane (reclaim, then new entries; due events ride along),
   * then due events on their own once the lanes are drained.
   * An async generator, so the main loop can ask for the next batch while it still handles
   * the current one (see below); the decisions (lane modes, due polling, budget, batch cap)
   * are taken here, in one place.
   */
  async function* claims(): AsyncGenerator<ClaimResult> {
    // Batches handed out (the cap counts claims, which run one ahead of report.batches).
    let taken = 0;
    // The last look for due events: when, and whether it came back full (more may be due).
    let dueLook = { at: -Infinity, full: false };
    const lookedAtDue = (claimed: number) => {
      dueLook = { at: Date.now(), full: claimed >= cfg.CONSUMER_BATCH_SIZE };
    };
    const dueLookIsFresh = () => !dueLook.full && Date.now() - dueLook.at < DUE_POLL_MS;
    const dueLookFor = () => ({
      max: cfg.CONSUMER_BATCH_SIZE,
      now: new Date(clock.now()),
      leaseMs: cfg.VISIBILITY_TIMEOUT_MS,
    });
    // How many derived events the batch in flight published, once per batch and lane, so
    // that a lane is not read again and again for the same batch.
    const derivedInFlight = async (l: LaneState): Promise<number> => {
      if (!inFlight || l.seen === inFlight) return 0;
      l.seen = inFlight;
      return inFlight;
    };

    for (;;) {
      if (stopping) return;
      if (taken >= cfg.CONSUMER_MAX_BATCHES) {
        report.stoppedBy = "max-batches";
        return;
      }
      if (outOfTime()) {
        report.stoppedBy = "budget";
        return;
      }
      let progressed = false;

      for (const l of lanes) {
        if (stopping) return;
        if (l.mode === "drained" || taken >= cfg.CONSUMER_MAX_BATCHES || outOfTime()) continue;
        const mode = l.mode;
        // claim = read from the lane and persist the batch to history as 'processing', with
        // due events claimed in the same statement
        const claim = await withSpan(
          "claim",
          { "reflex.lane": l.lane, "reflex.mode": mode, "reflex.consumer": name },
          () =>
            o.store.claim({
              lane: l.lane,
              consumer: name,
              max: cfg.CONSUMER_BATCH_SIZE,
              mode,
              reclaimIdleMs: cfg.VISIBILITY_TIMEOUT_MS,
              cursor: l.cursor,
              failpoints: o.failpoints,
              ...(o.skipDue ? {} : { due: dueLookFor() }),
            }),
        );
        if (claim.due !== undefined) lookedAtDue(claim.due);
        if (l.mode === "reclaim") {
          l.cursor = claim.cursor ?? "0-0";
          if (l.cursor === "0-0") l.mode = "new";
        } else if (claim.read === 0 && claim.events.length === 0 && (await derivedInFlight(l)) === 0) {
          // Drained - unless this claim brought due events, or the batch being handled
          // published derived events meanwhile: an empty read then may only mean they were not
          // published yet, and the lane is read again (sequentially, the read came after the
          // publish and would have seen them).
          l.mode = "drained";
        }
        if (claim.read > 0 || claim.events.length > 0) {
          taken++;
          yield claim;
          progressed = true;
        }
      }

      if (!progressed && lanes.every((l) => l.mode === "drained")) {
        // Streams drained: stop once a recent look for due events (with the last claims, or
        // on its own here) found less than a full batch.
        if (o.skipDue || dueLookIsFresh()) return;
        const due = await withSpan("claim_due", { "reflex.consumer": name }, () =>
          o.store.claimDue({ consumer: name, ...dueLookFor() }),
        );
        lookedAtDue(due.read);
        if (due.events.length) {
          taken++;
          yield due;
          // Their handlers may publish derived events: read the lanes again.
          for (const l of lanes) l.mode = "new";
        }
      }
    }
  }

  // Pipelined: the next claim (stream read + persist, or claimDue) is under way while the
  // current batch is dispatched and settled, so those round trips overlap instead of adding
  // up. Handling itself stays strictly one batch at a time, in claim order: a batch's
  // handlers start only after the previous batch settled and released its scope locks, so
  // scope exclusivity and per-scope order are as before. Claims hand out only events this
  // consumer does not already hold (persistClaimed), so an entry repeated in the next batch
  // is acknowledged, not handled twice. The budget and the batch cap are checked before each
  // claim, as before - a claim is now made one batch earlier, so a run may end up to one
  // batch later than the budget.
  const gen = claims();
  let next = gen.next();
  try {
    for (;;) {
      const r = await next;
      if (r.done) break;
      const handling = handleBatch(r.value);
      inFlight = handling.then(
        (derived) => derived,
        () => 0,
      );
      next = gen.next();
      // Handled now, awaited after the batch: a claim failing meanwhile is not "unhandled".
      next.catch(() => {});
      try {
        await handling;
      } catch (e) {
        // A failed batch ends the run; let the claim under way finish first, so that nothing
        // of this run is still running after it returned (its events are reclaimed later).
        stopping = true;
        await next.catch(() => {});
        await gen.return(undefined).catch(() => {});
        throw e;
      }
    }
  } finally {
    // Acknowledgements the store still owes (outcomes already durable), also after a failed
    // batch; if this fails, the entries are reclaimed later and only acknowledged then.
    await o.store
      .flush()
      .catch((e) => log.warn("could not acknowledge the last batches; they will be reclaimed", { error: String(e) }));
    report.ms = Date.now() - started;
  }
  if (wakeDelays.size && o.scheduleWake) {
    await o
      .scheduleWake([...wakeDelays].sort((a, b) => a - b))
      .catch((e) =>
        log.warn("could not schedule a wake-up for retries; the cron will pick them up", { error: String(e) }),
      );
  }
  log.debug("consumer run", { ...report });
  return report;
}
