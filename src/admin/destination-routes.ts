/**
 * GET /destinations (admin token or the read-only METRICS_TOKEN): every configured destination
 * with its circuit breaker (closed, open, half-open), so an operator sees why a destination's
 * events are waiting. Its URL shows as scheme and host only, whichever token asks
 * (src/operations/destination-status.ts).
 */
import { createRoute, z } from "@hono/zod-openapi";
import { adminAuth } from "../http/admin-auth";
import { createRouter, problemResponse } from "../http/router";
import { listDestinations } from "../operations/destination-status";

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
      const destinations = await listDestinations(c);
      return c.json({ destinations } as unknown as { destinations: Record<string, never>[] }, 200);
    },
  );
  return r;
}
