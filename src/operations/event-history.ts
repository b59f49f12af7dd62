/**
 * Event history as an operator reads it, from the admin API (src/admin/history-routes.ts)
 * and the dashboard alike: one event's detail (attempts, delivery attempts, steps, the
 * stream's claim while in flight), pages of history, and what is in flight now.
 * On the Redis backend an event in flight has no history row until its outcome: its detail
 * and the in-flight list come from the stream's pending-entries list (./in-flight.ts).
 */
import { openBackend, openCache } from "../backends";
import type { StepRow } from "../db/schema";
import { deliveryAttemptsFor } from "../destinations/delivery-records";
import type { EventEnvelope } from "../events/envelope";
import { HTTPProblem } from "../http/problem";
import { type EventView, getEvent, type HistoryFilter, listEvents } from "../reads/event-queries";
import { stepsOfEvent } from "../triggers/step-records";
import { byId, type RequestScope, UUID_RE, withDb } from "./db-scope";
import { type InFlightView, inFlightEvents, streamClaimOf } from "./in-flight";

export const eventNotFound = (id: string) => new HTTPProblem(404, "Event not found", `No event with id ${id}.`);

/** Statuses nothing moves an event out of (see the event-detail cache below). */
const FINAL = new Set(["completed", "discarded"]);

/**
 * What the handling attempts did, from the history row: every failed attempt with its error
 * (attempt numbers restart after a DLQ redrive), then the outcome of the latest one when it
 * did not fail. (HTTP deliveries to destinations are listed apart, in delivery_attempts.)
 */
export function attemptHistory(e: EventView) {
  const out: Array<{ attempt: number; outcome: string; error?: string; at?: string | null }> = e.errors.map((x) => ({
    attempt: x.attempt,
    outcome: "failed",
    error: x.error,
    at: x.at,
  }));
  if (e.status === "completed") out.push({ attempt: e.attempts, outcome: "completed", at: e.processed_at });
  if (e.status === "processing") out.push({ attempt: e.attempts, outcome: "in_progress", at: e.updated_at });
  return out;
}

/** The event's durable steps, and the tokens its model calls used, summed by model. */
function stepsView(rows: StepRow[]) {
  const usage = new Map<string, { model: string; calls: number; input_tokens: number; output_tokens: number }>();
  for (const r of rows) {
    if (!r.usage || r.status !== "completed") continue;
    const u = usage.get(r.usage.model) ?? { model: r.usage.model, calls: 0, input_tokens: 0, output_tokens: 0 };
    u.calls++;
    u.input_tokens += r.usage.input_tokens;
    u.output_tokens += r.usage.output_tokens;
    usage.set(u.model, u);
  }
  return {
    steps: rows.map((r) => ({
      trigger: r.trigger,
      name: r.name,
      status: r.status,
      attempt: r.attempt,
      duration_ms: r.durationMs,
      started_at: r.startedAt.toISOString(),
      ...(r.error !== null ? { error: r.error } : {}),
      ...(r.usage ? { usage: r.usage } : {}),
    })),
    usage: [...usage.values()],
  };
}

/** The detail of an event whose only record is its stream claim (no history row before the outcome). */
function inFlightDetail(event: EventEnvelope, claim: InFlightView): EventView & { derived: [] } {
  return {
    ...event,
    status: "processing",
    attempts: claim.deliveries,
    last_error: null,
    errors: [],
    next_retry_at: null,
    created_at: claim.since,
    updated_at: claim.since,
    processed_at: null,
    discard_reason: null,
    derived: [],
  };
}

/**
 * One event: envelope, status, attempts, errors, attempt history, delivery attempts, steps
 * and model usage; `in_flight` while a stream holds its claim. Read from the hot cache when
 * it holds the event (`cached: true`); the event-not-found problem when nothing knows it.
 */
export async function eventDetail(c: RequestScope, id: string): Promise<Record<string, unknown>> {
  if (!UUID_RE.test(id)) throw eventNotFound(id);
  const cfg = c.var.config;
  const cache = openCache(cfg);
  const cached = await cache.get<Record<string, unknown>>(`event:${id}`);
  if (cached) return { ...cached, cached: true };
  const found = await byId(
    c,
    "read",
    id,
    async (db) => {
      const row = await getEvent(db, id);
      // No row, or a 'processing' one: the stream may hold the claim (Redis backend).
      const claim = !row || row.status === "processing" ? await streamClaimOf(openBackend(cfg).store, id) : null;
      const e = row ?? (claim ? inFlightDetail(claim.event, claim.view) : null);
      if (!e) return null;
      return {
        e,
        claim: claim?.view ?? null,
        deliveries: await deliveryAttemptsFor(db, id),
        steps: await stepsOfEvent(db, id),
      };
    },
    eventNotFound,
  );
  const { e, claim, deliveries, steps } = found;
  if (claim) e.attempts = Math.max(e.attempts, claim.deliveries);
  const view = {
    ...e,
    ...(claim
      ? {
          in_flight: {
            consumer: claim.consumer,
            deliveries: claim.deliveries,
            since: claim.since,
            lane: claim.lane,
            entry_id: claim.entry_id,
          },
        }
      : {}),
    attempt_history: attemptHistory(e),
    delivery_attempts: deliveries,
    ...stepsView(steps),
  } as unknown as Record<string, unknown>;
  // Only final states are cached: nothing changes a completed or discarded event's status,
  // so a cached detail can never show a stale status (pending, processing and dlq all move).
  if (FINAL.has(String(e.status))) await cache.set(`event:${id}`, view, cfg.CACHE_EVENT_TTL_S);
  return { ...view, cached: false };
}

/** A page of history (src/reads/event-queries.ts listEvents) on a read handle. */
export function eventHistory(c: RequestScope, f: HistoryFilter, page: Parameters<typeof listEvents>[2]) {
  return withDb(c, "read", (db) => listEvents(db, f, page));
}

/** Everything in flight, oldest delivery first, at most `limit` (./in-flight.ts). */
export function eventsInFlight(c: RequestScope, limit: number) {
  return withDb(c, "read", (db, cfg) => inFlightEvents(openBackend(cfg).store, db, limit));
}
