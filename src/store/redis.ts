/**
 * The Upstash Redis client (REST). Locally UPSTASH_REDIS_REST_URL points at
 * local/upstash-gateway.ts; in production at the Upstash database.
 *
 * automaticDeserialization is off: values come back exactly as stored (strings), and the
 * code that wrote them parses them. (With it on, a stream field "1" comes back as 1.)
 */
import { Redis } from "@upstash/redis/cloudflare";
import type { Config } from "../config";
import { countRedisRequest } from "../obs/usage";

export function openRedis(cfg: Pick<Config, "UPSTASH_REDIS_REST_URL" | "UPSTASH_REDIS_REST_TOKEN"> & Partial<Pick<Config, "REDIS_TIMEOUT_MS">>): Redis {
  if (!cfg.UPSTASH_REDIS_REST_URL || !cfg.UPSTASH_REDIS_REST_TOKEN) {
    throw new Error("Redis is not configured (UPSTASH_REDIS_REST_URL / UPSTASH_REDIS_REST_TOKEN)");
  }
  const redis = new Redis({
    url: cfg.UPSTASH_REDIS_REST_URL,
    token: cfg.UPSTASH_REDIS_REST_TOKEN,
    automaticDeserialization: false,
    // Fail fast: ingest answers 503 rather than holding the request through long backoffs.
    retry: { retries: 2, backoff: (n) => 25 * 2 ** n },
    // A request that never answers must not hold an invocation (and its scope locks) forever:
    // each request gets its own deadline (a function, so every request starts a fresh one).
    signal: () => AbortSignal.timeout(cfg.REDIS_TIMEOUT_MS ?? 10_000),
  });
  // Every request passes here: count commands for the metrics (what Upstash bills).
  redis.use((req, next) => {
    countRedisRequest(req.body);
    return next(req);
  });
  return redis;
}

export type { Redis };

/** One round trip to Redis (PING), for readiness and health checks. */
export async function pingRedis(redis: Redis): Promise<void> {
  const r = await redis.ping();
  if (r !== "PONG") throw new Error(`unexpected PING reply: ${String(r)}`);
}
