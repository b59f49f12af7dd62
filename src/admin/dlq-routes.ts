/**
 * Admin routes over the dead-letter queue (all behind adminAuth); the operations are
 * src/operations/dlq-actions.ts, shared with the dashboard:
 *
 *   GET    /events/dlq?limit=&type=&source=     {count, events}
 *   POST   /events/dlq/retry   {all: true} | {type?, source?}  {count}   (a filter, or `all` for every DLQ event)
 *   POST   /events/dlq/{id}/retry                {id, status, next_retry_at}; 404 when not in the DLQ
 *   DELETE /events/dlq/{id}    {reason}          the event, status 'discarded'; 404 when not in the DLQ
 *
 * src/admin/routes.ts mounts these before /events/{id}, so none is taken for an id.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { adminAuth } from "../http/admin-auth";
import { onError } from "../http/error-handler";
import { createRouter, problemResponse } from "../http/router";
import { discardDeadLetter, listDeadLetters, retryDeadLetter, retryDeadLetters } from "../operations/dlq-actions";
import { authResponses, Filter, IdParam, jsonOk, limit, security } from "./route-kit";

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

export function adminDlqRoutes() {
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
      const out = await listDeadLetters(c, { type: q.type, source: q.source }, q.limit);
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
      const count = await retryDeadLetters(c, { type: b.type, source: b.source });
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
      return c.json({ ...(await retryDeadLetter(c, id)), status: "pending" }, 200);
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
      const e = await discardDeadLetter(c, id, reason);
      return c.json(e as unknown as Record<string, unknown>, 200);
    },
  );

  return r;
}
