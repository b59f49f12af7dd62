/**
 * Test rig for the consumer: a fresh environment (own database, own Redis prefix), the real
 * Redis Streams store with Postgres history, and a factory for consumer runs - each run with
 * its own consumer name and its own lock owner, as separate invocations would have.
 */
import type { SQL } from "drizzle-orm";
import { PgScopeLocks } from "../../src/backends/postgres/locks";
import { openRedis, type Redis } from "../../src/backends/redis/client";
import { RedisFilterState } from "../../src/backends/redis/filter-state";
import { redisKeys } from "../../src/backends/redis/keys";
import { RedisScopeLocks } from "../../src/backends/redis/locks";
import { RedisStreamStore } from "../../src/backends/redis/store";
import type { ScopeLocks } from "../../src/backends/types";
import { type Config, loadConfig } from "../../src/config";
import { type ConsumerOptions, type RunReport, runConsumer } from "../../src/consume/consumer";
import { type DbHandle, openDb } from "../../src/db/client";
import type { EventEnvelope } from "../../src/events/envelope";
import { TriggerRegistry } from "../../src/triggers/registry";
import { freshEnv, type TestEnv } from "./env";

export interface Rig {
  env: TestEnv;
  cfg: Config;
  db: DbHandle;
  redis: Redis;
  store: RedisStreamStore;
  triggers: TriggerRegistry;
  keys: ReturnType<typeof redisKeys>;
  run(o?: Partial<ConsumerOptions>): Promise<RunReport>;
  rows<T = Record<string, unknown>>(q: SQL): Promise<T[]>;
  close(): Promise<void>;
}

export async function rig(overrides: Record<string, unknown> = {}): Promise<Rig> {
  // No queue binding: wake-ups would reach the test worker's own queue consumer.
  const env = await freshEnv({ VISIBILITY_TIMEOUT_MS: "1000", WAKE_QUEUE: undefined, LOG_LEVEL: "warn", ...overrides });
  const cfg = loadConfig(env);
  const db = openDb(cfg);
  const redis = openRedis(cfg);
  const store = new RedisStreamStore(redis, cfg, db.db);
  const keys = redisKeys(cfg.REDIS_PREFIX);
  const triggers = new TriggerRegistry();
  const lockHandles: DbHandle[] = [];
  const newLocks = (): ScopeLocks => {
    if (cfg.LOCK_BACKEND === "postgres") {
      const h = openDb(cfg);
      lockHandles.push(h);
      return new PgScopeLocks(h.pool);
    }
    return new RedisScopeLocks(redis, keys, cfg.LOCK_LEASE_MS, db.db);
  };
  return {
    env,
    cfg,
    db,
    redis,
    store,
    triggers,
    keys,
    async run(o = {}) {
      const locks = o.locks ?? newLocks();
      try {
        return await runConsumer({
          store,
          triggers,
          locks,
          filterState: new RedisFilterState(redis, keys.filterState),
          config: cfg,
          env,
          db: db.db,
          ...o,
        });
      } finally {
        await locks.close().catch(() => {});
      }
    },
    async rows<T>(q: SQL) {
      return (await db.db.execute(q)).rows as T[];
    },
    async close() {
      for (const h of lockHandles) await h.close();
      await db.close();
    },
  };
}

export { event } from "./events";

/** Publishes in pipelines of `chunk` XADDs (one request each). */
export async function publishAll(store: RedisStreamStore, events: EventEnvelope[], chunk = 1000): Promise<void> {
  for (let i = 0; i < events.length; i += chunk) await store.publish(events.slice(i, i + chunk));
}

/** Entries delivered but not acknowledged, over the store's lanes. */
export async function pendingEntries(r: Rig): Promise<number> {
  let n = 0;
  for (const lane of r.store.lanes()) n += (await r.store.laneStats(lane)).pending;
  return n;
}
