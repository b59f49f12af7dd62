/**
 * Middleware: counts ingest outcomes (accepted by route, rejected by status and problem
 * type, webhook duplicates) and flushes this isolate's counters at most once per interval.
 * It reads only responses, so the ingest code stays free of metrics calls.
 */
import type { MiddlewareHandler } from "hono";
import { flushMetrics } from "../backends";
import type { Config } from "../config";
import { flushDue, inc } from "../obs/metrics";
import type { AppEnv } from "./app-env";

function ingestRoute(method: string, path: string): string | null {
  if (method !== "POST") return null;
  if (path === "/events") return "events";
  if (path === "/events/batch") return "batch";
  if (path.startsWith("/webhooks/")) return "webhooks";
  return null;
}

export const httpMetrics: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  const route = ingestRoute(c.req.method, c.req.path);
  if (route) {
    const status = c.res.status;
    if (status === 202) {
      let n = 1;
      if (route === "batch") {
        const body = (await c.res
          .clone()
          .json()
          .catch(() => null)) as { ids?: unknown[] } | null;
        n = body?.ids?.length ?? 0;
      }
      inc("reflex_events_accepted_total", { route }, n);
    } else if (status === 200 && route === "webhooks") {
      inc("reflex_webhook_duplicates_total");
    } else if (status >= 400) {
      const body = (await c.res
        .clone()
        .json()
        .catch(() => null)) as { type?: string } | null;
      const type = typeof body?.type === "string" ? body.type.replace(/^urn:reflex:problem:/, "") : "unknown";
      inc("reflex_requests_rejected_total", { route, status, type });
    }
  }
  if (flushDue()) {
    // Unset when the configuration is bad: the request itself already says so.
    const cfg = c.get("config") as Config | undefined;
    if (!cfg) return;
    try {
      c.executionCtx.waitUntil(flushMetrics(cfg));
    } catch {
      await flushMetrics(cfg); // no execution context (app.request in scripts)
    }
  }
};
