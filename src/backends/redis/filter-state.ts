/**
 * FilterState in Redis: each round of checks (../filter-batch.ts) is ONE script call, so
 * stateful filters cost one command per batch, not per event. The script runs the checks in
 * the order they were queued.
 *
 * Keys start with REDIS_PREFIX (./keys.ts) and expire on their own.
 */

import { BatchedFilterState, type Check } from "../filter-batch";
import type { Redis } from "./client";
import { type RedisScripts, redisScripts } from "./scripts";

export class RedisFilterState extends BatchedFilterState {
  private readonly scripts: RedisScripts;

  constructor(
    redis: Redis,
    private readonly keyOf: (name: string) => string,
  ) {
    super();
    this.scripts = redisScripts(redis);
  }

  protected stateKey(_op: Check["op"], key: string): string {
    return this.keyOf(key);
  }

  protected send(batch: Check[]): Promise<boolean[]> {
    return this.scripts.filterChecks(batch);
  }
}
