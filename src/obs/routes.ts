/**
 * GET /metrics (admin token, or the read-only METRICS_TOKEN): Prometheus text. Counters come
 * from the shared store the isolates flush into (src/obs/metrics.ts); gauges (DLQ size,
 * pending, retry backlog, oldest pending age) are read at scrape time through the partial
 * indexes of open events and of the DLQ (src/reads/open-counts.ts), never a full count.
 */
import { createRoute } from "@hono/zod-openapi";
import { withMetricsSink } from "../backends";
import { openDb } from "../db/client";
import { adminAuth } from "../http/admin-auth";
import { createRouter, problemResponse } from "../http/router";
import { openCounts } from "../reads/open-counts";
import { flush, render } from "./metrics";

export function metricsRoutes() {
  const r = createRouter();
  r.openapi(
    createRoute({
      method: "get",
      path: "/metrics",
      tags: ["Health"],
      summary: "Prometheus metrics (admin token or read-only METRICS_TOKEN)",
      security: [{ adminToken: [] }],
      middleware: [adminAuth] as const,
      responses: {
        200: {
          description: "Prometheus text exposition format 0.0.4",
          content: { "text/plain": { schema: { type: "string" } } },
        },
        401: problemResponse("No token"),
        403: problemResponse("Wrong token"),
        429: problemResponse("Too many wrong tokens from this address (Retry-After)"),
      },
    }),
    async (c) => {
      const cfg = c.var.config;
      const stored = await withMetricsSink(cfg, async (sink) => {
        await flush(sink).catch(() => {}); // include this isolate's own unflushed counts
        return sink.read();
      });
      const h = openDb(cfg);
      const gauges = await openCounts(h.db, new Date())
        .then((n) => [
          { name: "reflex_dlq_events", help: "Events in the dead-letter queue", value: n.dlq },
          {
            name: "reflex_pending_events",
            help: "Events pending (new or waiting for a retry) in history",
            value: n.pending,
          },
          { name: "reflex_processing_events", help: "Events claimed and being processed", value: n.processing },
          {
            name: "reflex_retry_backlog_events",
            help: "Pending events whose retry is not yet due",
            value: n.retryBacklog,
          },
          {
            name: "reflex_oldest_pending_age_seconds",
            help: "Age of the oldest pending or processing event",
            value: n.oldestPendingAgeSeconds,
          },
        ])
        .catch(() => [])
        .finally(() => h.close());
      return c.text(render(stored, gauges), 200, {
        "content-type": "text/plain; version=0.0.4; charset=utf-8",
      }) as never;
    },
  );
  return r;
}
