/**
 * Hot-data cache in Redis with short TTLs (the scaling page's "caching layer for hot
 * data"). Values are JSON. Built without a client (CACHE_ENABLED=false, or no Upstash:
 * src/backends/index.ts openCache), every call is a miss or a no-op.
 *
 * A cache failure never fails the request: reads fall through to the source, writes are
 * dropped.
 */

import type { Redis } from "./client";
import { redisKeys } from "./keys";

export class HotCache {
  private keys: ReturnType<typeof redisKeys>;
  constructor(
    private redis: Redis | null,
    prefix: string,
  ) {
    this.keys = redisKeys(prefix);
  }

  get enabled(): boolean {
    return this.redis !== null;
  }

  async get<T>(name: string): Promise<T | undefined> {
    if (!this.redis) return undefined;
    try {
      const v = await this.redis.get<string>(this.keys.cache(name));
      return typeof v === "string" ? (JSON.parse(v) as T) : undefined;
    } catch {
      return undefined;
    }
  }

  async set(name: string, value: unknown, ttlSeconds: number): Promise<void> {
    if (!this.redis) return;
    await this.redis.set(this.keys.cache(name), JSON.stringify(value), { ex: ttlSeconds }).catch(() => {});
  }

  /** Drops entries (one DEL for all of them). */
  async invalidate(names: string[]): Promise<void> {
    if (!this.redis || names.length === 0) return;
    await this.redis.del(...names.map((n) => this.keys.cache(n))).catch(() => {});
  }
}
