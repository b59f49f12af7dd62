/**
 * Parked ordered scopes (src/consume/ordered-scopes.ts), behind adminAuth:
 *
 *   GET  /scopes/parked?limit=                       {count, scopes: [{scope, head, waiting, ...}]}
 *   POST /scopes/parked/unpark {scope, action, reason?}
 *        action "retry": the head is due now (a dead-lettered head with fresh attempts);
 *        action "discard": the head is discarded (reason required) and the scope resumes.
 *        404 when the scope is not parked, 409 while its head is being handled.
 * The operations are src/operations/parked-scopes.ts.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { adminAuth } from "../http/admin-auth";
import { createRouter, problemResponse } from "../http/router";
import { parkedScopes, parkedView, UnparkBody, unparkParkedScope } from "../operations/parked-scopes";
import { authResponses, jsonOk, security } from "./route-kit";

export function adminScopeRoutes() {
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
      const scopes = await parkedScopes(c, limit);
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
      const res = await unparkParkedScope(c, b);
      return c.json({ scope: b.scope, action: b.action, head: res.eventId, woken: res.woken }, 200);
    },
  );
  return r;
}
