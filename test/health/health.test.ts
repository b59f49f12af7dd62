/**
 * Health, readiness and metrics against the real services. Outages are real too: a
 * private pair of stand-ins (test/support/faults.ts) is stopped and restarted.
 */

import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openBackend } from "../../src/backends";
import { loadConfig } from "../../src/config";
import { openDb } from "../../src/db/client";
import type { EventEnvelope } from "../../src/events/envelope";
import { openCountsQuery } from "../../src/reads/open-counts";
import { ADMIN_TOKEN, call, scrapeMetrics } from "../support/admin";
import { freshEnv, type TestEnv } from "../support/env";
import { privateStandIns, type StandInPair } from "../support/faults";

const API_KEY = "health-test-key-0123456789";
const METRICS_TOKEN = "test-metrics-token-0123456789";

function event(i: number, source = `src-${i % 3}`): EventEnvelope {
  return {
    id: crypto.randomUUID(),
    type: "timer.tick",
    source,
    timestamp: new Date().toISOString(),
    meta: { trace_id: crypto.randomUUID().replace(/-/g, "") },
    timer_name: "t",
    tick_count: i,
  };
}

async function sqlOn(env: TestEnv, q: ReturnType<typeof sql>) {
  const h = openDb(loadConfig(env));
  try {
    return await h.db.execute(q);
  } finally {
    await h.close();
  }
}

describe("GET /ready", () => {
  let pair: StandInPair;
  let env: TestEnv;
  beforeAll(async () => {
    pair = await privateStandIns();
    env = await freshEnv({ ...pair.env, HEALTH_TIMEOUT_MS: "800", ADMIN_TOKEN, METRICS_TOKEN });
  });
  afterAll(() => pair.close());

  it("is 200 when Postgres and Redis answer, 503 naming what is down (to a token holder), 200 again when they return", async () => {
    const up = await call(env, "GET", "/ready", { token: METRICS_TOKEN });
    expect(up.status).toBe(200);
    expect(up.body.checks.postgres.status).not.toBe("unhealthy");
    expect(up.body.checks.redis.status).not.toBe("unhealthy");

    await pair.postgres(false);
    const pgDown = await call(env, "GET", "/ready", { token: METRICS_TOKEN });
    expect(pgDown.status).toBe(503);
    expect(pgDown.headers.get("content-type")).toContain("application/problem+json");
    expect(pgDown.body.down).toEqual(["postgres"]);
    expect(pgDown.body.detail).toBe("postgres is down");
    expect(pgDown.headers.get("retry-after")).toBeTruthy();
    await pair.postgres(true);
    expect((await call(env, "GET", "/ready", { token: METRICS_TOKEN })).status).toBe(200);

    await pair.gateway(503);
    const redisDown = await call(env, "GET", "/ready", { token: METRICS_TOKEN });
    expect(redisDown.status).toBe(503);
    expect(redisDown.body.down).toEqual(["redis"]);
    await pair.gateway("hang");
    const hung = await call(env, "GET", "/ready", { token: METRICS_TOKEN });
    expect(hung.status).toBe(503);
    expect(hung.body.checks.redis.error).toMatch(/no answer within 800 ms/);
    await pair.gateway(null);
    expect((await call(env, "GET", "/ready", { token: METRICS_TOKEN })).status).toBe(200);
  });

  it("anonymous callers learn that something is down, not what: the log says", async () => {
    await pair.postgres(false);
    try {
      // An operator's call checks at once; anonymous calls within a second reuse its answer.
      expect((await call(env, "GET", "/ready", { token: ADMIN_TOKEN })).body.down).toEqual(["postgres"]);
      const r = await call(env, "GET", "/ready", { token: null });
      expect(r.status).toBe(503);
      expect(r.body.title).toBe("Not ready");
      expect(r.body.down).toBeUndefined();
      expect(r.body.checks).toBeUndefined();
      expect(JSON.stringify(r.body)).not.toMatch(/postgres|redis/i);
    } finally {
      await pair.postgres(true);
    }
    expect((await call(env, "GET", "/ready", { token: ADMIN_TOKEN })).status).toBe(200);
  });

  it("/health needs no dependency: it stays 200 while both are down", async () => {
    await pair.postgres(false);
    await pair.gateway(503);
    try {
      const r = await call(env, "GET", "/health", { token: null });
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ status: "healthy" });
    } finally {
      await pair.postgres(true);
      await pair.gateway(null);
    }
  });
});

describe("GET /health/detailed", () => {
  it("reports a known state: lane length and lag, pending, DLQ, retry backlog, against thresholds", async () => {
    const env = await freshEnv({
      HEALTH_DLQ_DEGRADED: "2",
      HEALTH_LAG_DEGRADED: "100",
      CACHE_ENABLED: "false",
      METRICS_TOKEN,
    });
    const cfg = loadConfig(env);
    // 5 events in the stream, never consumed: lag 5.
    await openBackend(cfg).store.publish(Array.from({ length: 5 }, (_, i) => event(i)));
    // History: 3 in the DLQ, 2 processing, 4 waiting for a retry an hour from now.
    await sqlOn(
      env,
      sql`
      INSERT INTO events (id, type, source, timestamp, payload, meta, scope, status, attempts, next_retry_at)
      SELECT gen_random_uuid(), 'timer.tick', 's', now(), '{}'::jsonb, '{"trace_id":"x"}'::jsonb, 's',
             (ARRAY['dlq','dlq','dlq','processing','processing','pending','pending','pending','pending'])[i]::event_status,
             1, CASE WHEN i > 5 THEN now() + interval '1 hour' END
        FROM generate_series(1, 9) AS i`,
    );

    const anonymous = await call(env, "GET", "/health/detailed", { token: null });
    expect(anonymous.status).toBe(200);
    expect(anonymous.body).toEqual({ status: "degraded" });
    const r = await call(env, "GET", "/health/detailed", { token: METRICS_TOKEN });
    expect(r.status).toBe(200);
    const ind = r.body.indicators;
    expect(ind.postgres.status).toBe("healthy");
    expect(ind.redis.status).toBe("healthy");
    expect(ind.lanes).toHaveLength(1);
    expect(ind.lanes[0]).toMatchObject({ length: 5, lag: 5, pending: 0, status: "healthy" });
    expect(ind.dlq).toEqual({ status: "degraded", value: 3, threshold: 2 });
    expect(ind.pending).toMatchObject({ status: "healthy", value: 2 });
    expect(ind.retry_backlog.value).toBe(4);
    expect(ind.oldest_pending_age_s.value).toBeGreaterThanOrEqual(0);
    expect(r.body.status).toBe("degraded");
    expect(r.body.cached).toBe(true); // the anonymous call's figures, within the TTL
  });

  it("serves figures from the cache within the TTL, and never caches an outage", async () => {
    const pair = await privateStandIns();
    try {
      const env = await freshEnv({ ...pair.env, CACHE_HEALTH_TTL_S: "60", HEALTH_TIMEOUT_MS: "800", ADMIN_TOKEN });
      const first = await call(env, "GET", "/health/detailed", { token: ADMIN_TOKEN });
      expect(first.body.cached).toBe(false);
      await sqlOn(env, sql`UPDATE events SET status = 'dlq'`); // no rows; figures unchanged anyway
      const second = await call(env, "GET", "/health/detailed", { token: ADMIN_TOKEN });
      expect(second.body.cached).toBe(true);
      expect(second.body.checked_at).toBe(first.body.checked_at);

      const env2 = await freshEnv({ ...pair.env, CACHE_HEALTH_TTL_S: "60", HEALTH_TIMEOUT_MS: "800", ADMIN_TOKEN });
      await pair.postgres(false);
      const down = await call(env2, "GET", "/health/detailed", { token: ADMIN_TOKEN });
      expect(down.status).toBe(503);
      expect(down.body.status).toBe("unhealthy");
      expect(down.body.indicators.postgres.status).toBe("unhealthy");
      await pair.postgres(true);
      const back = await call(env2, "GET", "/health/detailed", { token: ADMIN_TOKEN });
      expect(back.status).toBe(200);
      expect(back.body.cached).toBe(false);
    } finally {
      await pair.close();
    }
  });
});

describe("GET /metrics", () => {
  it("needs the admin token or the read-only METRICS_TOKEN, which reads but cannot act", async () => {
    const env = await freshEnv({ ADMIN_TOKEN, METRICS_TOKEN });
    expect((await call(env, "GET", "/metrics", { token: null })).status).toBe(401);
    expect((await call(env, "GET", "/metrics", { token: "wrong-token-wrong-token" })).status).toBe(403);
    expect((await call(env, "GET", "/metrics", { token: METRICS_TOKEN })).status).toBe(200);
    expect((await call(env, "GET", "/metrics", { token: ADMIN_TOKEN })).status).toBe(200);
    // The read-only views, yes; an action, no.
    expect((await call(env, "GET", "/events/dlq", { token: METRICS_TOKEN })).status).toBe(200);
    const act = await call(env, "POST", "/events/dlq/retry", { token: METRICS_TOKEN, body: {} });
    expect(act.status).toBe(403);
    expect(act.body.detail).toMatch(/read-only/);
    // Only the read-only token configured: reads work, actions stay disabled.
    const readOnly = await freshEnv({ METRICS_TOKEN });
    expect((await call(readOnly, "GET", "/metrics", { token: METRICS_TOKEN })).status).toBe(200);
    expect((await call(readOnly, "POST", "/events/dlq/retry", { token: METRICS_TOKEN, body: {} })).status).toBe(503);
  });

  it("health and metrics count through the open-events and DLQ indexes: no scan of the whole history", async () => {
    const env = await freshEnv();
    const h = openDb(loadConfig(env));
    try {
      const plan = await h.db.transaction(async (tx) => {
        // Without the choice of a sequential scan, the planner shows whether an index serves each part.
        await tx.execute(sql`SET LOCAL enable_seqscan = off`);
        const r = await tx.execute<{ "QUERY PLAN": string }>(sql`EXPLAIN ${openCountsQuery(new Date())}`);
        return r.rows.map((x) => x["QUERY PLAN"]).join("\n");
      });
      expect(plan).not.toMatch(/Seq Scan/);
      expect(plan).toMatch(/events_status_next_retry_idx/);
      // Any of the partial indexes on status = 'dlq' (the planner picks the smallest).
      expect(plan).toMatch(/events_dlq_(idx|timestamp_idx|type_idx)/);
    } finally {
      await h.close();
    }
  });

  it("counters move as events are accepted, rejected and processed", async () => {
    const env = await freshEnv({ ADMIN_TOKEN, API_KEYS: API_KEY });
    const scrape = async () => {
      const r = await scrapeMetrics(env);
      expect(r.status).toBe(200);
      expect(r.headers.get("content-type")).toContain("text/plain");
      return r.series;
    };
    const before = await scrape();
    expect(before.get("reflex_events_accepted_total")).toBe(0);

    const post = (body: unknown) => call(env, "POST", "/events", { token: API_KEY, body });
    for (let i = 0; i < 3; i++)
      expect((await post({ type: "timer.tick", source: "m", timer_name: "t", tick_count: i })).status).toBe(202);
    expect(
      (
        await call(env, "POST", "/events/batch", {
          token: API_KEY,
          body: { events: [0, 1].map((i) => ({ type: "timer.tick", source: "m", timer_name: "t", tick_count: i })) },
        })
      ).status,
    ).toBe(202);
    expect((await post({ type: "no.such.type", source: "m" })).status).toBe(422);

    // Drain through the worker's own cron entry point.
    const { createExecutionContext, createScheduledController, waitOnExecutionContext } = await import(
      "cloudflare:test"
    );
    const worker = (await import("../../src/index")).default;
    const ctx = createExecutionContext();
    await worker.scheduled!(createScheduledController({ cron: "* * * * *", scheduledTime: Date.now() }), env, ctx);
    await waitOnExecutionContext(ctx);

    const after = await scrape();
    expect(after.get('reflex_events_accepted_total{route="events"}')).toBe(3);
    expect(after.get('reflex_events_accepted_total{route="batch"}')).toBe(2);
    expect(
      [...after.keys()].some((k) => k.startsWith("reflex_requests_rejected_total{") && k.includes('status="422"')),
    ).toBe(true);
    expect(after.get('reflex_events_processed_total{outcome="completed"}')).toBe(5);
    expect(after.get('reflex_consumer_runs_total{trigger="cron"}')).toBe(1);
    // Labelled by the kind of work that sent them (test/obs/metrics.test.ts checks each).
    const total = (name: string) => [...after].reduce((n, [k, v]) => (k.startsWith(`${name}{`) ? n + v : n), 0);
    expect(total("reflex_redis_commands_total")).toBeGreaterThan(0);
    expect(total("reflex_pg_round_trips_total")).toBeGreaterThan(0);
    expect(after.get("reflex_pending_events")).toBe(0);
  });
});
