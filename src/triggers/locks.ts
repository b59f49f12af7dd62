/**
 * Scoped locks: events that share a scope key are handled one at a time, also across
 * concurrent invocations. Within one invocation the consumer already serialises a scope
 * (src/consume/dispatch.ts); these locks exclude the other invocations.
 *
 * The consumer locks the scopes of a whole batch at once, so both backends take and release
 * many scopes per call - one Redis command or one Postgres round trip per batch, instead of
 * one or two per scope.
 *
 *  - LOCK_BACKEND=redis: the @upstash/lock algorithm (SET key <owner token> NX PX <lease>;
 *    release and renew only when the key still holds our token, in a script), applied to many
 *    keys per script call. Token-owned and expiring: a crashed invocation's locks free
 *    themselves after LOCK_LEASE_MS; a live one renews them while its batch runs.
 *  - LOCK_BACKEND=postgres: session advisory locks (pg_try_advisory_lock) on one pooled
 *    connection held for the invocation - one connection per invocation, whatever the scope
 *    count (mind DB_POOL_MAX x concurrent invocations). A crashed invocation's session ends
 *    with its socket, and Postgres frees its locks.
 */
import type { Pool, PoolClient } from "@neondatabase/serverless";
import type { Redis } from "../store/redis";

export interface ScopeLocks {
  /** Takes every free scope of `scopes` without waiting; returns the ones now held by us. */
  tryAcquire(scopes: string[]): Promise<Set<string>>;
  release(scopes: string[]): Promise<void>;
  /** Extends the lease of scopes we hold (Redis); Postgres locks need none. */
  renew(scopes: string[]): Promise<void>;
  /** Releases everything still held and frees resources. */
  close(): Promise<void>;
}

// KEYS: lock keys. ARGV[1] token, ARGV[2] lease ms. Returns 1/0 per key.
const ACQUIRE = `
local out = {}
for i = 1, #KEYS do
  if redis.call('SET', KEYS[i], ARGV[1], 'NX', 'PX', ARGV[2]) then out[i] = 1
  elseif redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    out[i] = 1
  else out[i] = 0 end
end
return out
`;
const RELEASE = `
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then n = n + redis.call('DEL', KEYS[i]) end
end
return n
`;
const RENEW = `
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then n = n + redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
end
return n
`;

export class RedisScopeLocks implements ScopeLocks {
  private readonly held = new Set<string>();
  readonly token = `lk-${crypto.randomUUID()}`;

  constructor(
    private readonly redis: Redis,
    private readonly keyOf: (scope: string) => string,
    private readonly leaseMs: number,
  ) {}

  async tryAcquire(scopes: string[]): Promise<Set<string>> {
    const want = scopes.filter((s) => !this.held.has(s));
    if (want.length) {
      const r = (await this.redis.eval(ACQUIRE, want.map(this.keyOf), [this.token, String(this.leaseMs)])) as number[];
      want.forEach((s, i) => {
        if (Number(r[i]) === 1) this.held.add(s);
      });
    }
    return new Set(scopes.filter((s) => this.held.has(s)));
  }

  async release(scopes: string[]): Promise<void> {
    const mine = scopes.filter((s) => this.held.has(s));
    if (!mine.length) return;
    for (const s of mine) this.held.delete(s);
    await this.redis.eval(RELEASE, mine.map(this.keyOf), [this.token]);
  }

  async renew(scopes: string[]): Promise<void> {
    const mine = scopes.filter((s) => this.held.has(s));
    if (mine.length) await this.redis.eval(RENEW, mine.map(this.keyOf), [this.token, String(this.leaseMs)]);
  }

  async close(): Promise<void> {
    await this.release([...this.held]);
  }
}

export class PgScopeLocks implements ScopeLocks {
  private readonly held = new Set<string>();
  private client?: Promise<PoolClient>;

  constructor(private readonly pool: Pool) {}

  private conn(): Promise<PoolClient> {
    return (this.client ??= this.pool.connect());
  }

  async tryAcquire(scopes: string[]): Promise<Set<string>> {
    const want = scopes.filter((s) => !this.held.has(s));
    if (want.length) {
      const c = await this.conn();
      // 64-bit keys (hashtextextended) make collisions between scopes negligible; a collision
      // would only serialise two scopes, never let two holders in.
      const r = await c.query<{ k: string }>(
        "SELECT k FROM unnest($1::text[]) AS k WHERE pg_try_advisory_lock(hashtextextended(k, 0))",
        [want],
      );
      for (const row of r.rows) this.held.add(row.k);
    }
    return new Set(scopes.filter((s) => this.held.has(s)));
  }

  async release(scopes: string[]): Promise<void> {
    const mine = scopes.filter((s) => this.held.has(s));
    if (!mine.length) return;
    for (const s of mine) this.held.delete(s);
    const c = await this.conn();
    await c.query("SELECT pg_advisory_unlock(hashtextextended(k, 0)) FROM unnest($1::text[]) AS k", [mine]);
  }

  async renew(): Promise<void> {}

  async close(): Promise<void> {
    if (!this.client) return;
    const c = await this.client;
    this.client = undefined;
    this.held.clear();
    // Destroy rather than return the connection: its session (and any lock still on it) ends.
    c.release(true);
  }
}
