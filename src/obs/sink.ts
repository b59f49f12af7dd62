/**
 * Picks where metrics accumulate: the Redis hash when the deployment has Redis, else the
 * Postgres table. `flushMetrics` is what the worker calls after a run or request.
 */
import type { Config } from "../config";
import { openDb } from "../db/client";
import { PgMetricsSink } from "../db/metrics-sink";
import { RedisMetricsSink } from "../store/metrics-sink";
import { openRedis } from "../store/redis";
import { flush, type MetricsSink } from "./metrics";

export function hasRedis(cfg: Config): boolean {
  return Boolean(cfg.UPSTASH_REDIS_REST_URL && cfg.UPSTASH_REDIS_REST_TOKEN);
}

/** Runs `fn` with the deployment's sink (opening and closing a pool when it is Postgres). */
export async function withMetricsSink<T>(cfg: Config, fn: (sink: MetricsSink) => Promise<T>): Promise<T> {
  if (hasRedis(cfg)) return fn(new RedisMetricsSink(openRedis(cfg), cfg.REDIS_PREFIX));
  const h = openDb(cfg);
  try {
    return await fn(new PgMetricsSink(h.db));
  } finally {
    await h.close();
  }
}

/** Flushes this isolate's buffered counters; never throws (metrics must not fail work). */
export async function flushMetrics(cfg: Config): Promise<void> {
  await withMetricsSink(cfg, flush).catch((e: unknown) => {
    console.warn(JSON.stringify({ level: "warn", msg: "metrics flush failed", error: String((e as Error)?.message ?? e) }));
  });
}
