/**
 * Admin routes over event history and the DLQ (all behind adminAuth):
 *
 *   GET    /events/dlq?limit=&type=&source=     {count, events}
 *   POST   /events/dlq/retry   {all: true} | {type?, source?}  {count}   (a filter, or `all` for every DLQ event)
 *   POST   /events/dlq/{id}/retry                {id, status, next_retry_at}; 404 when not in the DLQ
 *   DELETE /events/dlq/{id}    {reason}          the event, status 'discarded'; 404 when not in the DLQ
 *   GET    /events/in-flight?limit=              {events}: claimed, not settled (owner, deliveries, since)
 *   GET    /events/{id}                          envelope + status, attempts, errors, attempt_history,
 *                                                 delivery_attempts (HTTP deliveries to destinations), derived events,
 *                                                 steps (durable steps of its handlers), usage (model tokens by model)
 *   GET    /events?type=&source=&status=&from=&to=&cursor=&limit=&order=&recorded_from=   {events, next_cursor}
 *
 * The DLQ and in-flight routes are registered before /events/{id} so neither is taken for an id.
 * On the Redis backend an event in flight has no history row until its outcome: its detail
 * and the in-flight list come from the stream's pending-entries list (src/operations/in-flight.ts).
 */
import { createRoute, z } from "@hono/zod-openapi";
import { openBackend, openCache } from "../backends";
import { deliveryAttemptsFor } from "../db/deliveries";
import { eventStatus, type StepRow } from "../db/schema";
import { stepsOfEvent } from "../db/steps";
import type { EventEnvelope } from "../events/envelope";
import { adminAuth } from "../http/auth";
import { onError } from "../http/errors";
import { HTTPProblem, invalidFields } from "../http/problem";
import { createRouter, problemResponse } from "../http/router";
import { UUID_RE, withDb } from "../operations/db-scope";
import { type InFlightView, inFlightEvents, streamClaimOf } from "../operations/in-flight";
import {
  decodeCursor,
  dlqDiscard,
  dlqList,
  dlqRetry,
  dlqRetryAll,
  type EventView,
  getEvent,
  listEvents,
} from "../reads/event-queries";
import { authResponses, IdParam, jsonOk, security } from "./route-kit";

/** Statuses nothing moves an event out of (see the event-detail cache below). */
const FINAL = new Set(["completed", "discarded"]);
const Filter = {
  type: z.string().min(1).max(128).optional(),
  source: z.string().min(1).max(256).optional(),
};
/**
 * A retry-all names what it retries: a filter, or `all: true` for the whole DLQ, so an empty
 * or missing body (a script's slip) never redrives everything.
 */
export const RetryAllBody = z
  .object({ all: z.literal(true).optional(), ...Filter })
  .strict()
  .refine((b) => b.all === true || b.type !== undefined || b.source !== undefined, {
    path: ["all"],
    message: "send `all: true` to retry every DLQ event, or a `type`/`source` filter",
  });
const limit = (max: number, dflt: number) => z.coerce.number().int().min(1).max(max).default(dflt);

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

export function adminEventRoutes() {
  const r = createRouter();
  // Problems thrown below render as RFC 9457 responses even if the app has no handler of its own.
  r.onError(onError);

  r.openapi(
    createRoute({
      method: "get",
      path: "/events/dlq",
      tags: ["admin"],
      security,
      middleware: [adminAuth] as const,
      summary: "List the dead-letter queue (newest first)",
      request: { query: z.object({ limit: limit(1000, 50), ...Filter }) },
      responses: {
        200: jsonOk("`{count, events}`: the total for the filter, and up to `limit` events"),
        422: problemResponse("Bad query"),
        ...authResponses,
      },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const out = await withDb(c, "read", (db) => dlqList(db, { type: q.type, source: q.source }, q.limit));
      return c.json(out, 200);
    },
  );

  r.openapi(
    createRoute({
      method: "post",
      path: "/events/dlq/retry",
      tags: ["admin"],
      security,
      middleware: [adminAuth] as const,
      summary: "Retry the DLQ events matching type/source, or every one with `all: true`",
      description:
        'The body names what is retried: a `type`/`source` filter, or `{"all": true}` for every DLQ event. ' +
        "Redriven events are spread at REDRIVE_RATE per second (oldest first), then claimed by the consumers.",
      request: { body: { required: true, content: { "application/json": { schema: RetryAllBody } } } },
      responses: {
        200: jsonOk("`{count}`: how many events were sent back"),
        422: problemResponse("Bad body, or neither a filter nor `all: true`"),
        ...authResponses,
      },
    }),
    async (c) => {
      const b = c.req.valid("json");
      const count = await withDb(c, "write", (db, cfg) =>
        dlqRetryAll(db, { type: b.type, source: b.source }, cfg.REDRIVE_RATE),
      );
      return c.json({ count }, 200);
    },
  );

  r.openapi(
    createRoute({
      method: "post",
      path: "/events/dlq/{id}/retry",
      tags: ["admin"],
      security,
      middleware: [adminAuth] as const,
      summary: "Retry one DLQ event now (attempts reset; its errors are kept)",
      request: { params: IdParam },
      responses: {
        200: jsonOk('`{id, status: "pending", next_retry_at}`'),
        404: problemResponse("Not in the DLQ"),
        ...authResponses,
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const r2 = UUID_RE.test(id) ? await withDb(c, "write", (db) => dlqRetry(db, id)) : null;
      if (!r2) throw new HTTPProblem(404, "Not in the DLQ", `Event ${id} is not in the dead-letter queue.`);
      return c.json({ ...r2, status: "pending" }, 200);
    },
  );

  r.openapi(
    createRoute({
      method: "delete",
      path: "/events/dlq/{id}",
      tags: ["admin"],
      security,
      middleware: [adminAuth] as const,
      summary: "Discard one DLQ event; its history row stays, with the reason",
      request: {
        params: IdParam,
        body: {
          required: true,
          content: { "application/json": { schema: z.object({ reason: z.string().trim().min(1).max(1000) }) } },
        },
      },
      responses: {
        200: jsonOk("The event, status `discarded`"),
        404: problemResponse("Not in the DLQ"),
        422: problemResponse("No reason"),
        ...authResponses,
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const { reason } = c.req.valid("json");
      const e = UUID_RE.test(id) ? await withDb(c, "write", (db) => dlqDiscard(db, id, reason)) : null;
      if (!e) throw new HTTPProblem(404, "Not in the DLQ", `Event ${id} is not in the dead-letter queue.`);
      return c.json(e as unknown as Record<string, unknown>, 200);
    },
  );

  r.openapi(
    createRoute({
      method: "get",
      path: "/events/in-flight",
      tags: ["admin"],
      security,
      middleware: [adminAuth] as const,
      summary: "Events claimed and not settled: who holds each, since when, after how many deliveries",
      description:
        "Oldest delivery first. On the Redis backend these come from the streams' pending-entries lists (history has no row for an event until its outcome), together with the claims history holds as `processing`.",
      request: { query: z.object({ limit: limit(1000, 100) }) },
      responses: { 200: jsonOk("`{events}`"), ...authResponses },
    }),
    async (c) => {
      const { limit: n } = c.req.valid("query");
      const events = await withDb(c, "read", (db, cfg) => inFlightEvents(openBackend(cfg).store, db, n));
      return c.json({ events }, 200);
    },
  );

  r.openapi(
    createRoute({
      method: "get",
      path: "/events/{id}",
      tags: ["admin"],
      security,
      middleware: [adminAuth] as const,
      summary: "One event: envelope, status, attempts, errors, delivery attempts, derived events, steps",
      request: { params: IdParam },
      responses: { 200: jsonOk("The event"), 404: problemResponse("Unknown event"), ...authResponses },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      if (!UUID_RE.test(id)) throw new HTTPProblem(404, "Event not found", `No event with id ${id}.`);
      const cfg = c.var.config;
      const cache = openCache(cfg);
      const cached = await cache.get<Record<string, unknown>>(`event:${id}`);
      if (cached) return c.json({ ...cached, cached: true }, 200);
      const found = await withDb(c, "read", async (db) => {
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
      });
      if (!found) throw new HTTPProblem(404, "Event not found", `No event with id ${id}.`);
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
      return c.json({ ...view, cached: false }, 200);
    },
  );

  r.openapi(
    createRoute({
      method: "get",
      path: "/events",
      tags: ["admin"],
      security,
      middleware: [adminAuth] as const,
      summary: "Event history, keyset-paginated on (timestamp, id)",
      description:
        "Pass `next_cursor` back as `cursor` for the next page. `order=recorded` lists in the order history recorded the events (from `recorded_from`), which is how to follow new ones: a cursor is returned even on the last page, and an event that arrives late with an old timestamp still comes after it. `order=asc` follows event timestamps.",
      request: {
        query: z.object({
          ...Filter,
          status: z.enum(eventStatus.enumValues).optional(),
          from: z.iso.datetime({ offset: true }).optional(),
          to: z.iso.datetime({ offset: true }).optional(),
          cursor: z.string().max(200).optional(),
          limit: limit(1000, 100),
          order: z.enum(["asc", "desc", "recorded"]).default("desc"),
          recorded_from: z.iso.datetime({ offset: true }).optional(),
        }),
      },
      responses: { 200: jsonOk("`{events, next_cursor}`"), 422: problemResponse("Bad query"), ...authResponses },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const cursor = q.cursor !== undefined ? decodeCursor(q.cursor) : undefined;
      if (cursor === null) throw invalidFields([{ query: "cursor", message: "not a cursor returned by this API" }]);
      if (cursor && (cursor.by === "recorded") !== (q.order === "recorded"))
        throw invalidFields([{ query: "cursor", message: `not a cursor of order=${q.order}` }]);
      if (q.recorded_from !== undefined && q.order !== "recorded")
        throw invalidFields([{ query: "recorded_from", message: "only with order=recorded" }]);
      const out = await withDb(c, "read", (db) =>
        listEvents(
          db,
          { type: q.type, source: q.source, status: q.status, from: q.from, to: q.to },
          {
            ...(cursor ? { cursor } : {}),
            limit: q.limit,
            order: q.order,
            ...(q.recorded_from !== undefined ? { recordedFrom: new Date(q.recorded_from).toISOString() } : {}),
          },
        ),
      );
      return c.json(out, 200);
    },
  );

  return r;
}
