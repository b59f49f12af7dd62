/**
 * Scope locks on Postgres: session advisory locks
 * (pg_try_advisory_lock) on one pooled connection held for the invocation - one connection
 * per invocation, whatever the scope count (mind DB_POOL_MAX x concurrent invocations). A
 * crashed invocation's session ends with its socket, and Postgres frees its locks.
 */
import type { Pool, PoolClient } from "@neondatabase/serverless";
import type { ScopeLocks } from "../types";

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
