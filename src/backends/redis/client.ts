/**
 * The Upstash Redis client (REST). Locally UPSTASH_REDIS_REST_URL points at
 * local/upstash-gateway.ts; in production at the Upstash database.
 *
 * automaticDeserialization is off: values come back exactly as stored (strings), and the
 * code that wrote them parses them. (With it on, a stream field "1" comes back as 1.)
 */
import { Redis } from "@upstash/redis/cloudflare";
import type { Config } from "../../config";
import { countRedisRequest } from "../../obs/usage";

/**
 * One client per isolate and configuration, not one per request: building an Upstash client
 * is not free (its auto-pipeline executor builds a Pipeline, a few hundred closures), and
 * the profile of `POST /events` in workerd showed it as a quarter of the request's CPU. The
 * client holds no connection or other I/O object - every command is its own fetch() in the
 * calling request - so sharing it across requests is safe. Auto-pipelining is off for that
 * reason: it would batch commands of concurrent requests into one fetch, made in one
 * request's context and resolving another's promises, which Workers does not allow.
 */
const clients = new Map<string, Redis>();

type RedisConfig = Pick<Config, "UPSTASH_REDIS_REST_URL" | "UPSTASH_REDIS_REST_TOKEN"> &
  Partial<Pick<Config, "REDIS_TIMEOUT_MS">>;

export function openRedis(cfg: RedisConfig): Redis {
  if (!cfg.UPSTASH_REDIS_REST_URL || !cfg.UPSTASH_REDIS_REST_TOKEN) {
    throw new Error("Redis is not configured (UPSTASH_REDIS_REST_URL / UPSTASH_REDIS_REST_TOKEN)");
  }
  const timeoutMs = cfg.REDIS_TIMEOUT_MS ?? 10_000;
  const key = `${cfg.UPSTASH_REDIS_REST_URL}\n${cfg.UPSTASH_REDIS_REST_TOKEN}\n${timeoutMs}`;
  let redis = clients.get(key);
  if (!redis) {
    redis = newClient(cfg.UPSTASH_REDIS_REST_URL, cfg.UPSTASH_REDIS_REST_TOKEN, timeoutMs);
    clients.set(key, redis);
  }
  return redis;
}

function newClient(url: string, token: string, timeoutMs: number): Redis {
  const redis = new Redis({
    url,
    token,
    automaticDeserialization: false,
    // Replies as plain JSON strings, not base64: everything this project stores is UTF-8
    // text (ingest refuses anything else), and decoding base64 byte by byte in JS was a
    // tenth of the consumer's CPU in bench/drain.
    responseEncoding: false,
    enableAutoPipelining: false,
    // No SDK/platform headers on every request (and no work to build them).
    enableTelemetry: false,
    // Fail fast: ingest answers 503 rather than holding the request through long backoffs.
    retry: { retries: 2, backoff: (n) => 25 * 2 ** n },
    // A request that never answers must not hold an invocation (and its scope locks) forever:
    // each request gets its own deadline (a function, so every request starts a fresh one).
    signal: () => AbortSignal.timeout(timeoutMs),
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
