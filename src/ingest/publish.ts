/**
 * Ingest's way into the EventStore: publish (or publish-once for webhook deliveries),
 * wake the consumer, and turn any store failure into 503 + Retry-After - never a 2xx for
 * an event the store has not confirmed.
 */
import type { Config, Env } from "../config";
import type { EventEnvelope } from "../events/envelope";
import { HTTPProblem } from "../http/problem";
import type { Dedupe, EventStore } from "../store/types";
import { afterPublish, wakeOptions } from "./wake";

/** Seconds a client should wait before retrying after a 503. */
export const RETRY_AFTER_S = 2;

export function storeUnavailable(err: unknown): HTTPProblem {
  console.error("event store unavailable:", err);
  return new HTTPProblem(503, "Event store unavailable", "The events could not be confirmed as stored. Retry later; events that carry their own `id` are stored at most once however often they are retried.", {
    headers: { "retry-after": String(RETRY_AFTER_S) },
  });
}

export interface IngestContext {
  env: Env;
  cfg: Config;
  store: EventStore;
  waitUntil: (p: Promise<unknown>) => void;
}

export async function publishEvents(ctx: IngestContext, events: EventEnvelope[]): Promise<void> {
  const now = Date.now();
  let receipt;
  try {
    receipt = await ctx.store.publish(events, wakeOptions(ctx.cfg, now));
  } catch (err) {
    throw storeUnavailable(err);
  }
  afterPublish(ctx.env, ctx.cfg, receipt, ctx.waitUntil, now);
}

/** Publishes unless the delivery was seen; returns the id of the event that stands for it. */
export async function publishDelivery(
  ctx: IngestContext,
  event: EventEnvelope,
  dedupe: Dedupe,
): Promise<{ id: string; duplicate: boolean }> {
  const now = Date.now();
  let r;
  try {
    r = await ctx.store.publishOnce(event, dedupe, wakeOptions(ctx.cfg, now));
  } catch (err) {
    throw storeUnavailable(err);
  }
  afterPublish(ctx.env, ctx.cfg, r, ctx.waitUntil, now);
  return r.duplicate ? { id: r.firstId, duplicate: true } : { id: event.id, duplicate: false };
}
