/**
 * Postgres access: `@neondatabase/serverless` through Drizzle.
 *
 * In Workers a Pool must not outlive the request that made it, so callers create one per
 * invocation with `openDb()` and end it with `close()` (in `ctx.waitUntil`).
 * Locally, NEON_WS_PROXY points the unchanged driver at local/neon-proxy.ts.
 */
import { Pool, neonConfig } from "@neondatabase/serverless";
import { drizzle, type NeonDatabase } from "drizzle-orm/neon-serverless";
import type { Config } from "../config";
import * as schema from "./schema";

export type Db = NeonDatabase<typeof schema>;

export interface DbHandle {
  db: Db;
  pool: Pool;
  close(): Promise<void>;
}

let proxyConfigured: string | undefined;

/** Points the Neon driver at a plain-WebSocket proxy (local development and tests). */
export function useLocalNeonProxy(address: string) {
  if (proxyConfigured === address) return;
  neonConfig.wsProxy = (host, port) => `${address}/v1?address=${host}:${port}`;
  neonConfig.useSecureWebSocket = false;
  neonConfig.pipelineTLS = false;
  neonConfig.pipelineConnect = false;
  proxyConfigured = address;
}

export function openDb(cfg: Pick<Config, "DATABASE_URL" | "DB_POOL_MAX" | "NEON_WS_PROXY">, url = cfg.DATABASE_URL): DbHandle {
  if (cfg.NEON_WS_PROXY) useLocalNeonProxy(cfg.NEON_WS_PROXY);
  const pool = new Pool({ connectionString: url, max: cfg.DB_POOL_MAX });
  // An idle client that loses its socket emits 'error' on the pool; the next query reconnects.
  pool.on("error", () => {});
  let closed: Promise<void> | undefined;
  return {
    db: drizzle({ client: pool, schema }),
    pool,
    close: () => (closed ??= pool.end().catch(() => {})),
  };
}

/**
 * A handle for reads that tolerate replica lag (history listing, event detail, replay
 * scans): DATABASE_READ_URL when set, else the primary.
 */
export function openReadDb(cfg: Pick<Config, "DATABASE_URL" | "DATABASE_READ_URL" | "DB_POOL_MAX" | "NEON_WS_PROXY">): DbHandle {
  return openDb(cfg, cfg.DATABASE_READ_URL ?? cfg.DATABASE_URL);
}
