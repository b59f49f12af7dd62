/**
 * Scope locks on Redis: the @upstash/lock algorithm (SET key <owner
 * token> NX PX <lease>; release and renew only when the key still holds our token, in a
 * script), applied to many keys per script call, so a batch's scopes cost one command.
 * Token-owned and expiring: a crashed invocation's locks free themselves after
 * LOCK_LEASE_MS; a live one renews them while its batch runs.
 */
import type { ScopeLocks } from "../types";
import type { Redis } from "./client";
import { type RedisScripts, redisScripts } from "./scripts";

export class RedisScopeLocks implements ScopeLocks {
  private readonly held = new Set<string>();
  readonly token = `lk-${crypto.randomUUID()}`;
  private readonly scripts: RedisScripts;

  constructor(
    redis: Redis,
    private readonly keyOf: (scope: string) => string,
    private readonly leaseMs: number,
  ) {
    this.scripts = redisScripts(redis);
  }

  async tryAcquire(scopes: string[]): Promise<Set<string>> {
    const want = scopes.filter((s) => !this.held.has(s));
    if (want.length) {
      const ours = await this.scripts.lockAcquire(want.map(this.keyOf), this.token, this.leaseMs);
      want.forEach((s, i) => {
        if (ours[i]) this.held.add(s);
      });
    }
    return new Set(scopes.filter((s) => this.held.has(s)));
  }

  async release(scopes: string[]): Promise<void> {
    const mine = scopes.filter((s) => this.held.has(s));
    if (!mine.length) return;
    for (const s of mine) this.held.delete(s);
    await this.scripts.lockRelease(mine.map(this.keyOf), this.token);
  }

  async renew(scopes: string[]): Promise<void> {
    const mine = scopes.filter((s) => this.held.has(s));
    if (mine.length) await this.scripts.lockRenew(mine.map(this.keyOf), this.token, this.leaseMs);
  }

  async close(): Promise<void> {
    await this.release([...this.held]);
  }
}
