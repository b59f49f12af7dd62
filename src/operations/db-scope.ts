/**
 * A Postgres handle for one operator request (admin API, dashboard): opened per request
 * (Workers must not share a Pool across requests) and closed after the response, in
 * waitUntil when there is an execution context. `fn` gets the Drizzle handle, the
 * configuration, and the whole handle (its pool) for code that needs more than queries (a
 * backend's store). `byId` is the shape of every operation on one row named in a path.
 */
import type { Config } from "../config";
import { type Db, type DbHandle, openDb, openReadDb } from "../db/client";
import type { HTTPProblem } from "../http/problem";

/**
 * What an operation needs of the request it serves: the parsed configuration, and the
 * execution context (a getter that throws outside a worker). A Hono context is one.
 */
export interface RequestScope {
  readonly var: { readonly config: Config };
  readonly executionCtx: { waitUntil(p: Promise<unknown>): void };
}

export async function withDb<T>(
  c: RequestScope,
  mode: "read" | "write",
  fn: (db: Db, cfg: Config, handle: DbHandle) => Promise<T>,
): Promise<T> {
  const cfg = c.var.config;
  const h = mode === "read" ? openReadDb(cfg) : openDb(cfg);
  try {
    return await fn(h.db, cfg, h);
  } finally {
    let ctx: { waitUntil(p: Promise<unknown>): void } | undefined;
    try {
      ctx = c.executionCtx;
    } catch {
      ctx = undefined; // app.request() in a script: no execution context
    }
    if (ctx) ctx.waitUntil(h.close());
    else await h.close();
  }
}

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * An operation on one row named by `id`: an id that is not a UUID names nothing (no query is
 * made for it), else `fn` runs with a handle of `mode`; no row (null) is the `missing` problem.
 */
export async function byId<T>(
  c: RequestScope,
  mode: "read" | "write",
  id: string,
  fn: (db: Db, cfg: Config, handle: DbHandle) => Promise<T | null>,
  missing: (id: string) => HTTPProblem,
): Promise<T> {
  const found = UUID_RE.test(id) ? await withDb(c, mode, fn) : null;
  if (found === null) throw missing(id);
  return found;
}
