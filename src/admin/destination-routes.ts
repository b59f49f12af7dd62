/**
 * GET /destinations (admin token or the read-only METRICS_TOKEN): every configured destination
 * with its circuit breaker (closed, open, half-open), so an operator sees why a destination's
 * events are waiting. Its URL shows as scheme and host only, whichever token asks.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { shownUrl } from "../config/destinations";
import { breakerStates } from "../destinations";
import { adminAuth } from "../http/auth";
import { createRouter, problemResponse } from "../http/router";
import { withDb } from "../operations/db-scope";

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
        // scheme and host only (a webhook URL's path is its secret); never secrets or headers
        return cfg.DESTINATIONS.map((d) => ({
          name: d.name,
          url: shownUrl(d.url),
          filter: d.filter,
          breaker: breakers.get(d.name),
        }));
      });
      return c.json({ destinations } as unknown as { destinations: Record<string, never>[] }, 200);
    },
  );
  return r;
}
