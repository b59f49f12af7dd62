/**
 * GET /health (liveness: no dependencies), GET /ready (can we serve: a valid configuration,
 * Postgres, and Redis when the deployment uses it; 503 when not), GET /health/detailed (figures with
 * healthy/degraded/unhealthy per indicator; 503 when unhealthy).
 *
 * Anonymous callers get the status alone; what is down, the figures, destination names
 * and dependency errors need the admin token or the read-only METRICS_TOKEN (and are in
 * the log when something is down). Every result is shared by the requests that arrive
 * while it is being computed (single flight, per isolate) and kept for a while: healthy and
 * degraded figures for CACHE_HEALTH_TTL_S (in Redis too, for every isolate); an unhealthy
 * one, and any /ready answer, for a second and for anonymous callers only - operators see
 * a change at once, and a flood of anonymous calls costs one check per second per isolate.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { openBackend, openCache } from "../backends";
import type { Config } from "../config";
import { openDb } from "../db/client";
import { accessOf } from "../http/admin-auth";
import type { AppEnv } from "../http/app-env";
import { problem } from "../http/problem";
import { createRouter, problemResponse } from "../http/router";
import { createLogger } from "../obs/log";
import { checkConfig, settingOf } from "./config-check";
import { type Deps, type DetailedReport, detailedHealth, type ReadyReport, readiness } from "./report";

/** How long an unhealthy result is reused for anonymous callers, ms. */
const UNHEALTHY_REUSE_MS = 1000;

interface Memo<T> {
  value?: { at: number; result: T };
  inflight?: Promise<T>;
}

/**
 * One computation per configuration at a time; a finished result is reused while
 * `keepMs(result, operator)` says so. A failed computation is not kept.
 */
function singleFlight<T>(
  memos: WeakMap<Config, Memo<T>>,
  cfg: Config,
  operator: boolean,
  keepMs: (r: T, operator: boolean) => number,
  compute: () => Promise<T>,
): Promise<{ result: T; reused: boolean }> {
  let m = memos.get(cfg);
  if (!m) memos.set(cfg, (m = {}));
  const memo = m;
  if (memo.value && Date.now() - memo.value.at < keepMs(memo.value.result, operator))
    return Promise.resolve({ result: memo.value.result, reused: true });
  if (memo.inflight) return memo.inflight.then((result) => ({ result, reused: true }));
  const p = compute().then((result) => {
    memo.value = { at: Date.now(), result };
    return result;
  });
  memo.inflight = p;
  const clear = () => {
    if (memo.inflight === p) memo.inflight = undefined;
  };
  p.then(clear, clear);
  return p.then((result) => ({ result, reused: false }));
}

const readyMemos = new WeakMap<Config, Memo<ReadyReport>>();
const detailedMemos = new WeakMap<Config, Memo<DetailedReport & { cached: boolean }>>();

const downOf = (checks: ReadyReport["checks"]) =>
  Object.entries(checks)
    .filter(([, v]) => v.status === "unhealthy")
    .map(([k]) => k);

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
      summary: "Readiness: Postgres (and Redis when used) answer; what is down with a token",
      responses: {
        200: {
          description: "Ready",
          content: {
            "application/json": {
              schema: z.object({
                status: z.literal("ready"),
                checks: z.record(z.string(), Indicator).optional().describe("With a token"),
              }),
            },
          },
        },
        503: problemResponse(
          "A dependency is down (with a token, `down` and `checks` name it), or a setting is invalid (`misconfigured` names it)",
        ),
      },
    }),
    async (c) => {
      // A bad setting is named to every caller (the setting, never its value or rule): the
      // rules go to the log, and to token holders when the configuration can say who they are.
      const check = checkConfig(c.env);
      if (!check.config) {
        createLogger().error("not ready: configuration invalid", { problems: check.fatal });
        const misconfigured = [...check.fatal, ...check.sources].map(settingOf);
        return problem(c, 503, "Not ready", `The configuration is invalid: ${misconfigured.join(", ")}.`, {
          headers: { "retry-after": "5" },
          misconfigured,
        }) as never;
      }
      const cfg = check.config;
      const operator = (await accessOf(c)) !== "none";
      const { result: report, reused } = await singleFlight(
        readyMemos,
        cfg,
        operator,
        (_r, op) => (op ? 0 : UNHEALTHY_REUSE_MS),
        () => withDeps(c, cfg, (d) => readiness(cfg, d)),
      );
      if (check.sources.length) {
        const misconfigured = check.sources.map(settingOf);
        return problem(c, 503, "Not ready", `The configuration is invalid: ${misconfigured.join(", ")}.`, {
          headers: { "retry-after": "5" },
          misconfigured,
          ...(operator ? { problems: check.sources, checks: report.checks } : {}),
        }) as never;
      }
      if (report.status === "ready") {
        return c.json({ status: "ready" as const, ...(operator ? { checks: report.checks } : {}) }, 200) as never;
      }
      const down = downOf(report.checks);
      if (!reused) createLogger(cfg.LOG_LEVEL).error("not ready", { down, checks: report.checks });
      if (!operator) {
        return problem(c, 503, "Not ready", "A dependency is down; the log says which.", {
          headers: { "retry-after": "5" },
        }) as never;
      }
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
      summary: "Status; figures and thresholds per indicator with a token",
      description:
        "Without a token: the status alone. With the admin token or the read-only METRICS_TOKEN: Postgres and Redis latency, per-lane stream length and consumer-group lag, pending (claimed, unacknowledged) count, oldest pending age, retry backlog, DLQ size and destination breakers, each healthy/degraded/unhealthy against configurable thresholds. Cached for CACHE_HEALTH_TTL_S seconds (`cached: true`). 503 when unhealthy.",
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
      const operator = (await accessOf(c)) !== "none";
      const { result: report, reused } = await singleFlight(
        detailedMemos,
        cfg,
        operator,
        (r, op) => (r.status !== "unhealthy" ? cfg.CACHE_HEALTH_TTL_S * 1000 : op ? 0 : UNHEALTHY_REUSE_MS),
        async () => {
          const cache = openCache(cfg);
          const hit = await cache.get<DetailedReport>("health");
          if (hit) return { ...hit, cached: true };
          const fresh = await withDeps(c, cfg, (d) => detailedHealth(cfg, d));
          // Only healthy/degraded figures go to Redis: an operator must see an outage at once.
          if (fresh.status !== "unhealthy") await cache.set("health", fresh, cfg.CACHE_HEALTH_TTL_S);
          else createLogger(cfg.LOG_LEVEL).error("unhealthy", { indicators: fresh.indicators });
          return { ...fresh, cached: false };
        },
      );
      const code = report.status === "unhealthy" ? 503 : 200;
      if (!operator) return c.json({ status: report.status }, code) as never;
      return c.json({ ...report, cached: report.cached || reused }, code) as never;
    },
  );

  return r;
}
