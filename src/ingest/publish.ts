/**
 * Ingest's way into the EventStore: publish (or the guarded publish, for client ids and webhook deliveries),
 * wake the consumer, and turn any store failure into 503 + Retry-After - never a 2xx for
 * an event the store has not confirmed.
 */

import type { EventStore, GuardedEvent, GuardedReceipt, PublishReceipt } from "../backends/types";
import type { Config, Env } from "../config";
import type { EventEnvelope } from "../events/envelope";
import { HTTPProblem } from "../http/problem";
import { createLogger } from "../obs/log";
import { errorSummary, withSpan } from "../obs/trace";
import { afterPublish, wakeAskFailed, wakeOptions } from "./wake";

/** Seconds a client should wait before retrying after a 503. */
export const RETRY_AFTER_S = 2;

export function storeUnavailable(err: unknown, cfg?: Pick<Config, "LOG_LEVEL">): HTTPProblem {
  createLogger(cfg?.LOG_LEVEL).error("event store unavailable", { error: errorSummary(err) });
  return new HTTPProblem(
    503,
    "Event store unavailable",
    "The events could not be confirmed as stored. Retry later; events that carry their own `id` are stored at most once however often they are retried.",
    {
      headers: { "retry-after": String(RETRY_AFTER_S) },
    },
  );
}

export interface IngestContext {
  env: Env;
  cfg: Config;
  store: EventStore;
  waitUntil: (p: Promise<unknown>) => void;
}

export async function publishEvents(ctx: IngestContext, events: EventEnvelope[]): Promise<void> {
  const now = Date.now();
  const opts = wakeOptions(ctx.cfg, now);
  let receipt: PublishReceipt;
  try {
    receipt = await withSpan("publish", { "reflex.events": events.length, "reflex.backend": ctx.store.backend }, () =>
      ctx.store.publish(events, opts),
    );
  } catch (err) {
    wakeAskFailed(ctx.cfg, opts);
    throw storeUnavailable(err, ctx.cfg);
  }
  afterPublish(ctx.env, ctx.cfg, receipt, ctx.waitUntil, now);
}

/**
 * publishGuarded (src/backends/types.ts) with ingest's failure mapping: the verdict of each
 * event; a conflict stored nothing. A store failure is a 503.
 */
export async function publishGuardedEvents(
  ctx: IngestContext,
  items: GuardedEvent[],
  windowS: number,
): Promise<GuardedReceipt> {
  const now = Date.now();
  const opts = wakeOptions(ctx.cfg, now);
  let r: GuardedReceipt;
  try {
    r = await withSpan(
      "publish",
      { "reflex.events": items.length, "reflex.backend": ctx.store.backend, "reflex.dedupe": true },
      () => ctx.store.publishGuarded(items, windowS, opts),
    );
  } catch (err) {
    wakeAskFailed(ctx.cfg, opts);
    throw storeUnavailable(err, ctx.cfg);
  }
  // Nothing stored ran no wake-up gate: let the next request ask.
  if (!r.wake && r.wakeWindowLeftMs === 0) wakeAskFailed(ctx.cfg, opts);
  afterPublish(ctx.env, ctx.cfg, r, ctx.waitUntil, now);
  return r;
}
