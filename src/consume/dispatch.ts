/**
 * Runs the triggers for one claimed batch and decides every event's outcome.
 *
 *  - An event delivered more than EVENT_MAX_ATTEMPTS times without an outcome (its
 *    consumer kept dying on it) goes to the DLQ without running again.
 *  - No trigger matched: completed. A filter that throws fails the event's attempt.
 *  - Matched: the event's handlers run under its scopes (./run-event.ts decides the outcome).
 *    Events sharing a scope run one at a time in stream order (an in-memory chain per
 *    scope), and the scope locks exclude other invocations (./scope-gate.ts). At most
 *    HANDLER_CONCURRENCY events run at once.
 *  - An event whose scope stays locked elsewhere past LOCK_WAIT_MS is deferred: retried
 *    later, attempt not counted. (Order within a scope is therefore arrival order within
 *    a batch, not a global guarantee; exclusivity is.)
 *  - Destinations (src/destinations) are triggers too, with per-batch `hooks`: admission
 *    before an event's handlers (./run-event.ts), and `flush` once the batch's handlers are done.
 */
import { trace } from "@opentelemetry/api";
import type { Fence } from "../backends/fences";
import type { ClaimedEvent, FilterState, Outcome, ScopeLocks } from "../backends/types";
import type { EventEnvelope } from "../events/envelope";
import type { Match, TriggerRegistry } from "../triggers/registry";
import { StepJournal } from "../triggers/steps";
import type { OrderedScopes } from "./ordered-scopes";
import { completed, deferred, errorMessage, exhausted, failed } from "./outcomes";
import { type EventDeps, runEvent } from "./run-event";
import { ScopeGate } from "./scope-gate";

export interface DispatchDeps extends EventDeps {
  triggers: TriggerRegistry;
  locks: ScopeLocks;
  filterState: FilterState;
  /** Set when some trigger is ordered: its events run only as their scope's head (./ordered-scopes.ts). */
  ordered?: OrderedScopes;
  /**
   * Whether the consumer still holds an event's claim (./leases.ts), asked as its handlers are
   * about to start. An event it no longer holds is not run: another consumer has it.
   */
  held?: (eventId: string) => Promise<boolean>;
}

export interface DispatchResult {
  /** One per claimed event, in batch order, but for those `dropped`. */
  outcomes: Outcome[];
  /** Events whose claim was lost before their handlers started: not run, no outcome to record. */
  dropped: ClaimedEvent[];
  /** Derived events of the completed events, to publish before settling. */
  derived: EventEnvelope[];
  /** Scope-lock calls made (for measurement). */
  lockCalls: number;
  /** The scope fences each handled event ran under, by event id: settle checks them. */
  fences: Map<string, Fence[]>;
  /**
   * Resolves once the batch's scope locks are released. Every handler is done when dispatch
   * returns; only the release (one lock call) may still be under way, so that the caller can
   * overlap it with settling. The caller must await it before dispatching another batch
   * (with the same ScopeLocks, a release still in flight could undo the next acquire).
   */
  released: Promise<void>;
  /** The batch's events of ordered triggers (./ordered-scopes.ts), for the step after settling. */
  ordered?: Set<string>;
}

/**
 * At most `free` calls of run() at once, the others queued in call order. A dozen lines
 * here rather than a dependency (p-limit): this is all the consumer needs of one.
 */
class Semaphore {
  private waiting: Array<() => void> = [];
  constructor(private free: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((r) => this.waiting.push(r));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}

/** An event that matched triggers, and the scopes its handlers run under. */
interface Work {
  i: number;
  matches: Match[];
  scopes: string[];
}

export async function dispatch(batch: ClaimedEvent[], d: DispatchDeps): Promise<DispatchResult> {
  const outcomes: Outcome[] = new Array(batch.length);
  const live: number[] = [];
  batch.forEach((c, i) => {
    if (c.attempts > d.config.EVENT_MAX_ATTEMPTS) outcomes[i] = exhausted(c);
    else live.push(i);
  });

  const matched = await d.triggers.match(
    live.map((i) => batch[i]!.event),
    { now: d.clock.now(), state: d.filterState, config: d.config },
  );
  let work: Work[] = [];
  live.forEach((i, k) => {
    const m = matched[k]!;
    if ("error" in m) outcomes[i] = failed(batch[i]!, m.error, d.clock.now(), d.config);
    else if (m.length === 0) outcomes[i] = completed(batch[i]!);
    else work.push({ i, matches: m, scopes: [...new Set(m.map((x) => x.scope))] });
  });
  // Ordered triggers' events that are not their scope's head now wait (deferred).
  let ordered: Set<string> | undefined;
  if (d.ordered && work.length) {
    const g = await d.ordered.gate(batch, work);
    for (const [i, o] of g.held) outcomes[i] = o;
    if (g.held.size) work = work.filter((w) => !g.held.has(w.i));
    ordered = g.ordered;
  }
  if (work.length === 0)
    return {
      outcomes,
      dropped: [],
      derived: [],
      lockCalls: 0,
      fences: new Map(),
      released: Promise.resolve(),
      ordered,
    };
  return { ...(await runMatched(batch, work, outcomes, d)), ordered };
}

/**
 * Runs the matched events under their scopes: the batch's scope locks taken together
 * (./scope-gate.ts), one event at a time per scope in batch order, HANDLER_CONCURRENCY at once.
 * Fills in `outcomes` for them.
 */
async function runMatched(
  batch: ClaimedEvent[],
  work: Work[],
  outcomes: Outcome[],
  d: DispatchDeps,
): Promise<DispatchResult> {
  const cfg = d.config;
  const derived: EventEnvelope[][] = batch.map(() => []);
  // A failed renew or poll is logged; waiters it leaves behind are deferred. The handlers'
  // outcomes stand - aborting the batch would only run them again.
  const gate = new ScopeGate(
    d.locks,
    work.map((w) => w.scopes),
    cfg.LOCK_WAIT_MS,
    cfg.LOCK_LEASE_MS,
    (e) => d.log.error("scope lock call failed", { error: errorMessage(e) }),
  );
  const sem = new Semaphore(cfg.HANDLER_CONCURRENCY);
  // The grants each event runs under, taken as it starts (a lock lost later keeps its token).
  const fences = new Map<string, Fence[]>();
  // The batch's durable steps: read once, on the first ctx.step of any of its handlers.
  const steps = d.db
    ? new StepJournal(
        d.db,
        work.map((w) => batch[w.i]!.event.id),
        fences,
      )
    : undefined;
  const deps = { ...d, steps };
  // withSpan traces only inside a traced invocation (an active span, src/obs/trace.ts). Asked
  // once per batch, so that untraced batches skip the per-handler span arguments - the
  // event's trace context costs a random span id and two regex tests per call.
  const traced = trace.getActiveSpan() !== undefined;
  const dropped = new Set<number>();

  const runInScope = async (w: Work) => {
    if (await gate.waitFor(w.scopes)) {
      await sem.run(async () => {
        const c = batch[w.i]!;
        if (d.held && !(await d.held(c.event.id))) {
          dropped.add(w.i);
          return;
        }
        const held = w.scopes.map((scope) => ({ scope, token: d.locks.fence(scope) ?? 0 }));
        fences.set(c.event.id, held);
        const r = await runEvent(c, w.matches, deps, traced, held);
        outcomes[w.i] = r.outcome;
        derived[w.i] = r.derived;
      });
    } else {
      const retryAt = new Date(d.clock.now() + cfg.EVENT_RETRY_BASE_DELAY * 1000);
      outcomes[w.i] = deferred(batch[w.i]!, `scope busy: ${w.scopes.join(", ")}`, retryAt);
    }
  };

  let released: Promise<void> = Promise.resolve();
  try {
    await gate.start();
    // The run of the last event per scope: the next event of that scope waits for it.
    const tails = new Map<string, Promise<unknown>>();
    const runs = work.map((w) => {
      const before = w.scopes.map((s) => tails.get(s)).filter((p): p is Promise<unknown> => p !== undefined);
      const p = (async () => {
        await Promise.allSettled(before);
        try {
          await runInScope(w);
        } finally {
          gate.done(w.scopes);
        }
      })();
      for (const s of w.scopes) tails.set(s, p);
      return p;
    });
    const settled = await Promise.allSettled(runs);
    const rejected = settled.find((r) => r.status === "rejected");
    if (rejected) {
      // A failed batch (an injected crash inside a handler) ends the run: nobody will await
      // the release then, so it is done before the error leaves, with no lock call in flight.
      await gate.close().catch(() => {});
      throw rejected.reason;
    }
  } finally {
    // Not awaited here: see DispatchResult.released. (Marked handled at once, so that an
    // error is seen where it is awaited, not reported as unhandled meanwhile.)
    released = gate.close();
    released.catch(() => {});
    await d.hooks?.flush();
  }
  return {
    outcomes: dropped.size ? outcomes.filter((_, i) => !dropped.has(i)) : outcomes,
    dropped: [...dropped].map((i) => batch[i]!),
    derived: derived.flat(),
    lockCalls: gate.calls,
    fences,
    released,
  };
}
