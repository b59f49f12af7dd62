/**
 * GET /health (liveness: no dependencies), GET /ready (can we serve: Postgres, and Redis
 * when the deployment uses it; 503 naming what is down), GET /health/detailed (figures
 * with healthy/degraded/unhealthy per indicator; 503 when unhealthy). Detailed figures
 * are cached in Redis for CACHE_HEALTH_TTL_S so dashboards polling it cost little.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { openBackend, openCache } from "../backends";
import type { Config } from "../config";
import { openDb } from "../db/client";
import type { AppEnv } from "../http/app-env";
import { problem } from "../http/problem";
import { createRouter, problemResponse } from "../http/router";
import { type Deps, detailedHealth, readiness } from "./report";

async function withDeps<T>(c: Context<AppEnv>, cfg: Config, fn: (d: Deps) => Promise<T>): Promise<T> {
  const db = openDb(cfg);
  try {
    const backend = openBackend(cfg, db);
    return await fn({ db, redis: backend.redis, store: backend.store });
  } finally {
    try {
      c.executionCtx.waitUntil(db.close());
    } catch {
      await db.close();
    }
  }
}

const Indicator = z.object({ status: z.enum(["healthy", "degraded", "unhealthy"]) }).catchall(z.unknown());

export function healthRoutes() {
  const r = createRouter();

  r.openapi(
    createRoute({
      method: "get",
      path: "/health",
      tags: ["Health"],
      summary: "Liveness (no dependencies)",
      responses: {
        200: {
          description: "The worker runs",
          content: { "application/json": { schema: z.object({ status: z.literal("healthy") }) } },
        },
      },
    }),
    (c) => c.json({ status: "healthy" as const }, 200),
  );

  r.openapi(
    createRoute({
      method: "get",
      path: "/ready",
      tags: ["Health"],
      summary: "Readiness: Postgres (and Redis when used) answer",
      responses: {
        200: {
          description: "Ready",
          content: {
            "application/json": {
              schema: z.object({ status: z.literal("ready"), checks: z.record(z.string(), Indicator) }),
            },
          },
        },
        503: problemResponse("A dependency is down; `checks` names it"),
      },
    }),
    async (c) => {
      const cfg = c.var.config;
      const report = await withDeps(c, cfg, (d) => readiness(cfg, d));
      if (report.status === "ready") return c.json({ status: "ready" as const, checks: report.checks }, 200);
      const down = Object.entries(report.checks)
        .filter(([, v]) => v.status === "unhealthy")
        .map(([k]) => k);
      return problem(c, 503, "Not ready", `${down.join(" and ")} ${down.length > 1 ? "are" : "is"} down`, {
        headers: { "retry-after": "5" },
        down,
        checks: report.checks,
      }) as never;
    },
  );

  r.openapi(
    createRoute({
      method: "get",
      path: "/health/detailed",
      tags: ["Health"],
      summary: "Figures and thresholds per indicator",
      description:
        "Postgres and Redis latency, per-lane stream length and consumer-group lag, pending (claimed, unacknowledged) count, oldest pending age, retry backlog and DLQ size, each healthy/degraded/unhealthy against configurable thresholds. Cached for CACHE_HEALTH_TTL_S seconds (`cached: true`). 503 when unhealthy.",
      responses: {
        200: {
          description: "Healthy or degraded",
          content: {
            "application/json": { schema: z.object({ status: z.enum(["healthy", "degraded"]) }).catchall(z.unknown()) },
          },
        },
        503: {
          description: "Unhealthy",
          content: {
            "application/json": { schema: z.object({ status: z.literal("unhealthy") }).catchall(z.unknown()) },
          },
        },
      },
    }),
    async (c) => {
      const cfg = c.var.config;
      const cache = openCache(cfg);
      const hit = await cache.get<Awaited<ReturnType<typeof detailedHealth>>>("health");
      const report = hit ?? (await withDeps(c, cfg, (d) => detailedHealth(cfg, d)));
      // Only healthy/degraded figures are cached: an outage must show the moment it happens.
      if (!hit && report.status !== "unhealthy") await cache.set("health", report, cfg.CACHE_HEALTH_TTL_S);
      return c.json({ ...report, cached: Boolean(hit) }, report.status === "unhealthy" ? 503 : 200) as never;
    },
  );

  return r;
}
