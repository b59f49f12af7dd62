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
  /**
   * Lets go of scopes. A backend may keep them until its next call (tryAcquire, close): the
   * Redis one does, and keeps those that call wants again (see RedisScopeLocks).
   */
  release(scopes: string[]): Promise<void>;
  /** Extends the lease of scopes we hold (Redis); Postgres locks need none. */
  renew(scopes: string[]): Promise<void>;
  /** Releases everything still held and frees resources. */
  close(): Promise<void>;
  /** Calls made to the lock backend so far (the consumer reports them; benches count them). */
  readonly calls: number;
}

// KEYS: the first ARGV[3] are keys to let go, the rest keys to take. ARGV[1] token, ARGV[2]
// lease ms. Lets go of the first (only where the key still holds our token), then takes or
// re-takes the rest; returns 1/0 per key taken.
const SWAP = `
local drop = tonumber(ARGV[3])
for i = 1, drop do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
local out = {}
for i = drop + 1, #KEYS do
  if redis.call('SET', KEYS[i], ARGV[1], 'NX', 'PX', ARGV[2]) then out[#out + 1] = 1
  elseif redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    out[#out + 1] = 1
  else out[#out + 1] = 0 end
end
return out
`;
// KEYS: lock keys. ARGV[1] token, ARGV[2] lease ms. Returns 1/0 per key (still ours, extended).
const RENEW = `
local out = {}
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then out[i] = redis.call('PEXPIRE', KEYS[i], ARGV[2]) else out[i] = 0 end
end
return out
`;

/**
 * Token-owned, expiring locks in Redis, many keys per call (the @upstash/lock algorithm;
 * see the top of this file).
 *
 * A consumer run handles batch after batch, and consecutive batches mostly need the same
 * scopes (the same few sources, say). So release() does not call Redis: the scopes are let
 * go by the next tryAcquire, in the same script that takes that batch's scopes - unless
 * that batch wants them again, in which case they are simply kept. A scope we took is known
 * to be ours until its lease ends (no one else can take it before), so one taken or
 * extended very recently (see fresh()) costs no call at all: batch after batch takes its
 * locks with no Redis command, and otherwise with one. Released scopes are never kept past the next
 * tryAcquire or close(); the consumer closes the locks when its run ends.
 */
export class RedisScopeLocks implements ScopeLocks {
  /** Scopes we hold -> when our lease ends at the latest (measured from before the call that set it). */
  private readonly held = new Map<string, number>();
  /** Held scopes released by the caller, let go with the next call. */
  private readonly releasing = new Set<string>();
  readonly token = `lk-${crypto.randomUUID()}`;
  calls = 0;

  constructor(
    private readonly redis: Redis,
    private readonly keyOf: (scope: string) => string,
    private readonly leaseMs: number,
  ) {}

  /**
   * Held, released or not, and taken or extended less than a tenth of the lease ago: a batch
   * that starts with it has nearly the whole lease left, as after a fresh acquire, so the
   * scope gate's renewals (every third of the lease) keep the margin they were sized for.
   */
  private fresh(scope: string, now: number): boolean {
    return (this.held.get(scope) ?? 0) - now > this.leaseMs * 0.9;
  }

  async tryAcquire(scopes: string[]): Promise<Set<string>> {
    const now = Date.now();
    const wanted = new Set(scopes);
    const drop = [...this.releasing].filter((s) => !wanted.has(s));
    const take = [...wanted].filter((s) => !this.fresh(s, now));
    if (drop.length || take.length) {
      // Forgotten before the call: if it fails after Redis let them go, we must not go on
      // believing we hold them (until their lease ends, others merely wait for them).
      for (const s of drop) {
        this.held.delete(s);
        this.releasing.delete(s);
      }
      this.calls++;
      const r = (await this.redis.eval(SWAP, [...drop, ...take].map(this.keyOf), [this.token, String(this.leaseMs), String(drop.length)])) as number[];
      take.forEach((s, i) => {
        if (Number(r[i]) === 1) this.held.set(s, now + this.leaseMs);
        else this.held.delete(s);
      });
    }
    for (const s of wanted) this.releasing.delete(s);
    return new Set(scopes.filter((s) => this.held.has(s)));
  }

  async release(scopes: string[]): Promise<void> {
    for (const s of scopes) if (this.held.has(s)) this.releasing.add(s);
  }

  async renew(scopes: string[]): Promise<void> {
    const mine = scopes.filter((s) => this.held.has(s));
    if (!mine.length) return;
    const now = Date.now();
    this.calls++;
    const r = (await this.redis.eval(RENEW, mine.map(this.keyOf), [this.token, String(this.leaseMs)])) as number[];
    mine.forEach((s, i) => {
      // Not if a tryAcquire let it go meanwhile (this renew may have run before that).
      if (Number(r[i]) === 1 && this.held.has(s)) this.held.set(s, now + this.leaseMs);
    });
  }

  async close(): Promise<void> {
    const all = [...this.held.keys()];
    this.held.clear();
    this.releasing.clear();
    if (!all.length) return;
    this.calls++;
    await this.redis.eval(SWAP, all.map(this.keyOf), [this.token, String(this.leaseMs), String(all.length)]);
  }
}

export class PgScopeLocks implements ScopeLocks {
  private readonly held = new Set<string>();
  private client?: Promise<PoolClient>;
  calls = 0;

  constructor(private readonly pool: Pool) {}

  private conn(): Promise<PoolClient> {
    return (this.client ??= this.pool.connect());
  }

  async tryAcquire(scopes: string[]): Promise<Set<string>> {
    const want = scopes.filter((s) => !this.held.has(s));
    if (want.length) {
      const c = await this.conn();
      this.calls++;
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
    this.calls++;
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
