/**
 * One event's turn in a batch (./dispatch.ts runs it inside the event's scopes):
 *
 *  - `hooks.admit` first: an open circuit breaker defers the whole event, untried;
 *  - then every matching trigger's handler, one after another, highest priority first;
 *  - any handler failed: the joined errors, retried with backoff or the DLQ at the last
 *    attempt. Else a handler threw DeferAttempt (a failed breaker probe): deferred to the
 *    latest time asked, attempt given back. Else completed, with the derived events its
 *    handlers staged through ctx.publish; a failed or deferred event publishes none.
 */

import type { Fence } from "../backends/fences";
import type { ClaimedEvent, Outcome } from "../backends/types";
import type { Clock } from "../clock";
import type { Config, Env } from "../config";
import type { Db } from "../db/client";
import { deliverNow } from "../destinations/runtime";
import { DeferAttempt } from "../errors";
import type { EventEnvelope } from "../events/envelope";
import type { EventRegistry } from "../events/type-registry";
import { CrashInjected, type Failpoints } from "../failpoints";
import type { Logger } from "../obs/log";
import { eventTraceContext, withSpan } from "../obs/trace";
import { fieldAt } from "../triggers/fields";
import type { DispatchHooks } from "../triggers/hooks";
import type { HandlerContext, HistoryQuery, Match } from "../triggers/registry";
import { HandlerSteps, type StepJournal } from "../triggers/steps";
import { derivedIdKey, deriveEvent, UndeclaredDerivedType } from "./derive";
import { completed, deferred, errorMessage, failed } from "./outcomes";
import { scopeHistory } from "./recent-events";

export interface EventDeps {
  hooks?: DispatchHooks;
  clock: Clock;
  config: Config;
  env: Env;
  log: Logger;
  /** The invocation's Postgres: ctx.history reads it. */
  db?: Db;
  /** The batch's step records (ctx.step); absent without a database. */
  steps?: StepJournal;
  /** Crash injection (tests only). */
  failpoints?: Failpoints;
  /** What ctx.publish checks derived events against. */
  eventTypes: EventRegistry;
}

export interface EventResult {
  outcome: Outcome;
  /** Derived events to publish before settling: only a completed event has any. */
  derived: EventEnvelope[];
}

/**
 * `traced`: the batch runs inside a traced invocation, so each handler call gets a span.
 * `fences`: the grants of the event's scopes (ctx.fence of each handler).
 */
export async function runEvent(
  c: ClaimedEvent,
  matches: Match[],
  d: EventDeps,
  traced: boolean,
  fences: readonly Fence[] = [],
): Promise<EventResult> {
  const admitted = d.hooks ? await d.hooks.admit(c, matches) : null;
  if (admitted) return { outcome: deferred(c, admitted.reason, admitted.retryAt), derived: [] };
  const errors: string[] = [];
  const deferrals: DeferAttempt[] = [];
  const staged: EventEnvelope[] = [];
  for (const m of matches) {
    try {
      const fence = fences.find((x) => x.scope === m.scope)?.token ?? 0;
      await callHandler(c, m, handlerContext(c, m, d, staged, fence), traced);
    } catch (e) {
      // An injected crash is the isolate dying here: the whole run stops, nothing is settled.
      if (e instanceof CrashInjected) throw e;
      if (e instanceof DeferAttempt) deferrals.push(e);
      else errors.push(`${m.trigger.name}: ${errorMessage(e)}`);
    }
  }
  if (errors.length) return { outcome: failed(c, errors.join("; "), d.clock.now(), d.config), derived: [] };
  if (deferrals.length) {
    const reason = deferrals.map((x) => x.reason).join("; ");
    const retryAt = new Date(Math.max(...deferrals.map((x) => x.retryAt.getTime())));
    return { outcome: deferred(c, reason, retryAt), derived: [] };
  }
  return { outcome: completed(c), derived: staged };
}

/** Most events ctx.history returns at once. */
const HISTORY_MAX = 100;

/**
 * What one trigger's handler sees; ctx.publish stages into `staged` (through the running
 * step's record when one runs, ../triggers/steps.ts).
 */
function handlerContext(
  c: ClaimedEvent,
  m: Match,
  d: EventDeps,
  staged: EventEnvelope[],
  fence: number,
): HandlerContext {
  // Numbers this trigger's derived events, which makes their ids deterministic (./derive.ts).
  // A replayed step's events keep the numbers they were given, so the count moves past them.
  let seq = 0;
  let log: Logger | undefined;
  const steps = new HandlerSteps({
    journal: d.steps,
    eventId: c.event.id,
    trigger: m.trigger.name,
    attempt: c.attempts,
    failpoints: d.failpoints,
    stage: (events, replayed) => {
      staged.push(...events);
      if (replayed) seq += events.length;
    },
  });
  return {
    event: c.event,
    scope: m.scope,
    fence,
    trigger: m.trigger.name,
    attempt: c.attempts,
    // Made on first use: most handlers never log, and a child logger per handler call costs
    // a measurable share of a batch's CPU time.
    get log() {
      return (log ??= d.log.child({ trigger: m.trigger.name, event_id: c.event.id, scope: m.scope }));
    },
    env: d.env,
    config: d.config,
    publish: async (input) => {
      const declared = m.trigger.publishes;
      if (declared.length && !declared.includes(input.type))
        throw new UndeclaredDerivedType(m.trigger.name, String(input.type), declared);
      const e = await deriveEvent(
        c.event,
        m.trigger.name,
        seq++,
        input,
        d.clock.now(),
        derivedIdKey(d.config),
        d.eventTypes,
      );
      // Inside a step, the step's record takes it and stages it when the step settles.
      if (!steps.capture(e)) staged.push(e);
      return e;
    },
    step: (name, fn, options) => steps.step(name, fn, options),
    history: (q) => history(c.event, q, d.db),
    deliver: async (name, event, o = {}) => {
      if (!d.db) throw new Error("ctx.deliver needs Postgres: the consumer was started without a database (db)");
      const destination = d.config.DESTINATIONS.find((x) => x.name === name);
      if (!destination) return { ok: false, refused: `destination "${name}" is not in DESTINATIONS` };
      return deliverNow({
        db: d.db,
        config: d.config,
        clock: d.clock,
        destination,
        event,
        parent: { id: c.event.id, attempt: c.attempts },
        fence: { scope: m.scope, token: fence },
        ...(o.timeLeftMs !== undefined ? { timeLeftMs: o.timeLeftMs } : {}),
      });
    },
  };
}

async function history(e: EventEnvelope, q: HistoryQuery, db: Db | undefined): Promise<EventEnvelope[]> {
  if (!db) throw new Error("ctx.history needs Postgres: the consumer was started without a database (db)");
  const limit = Math.trunc(q.limit);
  if (!(limit >= 1 && limit <= HISTORY_MAX)) throw new RangeError(`ctx.history: limit must be 1 to ${HISTORY_MAX}`);
  let field: { path: string; equals: string } | undefined;
  if (q.field !== undefined) {
    const equals = fieldAt(e, q.field);
    // This event has no value there: no other event shares it.
    if (equals === undefined) return [];
    field = { path: q.field, equals };
  }
  return scopeHistory(db, {
    source: e.source,
    before: { id: e.id, timestamp: e.timestamp },
    limit,
    ...(field ? { field } : {}),
    ...(q.type ? { type: q.type } : {}),
    ...(q.contains ? { contains: q.contains } : {}),
  });
}

async function callHandler(c: ClaimedEvent, m: Match, ctx: HandlerContext, traced: boolean): Promise<void> {
  if (!traced) {
    await m.trigger.handler(ctx);
    return;
  }
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
