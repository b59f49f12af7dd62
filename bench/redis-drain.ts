/**
 * The Redis backend as a drain benchmark drives it (bench/drain.ts, bench/protocol.ts): its
 * config, Postgres pool and stream store, and run() for one consumer invocation with the
 * Redis scope locks and filter state.
 */
import "../local/lua-text";
import { openRedis } from "../src/backends/redis/client";
import { redisKeys } from "../src/backends/redis/keys";
import { type Env, loadConfig } from "../src/config";
import { runConsumer } from "../src/consume/consumer";
import { openDb } from "../src/db/client";
import type { TriggerRegistry } from "../src/triggers/registry";

// The Redis backend imports its Lua scripts as .lua text: those modules load after the hook
// that local/lua-text.ts registers (a static import would load before it runs).
const { RedisFilterState } = await import("../src/backends/redis/filter-state");
const { RedisScopeLocks } = await import("../src/backends/redis/locks");
const { RedisStreamStore } = await import("../src/backends/redis/store");

export function redisDrain(env: Env, dbUrl: string) {
  const cfg = loadConfig(env);
  const db = openDb(cfg, dbUrl);
  const redis = openRedis(cfg);
  const store = new RedisStreamStore(redis, cfg, db.db);
  const keys = redisKeys(cfg.REDIS_PREFIX);
  const run = (triggers: TriggerRegistry) =>
    runConsumer({
      store,
      triggers,
      config: cfg,
      env,
      locks: new RedisScopeLocks(redis, keys, cfg.LOCK_LEASE_MS, db.db),
      filterState: new RedisFilterState(redis, keys.filterState),
    });
  return { cfg, db, store, run };
}
