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
 *
 * Fencing (src/backends/fences.ts): the statement that takes the locks also counts each grant in
 * scope_fences and floors a predecessor that never released (its session died); the one that
 * lets them go marks the grants released first.
 */
import type { Pool, PoolClient } from "@neondatabase/serverless";
import type { SQL } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import type { Config } from "../../config";
import { openDb } from "../../db/client";
import { grantFences, releaseFences } from "../fences";
import type { ScopeLocks } from "../types";

const dialect = new PgDialect();

type LockConfig = Pick<Config, "DATABASE_URL" | "DATABASE_DIRECT_URL" | "NEON_WS_PROXY" | "DB_TIMEOUT_MS">;

export class PgScopeLocks implements ScopeLocks {
  /** Scopes held, each with its grant's fencing token (src/backends/fences.ts). */
  private readonly held = new Map<string, number>();
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
      // would only serialise two scopes, never let two holders in. The grant and its token
      // are one statement.
      const r = await query<{ scope: string; fence: string }>(c, grantFences(want));
      for (const row of r.rows) this.held.set(row.scope, Number(row.fence));
    }
    return new Set(scopes.filter((s) => this.held.has(s)));
  }

  fence(scope: string): number | undefined {
    return this.held.get(scope);
  }

  async release(scopes: string[]): Promise<void> {
    const mine = scopes.flatMap((scope) => {
      const token = this.held.get(scope);
      return token === undefined ? [] : [{ scope, token }];
    });
    if (!mine.length) return;
    for (const x of mine) this.held.delete(x.scope);
    const c = await this.conn();
    await query(c, releaseFences(mine));
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

/** Runs a statement built with the schema's names on the lock session itself. */
function query<R extends Record<string, unknown>>(c: PoolClient, q: SQL) {
  const { sql, params } = dialect.sqlToQuery(q);
  return c.query<R>(sql, params);
}
