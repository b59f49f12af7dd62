/**
 * A Postgres-only deployment: EVENT_BACKEND=postgres, LOCK_BACKEND=postgres and NO Redis
 * variables in the environment (freshEnv's are deleted: any Redis use would throw). Ingest
 * through the worker's app, the worker's own consumer entry, webhook dedupe, the wake-up
 * gate, and the Postgres filter state (rate limit, dedupe) - against the real local
 * Postgres through the Neon stand-in.
 */

import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import { openBackend } from "../../src/backends";
import { PgFilterState } from "../../src/backends/postgres/filter-state";
import { PgScopeLocks } from "../../src/backends/postgres/locks";
import { PgMetricsSink } from "../../src/backends/postgres/metrics-sink";
import { ManualClock } from "../../src/clock";
import { loadConfig } from "../../src/config";
import { runConsumer } from "../../src/consume/consumer";
import { consumeInWorker } from "../../src/consume/entry";
import { type DbHandle, openDb } from "../../src/db/client";
import { filters as f } from "../../src/triggers";
import { TriggerRegistry } from "../../src/triggers/registry";
import { event } from "../support/consume";
import { freshEnv, type TestEnv } from "../support/env";
import { API_KEY, authed, call, post, recordingQueue } from "../support/ingest";

const handles: DbHandle[] = [];
afterEach(async () => {
  for (const h of handles.splice(0)) await h.close();
});

/** Postgres alone: the env has no Upstash variables at all. */
async function pgOnlyEnv(overrides: Record<string, unknown> = {}): Promise<TestEnv> {
  const env = await freshEnv({
    EVENT_BACKEND: "postgres",
    LOCK_BACKEND: "postgres",
    API_KEYS: API_KEY,
    WAKE_QUEUE: undefined,
    LOG_LEVEL: "warn",
    ...overrides,
  });
  delete env.UPSTASH_REDIS_REST_URL;
  delete env.UPSTASH_REDIS_REST_TOKEN;
  expect(Object.keys(env).filter((k) => k.startsWith("UPSTASH"))).toEqual([]);
  return env;
}

function db(env: TestEnv): DbHandle {
  const h = openDb(loadConfig(env));
  handles.push(h);
  return h;
}

async function rows<T>(env: TestEnv, q: ReturnType<typeof sql>): Promise<T[]> {
  return (await db(env).db.execute(q)).rows as T[];
}

const tick = (n: number, source = "cron:main") => ({ type: "timer.tick", source, timer_name: "main", tick_count: n });

describe("Postgres-only deployment (no Redis configured)", () => {
  it("config: no Redis needed, locks default to Postgres advisory locks", async () => {
    const env = await pgOnlyEnv({ LOCK_BACKEND: undefined });
    const cfg = loadConfig(env);
    expect(cfg).toMatchObject({ EVENT_BACKEND: "postgres", LOCK_BACKEND: "postgres" });
    expect(cfg.UPSTASH_REDIS_REST_URL).toBeUndefined();
    expect(openBackend(cfg).store.backend).toBe("postgres");
  });

  it("POST /events and /events/batch store pending rows (rate limits off: no 503), one wake-up per window; the worker's consumer drains them", async () => {
    const { queue, sent } = recordingQueue();
    const env = await pgOnlyEnv({ WAKE_QUEUE: queue, WAKE_DEBOUNCE_MS: "60000", RATE_LIMIT_KEY_EVENTS: "5" });
    const one = await call(env, authed("/events", tick(1)));
    expect(one.status, one.text).toBe(202);
    const batch = await call(env, authed("/events/batch", { events: [tick(2), tick(3), tick(4, "cron:other")] }));
    expect(batch.status, batch.text).toBe(202);
    // A limit of 5 would refuse the 7th event with Redis; a Postgres-only deployment has no
    // ingest rate limiter (documented), so these pass.
    const more = await call(env, authed("/events/batch", { events: [tick(5), tick(6), tick(7)] }));
    expect(more.status, more.text).toBe(202);

    const stored = await rows<{ status: string; n: number }>(
      env,
      sql`select status, count(*)::int as n from events group by status`,
    );
    expect(stored).toEqual([{ status: "pending", n: 7 }]);
    // One window: one wake-up now plus the trailing one, however many requests.
    expect(sent.map((m) => m.delaySeconds ?? 0)).toEqual([0, 60]);

    const ctx = createExecutionContext();
    const report = await consumeInWorker(env, ctx, "test");
    await waitOnExecutionContext(ctx);
    expect(report).toMatchObject({ claimed: 7, completed: 7, dlq: 0, stoppedBy: "drained" });
    const done = await rows<{ id: string; status: string; attempts: number }>(
      env,
      sql`select id, status, attempts from events`,
    );
    expect(done).toHaveLength(7);
    expect(done.every((r) => r.status === "completed" && r.attempts === 1)).toBe(true);
    expect(done.map((r) => r.id)).toContain(one.json.id);
  });

  it("webhook redeliveries are deduplicated in Postgres: 200 duplicate naming the first event, nothing stored", async () => {
    const env = await pgOnlyEnv({
      WEBHOOK_SOURCES: JSON.stringify({ lab: { scheme: "none", unsigned: true, id_header: "x-request-id" } }),
    });
    const send = () => call(env, post("/webhooks/lab", { hello: "world" }, { "x-request-id": "delivery-1" }));
    const first = await send();
    expect(first.status, first.text).toBe(202);
    const again = await send();
    expect(again.status, again.text).toBe(200);
    expect(again.json).toEqual({ id: first.json.id, status: "duplicate" });
    const other = await call(env, post("/webhooks/lab", { hello: "again" }, { "x-request-id": "delivery-2" }));
    expect(other.status).toBe(202);
    const stored = await rows<{ id: string }>(env, sql`select id from events order by created_at`);
    expect(stored.map((r) => r.id)).toEqual([first.json.id, other.json.id]);
    const keys = await rows<{ key: string; event_id: string }>(
      env,
      sql`select key, event_id from webhook_deliveries order by key`,
    );
    expect(keys).toEqual([
      { key: "lab:delivery-1", event_id: first.json.id },
      { key: "lab:delivery-2", event_id: other.json.id },
    ]);
  });

  it("an expired delivery key is taken over (a new event), and expired keys are cleaned up by later deliveries", async () => {
    const env = await pgOnlyEnv();
    const store = openBackend(loadConfig(env), db(env)).store;
    const a = event();
    await store.publishOnce(a, { key: "src:old-1", windowS: 60 });
    await store.publishOnce(event(), { key: "src:old-2", windowS: 60 });
    // Age both keys past their window.
    await db(env).db.execute(sql`update webhook_deliveries set expires_at = now() - interval '1 second'`);
    const b = event();
    expect(await store.publishOnce(b, { key: "src:old-1", windowS: 60 })).toMatchObject({ duplicate: false });
    await store.publishOnce(event(), { key: "src:new", windowS: 60 });
    const keys = await rows<{ key: string; event_id: string }>(
      env,
      sql`select key, event_id from webhook_deliveries order by key`,
    );
    expect(keys).toEqual([
      { key: "src:new", event_id: expect.any(String) },
      { key: "src:old-1", event_id: b.id },
    ]);
  });
});

describe("PgMetricsSink: metrics counters in Postgres", () => {
  it("a flush adds every delta, to new series and to stored ones", async () => {
    const sink = new PgMetricsSink(db(await pgOnlyEnv()).db);
    await sink.add([
      ["reflex_a_total", 1],
      ['reflex_b_total{outcome="completed"}', 2.5],
    ]);
    await sink.add([["reflex_a_total", 2]]);
    expect(new Map(await sink.read())).toEqual(
      new Map([
        ["reflex_a_total", 3],
        ['reflex_b_total{outcome="completed"}', 2.5],
      ]),
    );
  });
});

describe("PgFilterState: trigger rate limits and dedupe in Postgres", () => {
  it("rate limit: at most max distinct events per key, in batch order, idempotent per event, exact under concurrent consumers", async () => {
    const env = await pgOnlyEnv();
    const h = db(env);
    const s1 = new PgFilterState(h.db);
    const s2 = new PgFilterState(h.db);
    // One batch: ids a..e against max 3 -> the first three pass, in order.
    const first = await Promise.all(["a", "b", "c", "d", "e"].map((id) => s1.rateLimit("rl:t:k:1", 3, 60_000, id)));
    expect(first).toEqual([true, true, true, false, false]);
    expect(s1.calls).toBe(1); // the whole batch was one statement
    // The same events again (a retry) pass again without spending more.
    expect(await Promise.all(["c", "a", "d"].map((id) => s1.rateLimit("rl:t:k:1", 3, 60_000, id)))).toEqual([
      true,
      true,
      false,
    ]);

    // Two consumers racing for a fresh key: never more than max between them.
    const ids = Array.from({ length: 40 }, (_, i) => `e${i}`);
    const [x, y] = await Promise.all([
      Promise.all(ids.slice(0, 20).map((id) => s1.rateLimit("rl:t:k:2", 7, 60_000, id))),
      Promise.all(ids.slice(20).map((id) => s2.rateLimit("rl:t:k:2", 7, 60_000, id))),
    ]);
    expect([...x, ...y].filter(Boolean)).toHaveLength(7);
  });

  it("dedupe: the first event of a key in its window passes (and passes again), others do not; the window follows the consumer's clock", async () => {
    const env = await pgOnlyEnv();
    const s = new PgFilterState(db(env).db);
    const t0 = 1_700_000_000_000;
    expect(await Promise.all([s.dedupe("dd:k", 1_000, "a", t0), s.dedupe("dd:k", 1_000, "b", t0)])).toEqual([
      true,
      false,
    ]);
    expect(await s.dedupe("dd:k", 1_000, "a", t0 + 500)).toBe(true);
    expect(await s.dedupe("dd:k", 1_000, "c", t0 + 999)).toBe(false);
    expect(await s.dedupe("dd:k", 1_000, "c", t0 + 1_000)).toBe(true); // a new window, c first
    expect(await s.dedupe("dd:k", 1_000, "a", t0 + 1_001)).toBe(false);
  });

  it("through the consumer: rateLimit and dedupe filters admit the right events with Postgres locks and state", async () => {
    const env = await pgOnlyEnv();
    const cfg = loadConfig(env);
    const h = db(env);
    const store = openBackend(cfg, h).store;
    const seen: Record<string, string[]> = { limited: [], deduped: [] };
    const triggers = new TriggerRegistry()
      .register({
        name: "limited",
        filter: f.and(f.type("test.*"), f.rateLimit({ max: 4, windowMs: 3_600_000 })),
        handler: (c) => void seen.limited!.push(c.event.id),
      })
      .register({
        name: "deduped",
        filter: f.dedupe({ key: (e) => String(e.order), windowMs: 3_600_000 }),
        handler: (c) => void seen.deduped!.push(c.event.id),
      });
    const evs = Array.from({ length: 10 }, (_, i) => event({ source: `s${i % 2}`, order: i % 3 }));
    await store.publish(evs);
    const locks = new PgScopeLocks(db(env).pool);
    const report = await runConsumer({
      store,
      triggers,
      config: cfg,
      env,
      clock: new ManualClock(Date.now()),
      locks,
      filterState: new PgFilterState(h.db),
    }).finally(() => locks.close());
    expect(report).toMatchObject({ claimed: 10, completed: 10 });
    expect(seen.limited).toEqual(evs.slice(0, 4).map((e) => e.id));
    expect(seen.deduped!.sort()).toEqual(
      evs
        .slice(0, 3)
        .map((e) => e.id)
        .sort(),
    );
  });
});
