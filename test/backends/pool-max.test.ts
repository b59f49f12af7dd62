/**
 * DB_POOL_MAX caps the Postgres connections one invocation opens. Each case runs one worker
 * invocation through a private Neon stand-in, which counts the connections (one WebSocket
 * per Postgres session) open at once: the count includes everything the invocation does -
 * claims pipelined with settles, destinations' records, metrics - and nothing else.
 */
import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config";
import { openDb } from "../../src/db/client";
import worker from "../../src/index";
import { filters as f } from "../../src/triggers";
import { defaultTriggers } from "../../src/triggers/registry";
import { freshEnv, type TestEnv } from "../support/env";
import { privateStandIns, type StandInPair } from "../support/faults";

const TRIGGER = "pool-max-test";
const pairs: StandInPair[] = [];
afterEach(async () => {
  defaultTriggers.unregister(TRIGGER);
  while (pairs.length) await pairs.pop()!.close();
});

/** Seeds `n` fresh events (2 scopes per 10), runs the consumer cron once, returns the most connections at once. */
async function oneInvocation(overrides: Record<string, unknown>, n = 2_000) {
  const pair = await privateStandIns();
  pairs.push(pair);
  const env: TestEnv = await freshEnv({
    ...pair.env,
    WAKE_QUEUE: undefined,
    CONSUMER_BATCH_SIZE: "100",
    CACHE_ENABLED: "false",
    LOG_LEVEL: "error",
    ...overrides,
  });
  const cfg = loadConfig(env);
  // Published through the store the deployment uses, before the counted invocation.
  const { openBackend } = await import("../../src/backends");
  const seedDb = openDb(cfg);
  const events = Array.from({ length: n }, (_, i) => ({
    id: crypto.randomUUID(),
    type: "timer.tick",
    source: `pool-${i % 20}`,
    timestamp: new Date().toISOString(),
    meta: { trace_id: "pool" },
    timer_name: "t",
    tick_count: i,
  }));
  for (let i = 0; i < n; i += 500) await openBackend(cfg, seedDb).store.publish(events.slice(i, i + 500));
  await seedDb.close();
  let handled = 0;
  defaultTriggers.unregister(TRIGGER);
  defaultTriggers.register({
    name: TRIGGER,
    filter: f.source(/^pool-/),
    handler: async () => {
      handled++;
      await new Promise((r) => setTimeout(r, 0));
    },
  });
  for (let i = 0; i < 50 && (await pair.pgConnections()).open > 0; i++) await new Promise((r) => setTimeout(r, 50));
  await pair.pgConnections(true);
  const ctx = createExecutionContext();
  await worker.scheduled!(createScheduledController({ cron: "* * * * *", scheduledTime: Date.now() }), env, ctx);
  await waitOnExecutionContext(ctx);
  const conns = await pair.pgConnections();
  const check = openDb(loadConfig({ ...env, NEON_WS_PROXY: env.NEON_WS_PROXY }));
  const done = Number(
    (await check.db.execute<{ n: number }>(sql`select count(*)::int as n from events where status = 'completed'`))
      .rows[0]!.n,
  );
  await check.close();
  return { peak: conns.peak, opened: conns.opened, handled, done, n };
}

describe("DB_POOL_MAX caps the connections of an invocation", () => {
  it("EVENT_BACKEND=redis: at most DB_POOL_MAX at once (1 and 3), and the drain completes either way", async () => {
    for (const max of [1, 3]) {
      const r = await oneInvocation({ DB_POOL_MAX: String(max) });
      expect(r.done, `DB_POOL_MAX=${max}`).toBe(r.n);
      expect(r.handled).toBe(r.n);
      expect(r.peak, `DB_POOL_MAX=${max}: ${JSON.stringify(r)}`).toBeLessThanOrEqual(max);
      expect(r.peak).toBeGreaterThanOrEqual(1);
    }
  });

  it("EVENT_BACKEND=postgres with advisory locks, no Redis: DB_POOL_MAX for queries, plus one for the scope locks", async () => {
    for (const max of [1, 2]) {
      const r = await oneInvocation({
        DB_POOL_MAX: String(max),
        EVENT_BACKEND: "postgres",
        LOCK_BACKEND: "postgres",
        UPSTASH_REDIS_REST_URL: "",
        UPSTASH_REDIS_REST_TOKEN: "",
      });
      expect(r.done, `DB_POOL_MAX=${max}: ${JSON.stringify(r)}`).toBe(r.n);
      expect(r.peak, `DB_POOL_MAX=${max}: ${JSON.stringify(r)}`).toBeLessThanOrEqual(max + 1);
    }
  });
});
