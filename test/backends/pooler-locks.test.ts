/**
 * Postgres scope locks behind a transaction-mode pooler: a real PgBouncer (pool_mode
 * transaction, one server session for every client: test/support/pgbouncer.ts) in front of
 * the test server, as Neon's pooled (-pooler) connection string is.
 *
 * Queries go through the pooler (DATABASE_URL); the advisory locks take their own connection
 * to DATABASE_DIRECT_URL, and stay exclusive. The first case shows why they must: session
 * locks taken through the pooler let a second holder in.
 */
import { sql } from "drizzle-orm";
import { afterEach, describe, expect, inject, it } from "vitest";
import { openBackend } from "../../src/backends";
import { PgScopeLocks } from "../../src/backends/postgres/locks";
import type { ScopeLocks } from "../../src/backends/types";
import { ManualClock } from "../../src/clock";
import { type Config, loadConfig } from "../../src/config";
import { runConsumer } from "../../src/consume/consumer";
import { type DbHandle, openDb } from "../../src/db/client";
import { ConfigError } from "../../src/errors";
import { filters as f } from "../../src/triggers";
import { TriggerRegistry } from "../../src/triggers/registry";
import { freshEnv, type TestEnv } from "../support/env";

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  while (open.length) await open.pop()!.close();
});

/** An environment whose DATABASE_URL goes through PgBouncer and DATABASE_DIRECT_URL straight to Postgres. */
async function pooledEnv(): Promise<{ env: TestEnv; cfg: Config; pooledUrl: string }> {
  expect(inject("bouncerError"), "PgBouncer for this test (.ci/install-pgbouncer)").toBe("");
  const direct = await freshEnv({
    EVENT_BACKEND: "postgres",
    LOCK_BACKEND: "postgres",
    UPSTASH_REDIS_REST_URL: "",
    UPSTASH_REDIS_REST_TOKEN: "",
    WAKE_QUEUE: undefined,
    LOG_LEVEL: "warn",
  });
  const pooledUrl = `${inject("bouncerUrl")}${new URL(direct.DATABASE_URL).pathname}`;
  const env = { ...direct, DATABASE_URL: pooledUrl, DATABASE_DIRECT_URL: direct.DATABASE_URL } as TestEnv;
  return { env, cfg: loadConfig(env), pooledUrl };
}

/** Closed after the test. */
function closing<T extends { close(): Promise<void> }>(x: T): T {
  open.push(x);
  return x;
}
const handle = (h: DbHandle) => closing(h);
const lockSet = (l: ScopeLocks) => closing(l);
const scope = () => `scope-${crypto.randomUUID()}`;

// Without PgBouncer (and outside CI) the suite skips; the run ends naming the command that installs it.
describe.skipIf(inject("bouncerSkip"))("Postgres scope locks behind PgBouncer in transaction mode", () => {
  it("the pooler is real: through it, a session lock lets a second holder in (why the locks need a direct URL)", async () => {
    const { cfg } = await pooledEnv();
    const pooled = handle(openDb(cfg));
    // The session the pooler gives each statement: one and the same server session for two clients.
    const pid = async () => (await pooled.db.execute<{ p: number }>(sql`select pg_backend_pid() as p`)).rows[0]!.p;
    expect(await pid()).toBe(await pid());
    const a = lockSet(new PgScopeLocks(handle(openDb(cfg)).pool));
    const b = lockSet(new PgScopeLocks(handle(openDb(cfg)).pool));
    const s = scope();
    expect([...(await a.tryAcquire([s]))]).toEqual([s]);
    expect([...(await b.tryAcquire([s]))]).toEqual([s]); // both "hold" it: exclusivity is gone
  });

  it("locks opened by the backend go to DATABASE_DIRECT_URL: one holder, released on release and on a dead session", async () => {
    const { cfg } = await pooledEnv();
    const db = handle(openDb(cfg));
    const backend = openBackend(cfg, db);
    const a = lockSet(backend.scopeLocks());
    const b = lockSet(backend.scopeLocks());
    const [s1, s2] = [scope(), scope()];
    expect([...(await a.tryAcquire([s1, s2]))].sort()).toEqual([s1, s2].sort());
    expect([...(await b.tryAcquire([s1, s2]))]).toEqual([]);
    await a.release([s1]);
    expect([...(await b.tryAcquire([s1, s2]))]).toEqual([s1]);
    // An invocation that dies: its lock connection goes, and the session's locks with it.
    await a.close();
    expect([...(await b.tryAcquire([s2]))]).toEqual([s2]);
    // The queries themselves went through the pooler all along.
    const r = await db.db.execute<{ n: number }>(sql`select count(*)::int as n from events`);
    expect(r.rows[0]!.n).toBe(0);
  });

  it("three consumers draining through the pooler: every event completed once, same-scope handlers never at once", async () => {
    const { env, cfg } = await pooledEnv();
    const db = handle(openDb(cfg));
    const backend = openBackend(cfg, db);
    const running = new Map<string, number>();
    let overlaps = 0;
    let calls = 0;
    const triggers = new TriggerRegistry().register({
      name: "scoped",
      filter: f.any(),
      handler: async (ctx) => {
        calls++;
        const n = (running.get(ctx.scope) ?? 0) + 1;
        running.set(ctx.scope, n);
        if (n > 1) overlaps++;
        await new Promise((r) => setTimeout(r, 1));
        running.set(ctx.scope, running.get(ctx.scope)! - 1);
      },
    });
    const events = Array.from({ length: 1_500 }, (_, i) => ({
      id: crypto.randomUUID(),
      type: "timer.tick",
      source: `pooled-${i % 8}`,
      timestamp: new Date().toISOString(),
      meta: { trace_id: "pooled" },
      timer_name: "t",
      tick_count: i,
    }));
    for (let i = 0; i < events.length; i += 500) await backend.store.publish(events.slice(i, i + 500));
    const consumerCfg: Config = { ...cfg, CONSUMER_BATCH_SIZE: 100, LOCK_WAIT_MS: 100 };
    // Events deferred because another consumer held their scope fall due a minute later each round.
    const clock = new ManualClock(Date.now());
    for (let round = 0; round < 20; round++) {
      if (round > 0) clock.advance(60_000);
      await Promise.all(
        [0, 1, 2].map(async () => {
          const runDb = handle(openDb(cfg));
          const b = openBackend(cfg, runDb);
          const locks = b.scopeLocks();
          try {
            await runConsumer({
              store: b.store,
              triggers,
              locks,
              filterState: b.filterState(),
              config: consumerCfg,
              env,
              clock,
            });
          } finally {
            await locks.close();
          }
        }),
      );
      const left = await db.db.execute<{ n: number }>(
        sql`select count(*)::int as n from events where status <> 'completed'`,
      );
      if (left.rows[0]!.n === 0) break;
    }
    const done = await db.db.execute<{ n: number }>(
      sql`select count(*)::int as n from events where status = 'completed'`,
    );
    expect(done.rows[0]!.n).toBe(events.length);
    expect(overlaps).toBe(0);
    expect(calls).toBeGreaterThanOrEqual(events.length);
  });

  it("a pooled (-pooler) DATABASE_URL with Postgres locks and no DATABASE_DIRECT_URL is a configuration error", () => {
    const base = {
      DATABASE_URL: "postgresql://u:p@ep-cool-name-123456-pooler.eu-central-1.aws.neon.tech/neondb?sslmode=require",
      EVENT_BACKEND: "postgres",
      EVENT_ID_SECRET: "test-event-id-secret-0123456789",
    };
    expect(() => loadConfig(base)).toThrow(ConfigError);
    expect(() => loadConfig(base)).toThrow(/DATABASE_DIRECT_URL: required with LOCK_BACKEND=postgres/);
    const direct = "postgresql://u:p@ep-cool-name-123456.eu-central-1.aws.neon.tech/neondb?sslmode=require";
    expect(loadConfig({ ...base, DATABASE_DIRECT_URL: direct }).DATABASE_DIRECT_URL).toBe(direct);
    // Redis locks need no direct connection.
    expect(() =>
      loadConfig({
        ...base,
        LOCK_BACKEND: "redis",
        UPSTASH_REDIS_REST_URL: "https://u.example",
        UPSTASH_REDIS_REST_TOKEN: "t",
      }),
    ).not.toThrow();
  });
});
