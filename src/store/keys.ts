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
