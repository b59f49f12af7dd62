/**
 * Opens the deployment's backend from its configuration. This is the only code that reads
 * EVENT_BACKEND and LOCK_BACKEND: everything above sees the Backend bundle only.
 *
 *  - redis: events in Redis Streams (./redis), history in Postgres (src/db).
 *  - postgres: the events table is queue and history (./postgres); no Redis needed.
 * Scope locks follow LOCK_BACKEND (Redis keys, or Postgres advisory locks on a connection of
 * their own to DATABASE_DIRECT_URL: ./postgres/locks.ts), filter state
 * lives with the events, and Upstash, when configured, also carries the rate limits, the
 * hot-data cache and the metrics counters (src/obs/metrics.ts) whatever the event backend.
 */
import type { Config } from "../config";
import { type DbHandle, openDb } from "../db/client";
import { flush, type MetricsSink } from "../obs/metrics";
import { PgFilterState } from "./postgres/filter-state";
import { PgScopeLocks } from "./postgres/locks";
import { PgMetricsSink } from "./postgres/metrics-sink";
import { PostgresEventStore } from "./postgres/store";
import { HotCache } from "./redis/cache";
import { openRedis, type Redis } from "./redis/client";
import { RedisFilterState } from "./redis/filter-state";
import { redisKeys } from "./redis/keys";
import { RedisLanes } from "./redis/lanes";
import { RedisScopeLocks } from "./redis/locks";
import { RedisMetricsSink } from "./redis/metrics-sink";
import { RedisStreamStore } from "./redis/store";
import type { EventStore, FilterState, ReplayLane, ScopeLocks, StreamUpkeep } from "./types";

export interface Backend {
  readonly kind: Config["EVENT_BACKEND"];
  /** Without a database handle the Postgres store opens a pool per publish (ingest, per request). */
  readonly store: EventStore;
  /** Redis, when events or scope locks go through it: readiness and health check it. */
  readonly redis?: Redis;
  /** Stream upkeep for the sweeper; absent when events do not travel in streams. */
  readonly streams?: StreamUpkeep;
  /** Where replay copies wait, behind live traffic (a stream, or a lane of the events table). */
  replayLane(): ReplayLane;
  /** Scope locks for one invocation (Postgres ones hold a connection of their own: close them). */
  scopeLocks(): ScopeLocks;
  filterState(): FilterState;
}

/** Upstash, when the deployment configures it (it may on either event backend). */
export function openUpstash(cfg: Config): Redis | undefined {
  return cfg.UPSTASH_REDIS_REST_URL && cfg.UPSTASH_REDIS_REST_TOKEN ? openRedis(cfg) : undefined;
}

/**
 * The bundle for `cfg`. `db` (the invocation's Postgres) is needed to consume, for the
 * Postgres replay lane and filter state; publishing works without it.
 */
export function openBackend(cfg: Config, db?: DbHandle): Backend {
  const keys = redisKeys(cfg.REDIS_PREFIX);
  const upstash = openUpstash(cfg);
  const needDb = (what: string): DbHandle => {
    if (!db) throw new Error(`${what} needs the invocation's Postgres handle (openBackend(cfg, db))`);
    return db;
  };
  // Config validation makes EVENT_BACKEND=redis imply Upstash; Redis locks without it fail on use.
  const redis = cfg.EVENT_BACKEND === "redis" || cfg.LOCK_BACKEND === "redis" ? upstash : undefined;
  const scopeLocks = (): ScopeLocks =>
    cfg.LOCK_BACKEND === "postgres"
      ? PgScopeLocks.open(cfg)
      : new RedisScopeLocks(redis ?? openRedis(cfg), keys, cfg.LOCK_LEASE_MS, db?.db);

  if (cfg.EVENT_BACKEND === "redis") {
    const streams = new RedisLanes(redis!, cfg.REDIS_PREFIX);
    return {
      kind: "redis",
      store: new RedisStreamStore(redis!, cfg, db?.db),
      redis,
      streams,
      replayLane: () => streams.replayLane(),
      scopeLocks,
      filterState: () => new RedisFilterState(redis!, keys.filterState),
    };
  }
  const store = new PostgresEventStore(cfg, db?.db);
  return {
    kind: "postgres",
    store,
    ...(redis ? { redis } : {}),
    replayLane: () => store.replayLane(),
    scopeLocks,
    filterState: () => new PgFilterState(needDb("Postgres filter state").db),
  };
}

/** The hot-data cache: Upstash when configured and CACHE_ENABLED, else every call a miss. */
export function openCache(cfg: Config): HotCache {
  return new HotCache(cfg.CACHE_ENABLED ? (openUpstash(cfg) ?? null) : null, cfg.REDIS_PREFIX);
}

/**
 * Runs `fn` with where metrics accumulate: the Upstash hash, else the Postgres table - on
 * `db`, the invocation's own pool, when given (no connection beyond its DB_POOL_MAX), else
 * on a pool opened for it.
 */
export async function withMetricsSink<T>(
  cfg: Config,
  fn: (sink: MetricsSink) => Promise<T>,
  db?: DbHandle,
): Promise<T> {
  const upstash = openUpstash(cfg);
  if (upstash) return fn(new RedisMetricsSink(upstash, cfg.REDIS_PREFIX));
  if (db) return fn(new PgMetricsSink(db.db));
  const h = openDb(cfg);
  try {
    return await fn(new PgMetricsSink(h.db));
  } finally {
    await h.close();
  }
}

/** Flushes this isolate's buffered counters (through `db` when given); never throws (metrics must not fail work). */
export async function flushMetrics(cfg: Config, db?: DbHandle): Promise<void> {
  await withMetricsSink(cfg, flush, db).catch((e: unknown) => {
    console.warn(
      JSON.stringify({ level: "warn", msg: "metrics flush failed", error: String((e as Error)?.message ?? e) }),
    );
  });
}

export type { EventStore };
