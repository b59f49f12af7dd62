/**
 * GET /destinations (admin token): every configured destination with its circuit breaker
 * (closed, open, half-open), so an operator sees why a destination's events are waiting.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { breakerStates } from "../destinations";
import { adminAuth } from "../http/auth";
import { createRouter, problemResponse } from "../http/router";
import { withDb } from "./db-scope";

export function adminDestinationRoutes() {
  const r = createRouter();
  r.openapi(
    createRoute({
      method: "get",
      path: "/destinations",
      tags: ["admin"],
      security: [{ adminToken: [] }],
      middleware: [adminAuth] as const,
      summary: "Destinations and their circuit breakers",
      responses: {
        200: {
          description: "Destinations",
          content: {
            "application/json": { schema: z.object({ destinations: z.array(z.record(z.string(), z.unknown())) }) },
          },
        },
        401: problemResponse("No admin token"),
        403: problemResponse("Wrong admin token"),
      },
    }),
    async (c) => {
      const destinations = await withDb(c, "write", async (db, cfg) => {
        const breakers = new Map((await breakerStates(db, cfg)).map((b) => [b.destination, b]));
        // url without credentials or query (tokens sometimes live there); never secrets or headers
        return cfg.DESTINATIONS.map((d) => {
          const u = new URL(d.url);
          return { name: d.name, url: `${u.origin}${u.pathname}`, filter: d.filter, breaker: breakers.get(d.name) };
        });
      });
      return c.json({ destinations } as unknown as { destinations: Record<string, never>[] }, 200);
    },
  );
  return r;
}
