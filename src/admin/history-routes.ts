/**
 * Admin routes over event history (all behind adminAuth; the DLQ's are ./dlq-routes.ts):
 *
 *   GET    /events/in-flight?limit=              {events}: claimed, not settled (owner, deliveries, since)
 *   GET    /events/{id}                          envelope + status, attempts, errors, attempt_history,
 *                                                 delivery_attempts (HTTP deliveries to destinations), derived events,
 *                                                 steps (durable steps of its handlers), usage (model tokens by model)
 *   GET    /events?type=&source=&status=&from=&to=&cursor=&limit=&order=&recorded_from=   {events, next_cursor}
 *
 * The in-flight route is registered before /events/{id} so it is not taken for an id (and
 * src/admin/routes.ts mounts the DLQ's routes before these). The operations are
 * src/operations/event-history.ts.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { eventStatus } from "../db/schema";
import { adminAuth } from "../http/admin-auth";
import { onError } from "../http/error-handler";
import { invalidFields } from "../http/problem";
import { createRouter, problemResponse } from "../http/router";
import { eventDetail, eventHistory, eventsInFlight } from "../operations/event-history";
import { decodeCursor } from "../reads/event-queries";
import { authResponses, Filter, IdParam, jsonOk, limit, security } from "./route-kit";

export function adminHistoryRoutes() {
  const r = createRouter();
  // Problems thrown below render as RFC 9457 responses even if the app has no handler of its own.
  r.onError(onError);

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
      const events = await eventsInFlight(c, n);
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
      return c.json(await eventDetail(c, id), 200);
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
      const out = await eventHistory(
        c,
        { type: q.type, source: q.source, status: q.status, from: q.from, to: q.to },
        {
          ...(cursor ? { cursor } : {}),
          limit: q.limit,
          order: q.order,
          ...(q.recorded_from !== undefined ? { recordedFrom: new Date(q.recorded_from).toISOString() } : {}),
        },
      );
      return c.json(out, 200);
    },
  );

  return r;
}
