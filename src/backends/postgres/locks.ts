/**
 * Scope locks on Postgres: session advisory locks (pg_try_advisory_lock) on one connection
 * held for the invocation - one connection per invocation, whatever the scope count. A
 * crashed invocation's session ends with its socket, and Postgres frees its locks.
 *
 * A session lock belongs to one server session, so the lock connection must reach Postgres
 * directly: a transaction-mode pooler (Neon's -pooler host, PgBouncer) hands each
 * transaction whichever server session is free, so an unlock can land on another session
 * (the lock stays held forever) and another client's lock call can land on the holder's
 * session (session locks are re-entrant: two holders). PgScopeLocks.open() connects to
 * DATABASE_DIRECT_URL for that reason (DATABASE_URL when it is not set), in a pool of its
 * own of one connection, beside the invocation's DB_POOL_MAX query connections.
 */
import type { Pool, PoolClient } from "@neondatabase/serverless";
import type { Config } from "../../config";
import { openDb } from "../../db/client";
import type { ScopeLocks } from "../types";

type LockConfig = Pick<Config, "DATABASE_URL" | "DATABASE_DIRECT_URL" | "NEON_WS_PROXY" | "DB_TIMEOUT_MS">;

export class PgScopeLocks implements ScopeLocks {
  private readonly held = new Set<string>();
  private client?: Promise<PoolClient>;

  /** `ownPool`: ends the pool at close (the pool was opened for these locks alone). */
  constructor(
    private readonly pool: Pool,
    private readonly ownPool?: () => Promise<void>,
  ) {}

  /** Locks on a connection of their own: DATABASE_DIRECT_URL, past any pooler, else DATABASE_URL. */
  static open(cfg: LockConfig): PgScopeLocks {
    const h = openDb({ ...cfg, DB_POOL_MAX: 1 }, cfg.DATABASE_DIRECT_URL ?? cfg.DATABASE_URL);
    return new PgScopeLocks(h.pool, () => h.close());
  }

  private conn(): Promise<PoolClient> {
    if (!this.client) {
      const connecting = this.pool.connect().then((c) => {
        // A lost connection took its session, and every lock with it: forget both, so the
        // next call starts a new session instead of failing on the dead one (and the error
        // event of a checked-out client does not go unhandled).
        c.on("error", () => {
          if (this.client !== connecting) return;
          this.client = undefined;
          this.held.clear();
          // Out of the pool, so its slot is free for the next session.
          c.release(true);
        });
        return c;
      });
      // A failed connect is not cached: the next call tries again.
      connecting.catch(() => {
        if (this.client === connecting) this.client = undefined;
      });
      this.client = connecting;
    }
    return this.client;
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
    const client = this.client;
    this.client = undefined;
    this.held.clear();
    try {
      // Destroy rather than return the connection: its session (and any lock still on it) ends.
      if (client) (await client).release(true);
    } catch {
      // It never connected: there is no session to end.
    } finally {
      await this.ownPool?.();
    }
  }
}
