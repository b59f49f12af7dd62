/**
 * GET /metrics tells the truth: every counter docs/operations.md lists ("Health and observability")
 * moves when, and by as much as, what it counts happens - through the worker's own entry
 * points (HTTP ingest, the consumer cron, the replay cron) - and the cost counters say which
 * kind of work sent each Redis command and Postgres round trip, so that a dashboard can
 * divide consume work by processed events.
 */
import { afterEach, describe, expect, it } from "vitest";
import { DeferAttempt } from "../../src/errors";
import { filters as f } from "../../src/triggers";
import { defaultTriggers } from "../../src/triggers/registry";
import { ADMIN_TOKEN, call } from "../support/admin";
import { runCron } from "../support/cron";
import { freshEnv, type TestEnv } from "../support/env";
import { WEBHOOK_SOURCES } from "../support/webhooks";

const API_KEY = "metrics-test-key-0123456789";
const SOURCE = "metrics-test";
const TRIGGER = "metrics-test-trigger";

afterEach(() => {
  defaultTriggers.unregister(TRIGGER);
});

async function scrape(env: TestEnv): Promise<Map<string, number>> {
  const r = await call<string>(env, "GET", "/metrics");
  expect(r.status).toBe(200);
  const m = new Map<string, number>();
  for (const line of r.body.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

const tick = (timer_name: string, tick_count = 0) => ({ type: "timer.tick", source: SOURCE, timer_name, tick_count });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("GET /metrics: each listed counter moves with what it counts", () => {
  it("accepted, rejected, duplicates, processed by outcome, derived, runs, batches, claimed, replayed, cost by work, gauges", async () => {
    const env = await freshEnv({
      ADMIN_TOKEN,
      API_KEYS: API_KEY,
      WEBHOOK_SOURCES,
      EVENT_MAX_ATTEMPTS: "2",
      EVENT_RETRY_BASE_DELAY: "0.05",
      EVENT_RETRY_MAX_DELAY: "0.05",
      RATE_LIMIT_KEY_EVENTS: "0",
      RATE_LIMIT_SOURCE_REQUESTS: "0",
      CACHE_ENABLED: "false",
      WAKE_QUEUE: undefined,
      LOG_LEVEL: "error",
    });
    // The worker's cron runs defaultTriggers: a handler whose fate is the timer's name.
    defaultTriggers.register({
      name: TRIGGER,
      filter: f.and(f.type("timer.tick"), f.source(SOURCE)),
      handler: async (ctx) => {
        const name = ctx.event.timer_name;
        if (name === "fail") throw new Error("planned failure");
        if (name === "defer") throw new DeferAttempt("planned deferral", new Date(Date.now() + 3_600_000));
        if (name === "derive") await ctx.publish({ type: "lifecycle", action: "started", details: "derived" });
      },
    });
    const before = await scrape(env);
    const delta = (after: Map<string, number>, series: string) => (after.get(series) ?? 0) - (before.get(series) ?? 0);

    // --- ingest -----------------------------------------------------------------------
    const post = (body: unknown) => call(env, "POST", "/events", { token: API_KEY, body });
    for (const name of ["ok", "fail", "defer", "derive"]) expect((await post(tick(name))).status).toBe(202);
    const batch = await call(env, "POST", "/events/batch", {
      token: API_KEY,
      body: { events: [tick("ok", 1), tick("ok", 2)] },
    });
    expect(batch.status).toBe(202);
    expect((await post({ type: "no.such.type", source: SOURCE })).status).toBe(422);
    const hook = () =>
      call(env, "POST", "/webhooks/lab", { token: null, body: { hello: 1 }, headers: { "x-request-id": "d-1" } });
    expect((await hook()).status).toBe(202);
    expect((await hook()).status).toBe(200); // the same delivery again

    const ingested = await scrape(env);
    expect(delta(ingested, 'reflex_events_accepted_total{route="events"}')).toBe(4);
    expect(delta(ingested, 'reflex_events_accepted_total{route="batch"}')).toBe(2);
    expect(delta(ingested, 'reflex_events_accepted_total{route="webhooks"}')).toBe(1);
    expect(delta(ingested, "reflex_webhook_duplicates_total")).toBe(1);
    expect(delta(ingested, 'reflex_requests_rejected_total{route="events",status="422",type="invalid-fields"}')).toBe(
      1,
    );
    // Ingest sent Redis commands, counted as ingest work; no consumer has run yet.
    expect(delta(ingested, 'reflex_redis_commands_total{work="ingest"}')).toBeGreaterThanOrEqual(7);
    expect(delta(ingested, 'reflex_redis_requests_total{work="ingest"}')).toBeGreaterThan(0);
    expect(delta(ingested, 'reflex_redis_commands_total{work="consume"}')).toBe(0);
    expect(delta(ingested, 'reflex_pg_round_trips_total{work="consume"}')).toBe(0);

    // --- drain: two cron runs (the failed event's retry falls due in between) -------------
    await runCron(env, "* * * * *");
    await sleep(200);
    await runCron(env, "* * * * *");
    const drained = await scrape(env);
    // completed: ok x3, derive, its derived lifecycle event, the webhook; fail: retried, then dlq.
    expect(delta(drained, 'reflex_events_processed_total{outcome="completed"}')).toBe(6);
    expect(delta(drained, 'reflex_events_processed_total{outcome="retried"}')).toBe(1);
    expect(delta(drained, 'reflex_events_processed_total{outcome="dlq"}')).toBe(1);
    expect(delta(drained, 'reflex_events_processed_total{outcome="deferred"}')).toBe(1);
    expect(delta(drained, "reflex_events_derived_total")).toBe(1);
    expect(delta(drained, 'reflex_consumer_runs_total{trigger="cron"}')).toBe(2);
    const batches = delta(drained, "reflex_consumer_batches_total");
    expect(batches).toBeGreaterThanOrEqual(2);
    // Every processed delivery was claimed (the retry's second delivery too).
    expect(delta(drained, "reflex_consumer_claimed_total")).toBe(9);
    // Cost per processed event has a numerator of its own: consume work only.
    expect(delta(drained, 'reflex_redis_commands_total{work="consume"}')).toBeGreaterThan(0);
    expect(delta(drained, 'reflex_pg_round_trips_total{work="consume"}')).toBeGreaterThanOrEqual(batches);
    expect(delta(drained, 'reflex_redis_commands_total{work="ingest"}')).toBe(
      delta(ingested, 'reflex_redis_commands_total{work="ingest"}'),
    );

    // Gauges, read from history at scrape time.
    expect(drained.get("reflex_dlq_events")).toBe(1);
    expect(drained.get("reflex_pending_events")).toBe(1); // the deferred one
    expect(drained.get("reflex_retry_backlog_events")).toBe(1);
    expect(drained.get("reflex_processing_events")).toBe(0);
    expect(drained.get("reflex_oldest_pending_age_seconds")).toBeGreaterThanOrEqual(0);

    // --- replay: the derived lifecycle event, copied by the */2 cron and drained by it ------
    const job = await call(env, "POST", "/replays", {
      body: { from: new Date(Date.now() - 3_600_000).toISOString(), types: ["lifecycle"], rate: 100 },
    });
    expect(job.status).toBe(202);
    await runCron(env, "*/2 * * * *");
    expect((await call(env, "GET", `/replays/${job.body.id}`)).body).toMatchObject({ status: "done", republished: 1 });
    const replayed = await scrape(env);
    expect(delta(replayed, "reflex_events_replayed_total")).toBe(1);
    expect(delta(replayed, 'reflex_consumer_runs_total{trigger="replay-lane"}')).toBe(1);
    expect(delta(replayed, 'reflex_events_processed_total{outcome="completed"}')).toBe(7);
    expect(delta(replayed, 'reflex_pg_round_trips_total{work="replay"}')).toBeGreaterThan(0);
  });
});
