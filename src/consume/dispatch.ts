/**
 * Runs the triggers for one claimed batch and decides every event's outcome.
 *
 *  - An event delivered more than EVENT_MAX_ATTEMPTS times without an outcome (its
 *    consumer kept dying on it) goes to the DLQ without running again.
 *  - No trigger matched: completed. Every matching handler ok: completed (derived events
 *    staged by ctx.publish are returned for publishing). Any failed: the joined errors,
 *    retried with backoff, or the DLQ at the last attempt (./retry.ts).
 *  - Handlers of one event run one after another, highest priority first, each under its
 *    scope. Events sharing a scope run one at a time in stream order (an in-memory chain per
 *    scope), and the scope locks exclude other invocations (./scope-gate.ts). At most
 *    HANDLER_CONCURRENCY events run at once.
 *  - An event whose scope stays locked elsewhere past LOCK_WAIT_MS is deferred: retried
 *    later, attempt not counted. (Order within a scope is therefore arrival order within
 *    a batch, not a global guarantee; exclusivity is.)
 *  - Destinations (src/destinations) are triggers too. Through `hooks` an open circuit
 *    breaker defers an event before any of its handlers run, and a handler throwing
 *    DeferAttempt (a failed breaker probe) defers it unless another handler failed.
 */
import { trace } from "@opentelemetry/api";
import type { ClaimedEvent, FilterState, Outcome, ScopeLocks } from "../backends/types";
import type { Clock } from "../clock";
import type { Config, Env } from "../config";
import { DeferAttempt } from "../errors";
import type { EventEnvelope } from "../events/envelope";
import type { Logger } from "../obs/log";
import { eventTraceContext, withSpan } from "../obs/trace";
import type { DispatchHooks } from "../triggers/hooks";
import type { HandlerContext, Match, TriggerRegistry } from "../triggers/registry";
import { deriveEvent } from "./derive";
import { onFailure } from "./retry";
import { ScopeGate } from "./scope-gate";

export interface DispatchDeps {
  triggers: TriggerRegistry;
  hooks?: DispatchHooks;
  locks: ScopeLocks;
  filterState: FilterState;
  clock: Clock;
  config: Config;
  env: Env;
  log: Logger;
}

export interface DispatchResult {
  /** One per claimed event, in batch order. */
  outcomes: Outcome[];
  /** Derived events of the completed events, to publish before settling. */
  derived: EventEnvelope[];
  /** Scope-lock calls made (for measurement). */
  lockCalls: number;
  /**
   * Resolves once the batch's scope locks are released. Every handler is done when dispatch
   * returns; only the release (one lock call) may still be under way, so that the caller can
   * overlap it with settling. The caller must await it before dispatching another batch
   * (with the same ScopeLocks, a release still in flight could undo the next acquire).
   */
  released: Promise<void>;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message || e.name : String(e);
}

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

export async function dispatch(batch: ClaimedEvent[], d: DispatchDeps): Promise<DispatchResult> {
  const cfg = d.config;
  const outcomes: Outcome[] = new Array(batch.length);
  const derived: EventEnvelope[][] = batch.map(() => []);

  const fail = (i: number, error: string) => {
    const c = batch[i]!;
    const decision = onFailure(c.attempts, d.clock.now(), cfg);
    outcomes[i] =
      decision.status === "dlq"
        ? { receipt: c.receipt, status: "dlq", error, event: c.event, attempts: c.attempts }
        : { receipt: c.receipt, status: "retry", error, retryAt: decision.retryAt };
  };

  const live: number[] = [];
  batch.forEach((c, i) => {
    if (c.attempts > cfg.EVENT_MAX_ATTEMPTS) {
      outcomes[i] = {
        receipt: c.receipt,
        status: "dlq",
        error: `no outcome after ${c.attempts - 1} deliveries (the consumer crashed or timed out while handling it)`,
        event: c.event,
        attempts: c.attempts - 1,
      };
    } else live.push(i);
  });

  const matched = await d.triggers.match(
    live.map((i) => batch[i]!.event),
    { now: d.clock.now(), state: d.filterState },
  );
  const work: Array<{ i: number; matches: Match[]; scopes: string[] }> = [];
  live.forEach((i, k) => {
    const m = matched[k]!;
    if ("error" in m) fail(i, m.error);
    else if (m.length === 0) outcomes[i] = { receipt: batch[i]!.receipt, status: "completed" };
    else work.push({ i, matches: m, scopes: [...new Set(m.map((x) => x.scope))] });
  });
  if (work.length === 0) return { outcomes, derived: [], lockCalls: 0, released: Promise.resolve() };

  // A failed renew or poll is logged; waiters it leaves behind are deferred. The handlers'
  // outcomes stand - aborting the batch would only run them again.
  const gate = new ScopeGate(
    d.locks,
    work.map((w) => w.scopes),
    cfg.LOCK_WAIT_MS,
    cfg.LOCK_LEASE_MS,
    (e) => d.log.error("scope lock call failed", { error: message(e) }),
  );
  const sem = new Semaphore(cfg.HANDLER_CONCURRENCY);
  // withSpan traces only inside a traced invocation (an active span, src/obs/trace.ts). Asked
  // once per batch, so that untraced batches skip the per-handler span arguments - the
  // event's trace context costs a random span id and two regex tests per call.
  const traced = trace.getActiveSpan() !== undefined;

  const runHandlers = async (w: (typeof work)[number]) => {
    const c = batch[w.i]!;
    const defer = (x: { reason: string; retryAt: Date }) => {
      outcomes[w.i] = { receipt: c.receipt, status: "defer", reason: x.reason, retryAt: x.retryAt };
    };
    const admitted = d.hooks ? await d.hooks.admit(c, w.matches) : null;
    if (admitted) return defer(admitted);
    const errors: string[] = [];
    const deferrals: DeferAttempt[] = [];
    const staged: EventEnvelope[] = [];
    for (const m of w.matches) {
      let seq = 0;
      let log: Logger | undefined;
      const ctx: HandlerContext = {
        event: c.event,
        scope: m.scope,
        trigger: m.trigger.name,
        attempt: c.attempts,
        // Made on first use: most handlers never log, and a child logger per handler call
        // was a measurable share of a batch's CPU time.
        get log() {
          return (log ??= d.log.child({ trigger: m.trigger.name, event_id: c.event.id, scope: m.scope }));
        },
        env: d.env,
        config: cfg,
        publish: async (input) => {
          const e = await deriveEvent(c.event, m.trigger.name, seq++, input, d.clock.now());
          staged.push(e);
          return e;
        },
      };
      try {
        if (!traced) await m.trigger.handler(ctx);
        else {
          await withSpan(
            `trigger ${m.trigger.name}`,
            {
              "reflex.event_id": c.event.id,
              "reflex.event_type": c.event.type,
              "reflex.scope": m.scope,
              "reflex.attempt": c.attempts,
            },
            async () => {
              await m.trigger.handler(ctx);
            },
            eventTraceContext(c.event.meta?.trace_id),
          );
        }
      } catch (e) {
        if (e instanceof DeferAttempt) deferrals.push(e);
        else errors.push(`${m.trigger.name}: ${message(e)}`);
      }
    }
    if (errors.length) fail(w.i, errors.join("; "));
    else if (deferrals.length) {
      defer({
        reason: deferrals.map((x) => x.reason).join("; "),
        retryAt: new Date(Math.max(...deferrals.map((x) => x.retryAt.getTime()))),
      });
    } else {
      outcomes[w.i] = { receipt: c.receipt, status: "completed" };
      derived[w.i] = staged;
    }
  };

  let released: Promise<void> = Promise.resolve();
  try {
    await gate.start();
    const tails = new Map<string, Promise<unknown>>();
    const runs = work.map((w) => {
      const before = w.scopes.map((s) => tails.get(s)).filter((p): p is Promise<unknown> => p !== undefined);
      const p = (async () => {
        await Promise.allSettled(before);
        try {
          if (await gate.waitFor(w.scopes)) await sem.run(() => runHandlers(w));
          else {
            const c = batch[w.i]!;
            outcomes[w.i] = {
              receipt: c.receipt,
              status: "defer",
              reason: `scope busy: ${w.scopes.join(", ")}`,
              retryAt: new Date(d.clock.now() + cfg.EVENT_RETRY_BASE_DELAY * 1000),
            };
          }
        } finally {
          gate.done(w.scopes);
        }
      })();
      for (const s of w.scopes) tails.set(s, p);
      return p;
    });
    const settled = await Promise.allSettled(runs);
    const failed = settled.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
  } finally {
    // Not awaited here: see DispatchResult.released. (Marked handled at once, so that an
    // error is seen where it is awaited, not reported as unhandled meanwhile.)
    released = gate.close();
    released.catch(() => {});
    await d.hooks?.flush();
  }
  return { outcomes, derived: derived.flat(), lockCalls: gate.calls, released };
}
