/**
 * Parked ordered scopes (src/consume/ordered.ts), behind adminAuth:
 *
 *   GET  /scopes/parked?limit=                       {count, scopes: [{scope, head, waiting, ...}]}
 *   POST /scopes/parked/unpark {scope, action, reason?}
 *        action "retry": the head is due now (a dead-lettered head with fresh attempts);
 *        action "discard": the head is discarded (reason required) and the scope resumes.
 *        404 when the scope is not parked, 409 while its head is being handled.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Db } from "../db/client";
import { listParked, type ParkedScope, type UnparkResult, unpark } from "../db/ordered";
import { adminAuth } from "../http/auth";
import { HTTPProblem } from "../http/problem";
import { createRouter, problemResponse } from "../http/router";
import { withDb } from "../operations/db-scope";
import { authResponses, jsonOk, security } from "./route-kit";

export function parkedView(p: ParkedScope) {
  return {
    scope: p.scope,
    head: { id: p.eventId, type: p.type, source: p.source, status: p.status, attempts: p.attempts },
    error: p.error,
    parked_at: p.parkedAt,
    next_retry_at: p.nextRetryAt,
    on_dead: p.hold ? "hold" : "skip",
    waiting: p.waiting,
  };
}

export const UnparkBody = z
  .object({
    scope: z.string().min(1).max(1000),
    action: z.enum(["retry", "discard"]),
    reason: z.string().trim().min(1).max(1000).optional(),
  })
  .refine((b) => b.action !== "discard" || b.reason !== undefined, {
    message: "a discard needs a reason",
    path: ["reason"],
  });

/**
 * An operator's unpark (admin API and dashboard): the head retried or discarded, or a
 * problem: 404 when the scope has no parked head, 409 while its head is being handled.
 */
export async function unparkScope(
  db: Db,
  b: z.output<typeof UnparkBody>,
  now = new Date(),
): Promise<Extract<UnparkResult, { ok: true }>> {
  const res = await unpark(db, b.scope, b.action, now, b.reason ?? "retried by an operator");
  if (!res.ok && res.reason === "not-parked")
    throw new HTTPProblem(404, "Not parked", `Scope ${JSON.stringify(b.scope)} has no parked head.`);
  if (!res.ok) throw new HTTPProblem(409, "Head running", "The scope's head is being handled; try again shortly.");
  return res;
}

export function adminOrderedRoutes() {
  const r = createRouter();
  r.openapi(
    createRoute({
      method: "get",
      path: "/scopes/parked",
      tags: ["admin"],
      security,
      middleware: [adminAuth] as const,
      summary: "Ordered scopes parked behind a failing head: the head, its error, how many wait",
      request: { query: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }) },
      responses: { 200: jsonOk("`{count, scopes}`"), ...authResponses },
    }),
    async (c) => {
      const { limit } = c.req.valid("query");
      const scopes = await withDb(c, "write", (db) => listParked(db, limit));
      return c.json({ count: scopes.length, scopes: scopes.map(parkedView) }, 200);
    },
  );
  r.openapi(
    createRoute({
      method: "post",
      path: "/scopes/parked/unpark",
      tags: ["admin"],
      security,
      middleware: [adminAuth] as const,
      summary: "Unpark an ordered scope: retry its head now, or discard it and resume with the next",
      request: { body: { required: true, content: { "application/json": { schema: UnparkBody } } } },
      responses: {
        200: jsonOk("`{scope, action, head, woken}`"),
        404: problemResponse("The scope is not parked"),
        409: problemResponse("The head is being handled right now"),
        422: problemResponse("Bad body"),
        ...authResponses,
      },
    }),
    async (c) => {
      const b = c.req.valid("json");
      const res = await withDb(c, "write", (db) => unparkScope(db, b));
      return c.json({ scope: b.scope, action: b.action, head: res.eventId, woken: res.woken }, 200);
    },
  );
  return r;
}
