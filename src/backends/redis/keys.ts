/**
 * Every Redis key the system uses, in one place. All keys start with REDIS_PREFIX, so
 * deployments (and test files) can share one Redis without seeing each other's data.
 */
export function redisKeys(prefix: string) {
  return {
    /** The event stream of one shard (0-based). */
    stream: (shard: number) => `${prefix}:stream:${shard}`,
    /** The consumer group every shard's consumers join. */
    group: "reflex-consumers",
    /** Dead-letter stream: one entry per event that reached EVENT_MAX_ATTEMPTS (Postgres stays the record). */
    dlq: `${prefix}:dlq`,
    /**
     * The replay lane: replay jobs republish here, not into the shard streams, and it has its
     * own consumer group (groups are per stream) drained by the replay runner at the job's
     * rate, so a replay of a million events never queues in front of live traffic.
     */
    replayLane: `${prefix}:replay`,
    /** Scope lock (locks on Redis): holds the owner's token, expires after LOCK_LEASE_MS. */
    lock: (scope: string) => `${prefix}:lock:${scope}`,
    /** A scope's fencing counter (locks on Redis): n the last token granted, r the last released. */
    fence: (scope: string) => `${prefix}:fence:${scope}`,
    /** Exists while Redis keeps its data (no expiry): missing, every earlier fencing token is fenced off. */
    fenceEpoch: `${prefix}:fence-epoch`,
    /** State of stateful trigger filters (rate limit, dedupe): `name` is trigger/filter/key/window. */
    filterState: (name: string) => `${prefix}:filter:${name}`,
    /** Wake-up debounce gate (ingest): exists while a wake-up window is open (PX WAKE_DEBOUNCE_MS). */
    wake: `${prefix}:wake`,
    /** Webhook delivery seen (ingest): holds the first event's id for DEDUPE_WINDOW_S. */
    dedupe: (key: string) => `${prefix}:dedupe:${key}`,
    /** Prefix of @upstash/ratelimit's keys (ingest, per API key and per webhook source). */
    ratelimit: `${prefix}:ratelimit`,
    /** Hot-data cache (./cache.ts): `name` is e.g. "health" or "event:<id>". */
    cache: (name: string) => `${prefix}:cache:${name}`,
    /** Metrics counters (src/obs/metrics.ts): one hash, field = series. */
    metrics: `${prefix}:metrics`,
  };
}

export type RedisKeys = ReturnType<typeof redisKeys>;

/**
 * Which shard an event goes to: FNV-1a of its scope key, mod the shard count. Events of
 * one scope always share a shard, so their order in the stream is their order of arrival.
 */
export function shardOf(scope: string, shards: number): number {
  if (shards <= 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < scope.length; i++) {
    h ^= scope.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % shards;
}
