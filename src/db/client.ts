/**
 * Postgres access: `@neondatabase/serverless` through Drizzle.
 *
 * In Workers a Pool must not outlive the request that made it, so callers create one per
 * invocation with `openDb()` and end it with `close()` (in `ctx.waitUntil`).
 * Locally, NEON_WS_PROXY points the unchanged driver at local/neon-proxy.ts.
 */
import { Client, Pool } from "@neondatabase/serverless";
import { drizzle, type NeonDatabase } from "drizzle-orm/neon-serverless";
import type { Config } from "../config";
import { countPgRoundTrip } from "../obs/usage";
import * as schema from "./schema";

export type Db = NeonDatabase<typeof schema>;

export interface DbHandle {
  db: Db;
  pool: Pool;
  close(): Promise<void>;
}

/**
 * Settings that point one Neon client at a plain-WebSocket proxy (local development and
 * tests). Applied per client, not to the global `neonConfig`, so pools aimed at different
 * proxies (a test's private, fault-injected one beside the shared one) never cross.
 */
export function applyLocalProxy(client: Client, address: string): Client {
  client.neonConfig.wsProxy = (host, port) => `${address}/v1?address=${host}:${port}`;
  client.neonConfig.useSecureWebSocket = false;
  client.neonConfig.pipelineTLS = false;
  client.neonConfig.pipelineConnect = false;
  return client;
}

function newPool(url: string, max: number, timeoutMs: number, proxy: string | undefined): Pool {
  const pool = new Pool({
    connectionString: url,
    max,
    // Every wait gets a deadline: getting a connection (pool slot and handshake) and each
    // query's answer. Without them a socket cut mid-query can leave a run waiting forever,
    // and pool.end() (which waits for checked-out clients) with it.
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
  });
  // The Neon Pool builds its connections with its `Client` class. A subclass counts round
  // trips for the metrics and, locally, applies the proxy settings per client, which keeps
  // them local to this pool.
  (pool as unknown as { Client: typeof Client }).Client = class ReflexClient extends Client {
    constructor(config?: ConstructorParameters<typeof Client>[0]) {
      super(config);
      if (proxy !== undefined) applyLocalProxy(this, proxy);
      const query = this.query.bind(this) as (...a: unknown[]) => unknown;
      this.query = ((...a: unknown[]) => {
        countPgRoundTrip();
        return query(...a);
      }) as Client["query"];
    }
  };
  return pool;
}

type DbConfig = Pick<Config, "DATABASE_URL" | "DB_POOL_MAX" | "NEON_WS_PROXY"> & Partial<Pick<Config, "DB_TIMEOUT_MS">>;

export function openDb(cfg: DbConfig, url = cfg.DATABASE_URL): DbHandle {
  const timeoutMs = cfg.DB_TIMEOUT_MS ?? 10_000;
  const pool = newPool(url, cfg.DB_POOL_MAX, timeoutMs, cfg.NEON_WS_PROXY);
  // An idle client that loses its socket emits 'error' on the pool; the next query reconnects.
  pool.on("error", () => {});
  let closed: Promise<void> | undefined;
  return {
    db: drizzle({ client: pool, schema }),
    pool,
    close: () => (closed ??= endWithin(pool, timeoutMs)),
  };
}

/**
 * pool.end(), given up after `ms`. It waits for every client to end, and a client whose
 * socket was cut mid-query (its query timed out) may never finish ending; the caller must
 * not wait on it for ever. The sockets die with the isolate.
 */
async function endWithin(pool: Pool, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    pool.end().catch(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}

/**
 * A handle for reads that tolerate replica lag (history listing, event detail, the DLQ
 * list): DATABASE_READ_URL when set, else the primary. Replay scans stay on the primary on
 * purpose: a lagging replica would silently leave the newest events of a range out of a
 * replay, while a listing that is a second behind only shows them on the next page load.
 */
export function openReadDb(cfg: DbConfig & Pick<Config, "DATABASE_READ_URL">): DbHandle {
  return openDb(cfg, cfg.DATABASE_READ_URL ?? cfg.DATABASE_URL);
}

/** One round trip to Postgres (SELECT 1), for readiness and health checks. */
export async function pingDb(h: DbHandle): Promise<void> {
  await h.pool.query("select 1");
}
