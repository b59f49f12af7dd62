/**
 * The operations on one row named by id (src/operations/db-scope.ts byId), through the
 * admin API on both backends: an id that is not a UUID and a UUID that names nothing both
 * answer 404 with the route's own problem, and nothing is stored.
 */
import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config";
import { type DbHandle, openDb } from "../../src/db/client";
import { ADMIN_TOKEN, call } from "../support/admin";
import { freshEnv } from "../support/env";

const open: DbHandle[] = [];
afterEach(async () => {
  while (open.length) await open.pop()!.close();
});

const routes: Array<{ method: string; path: (id: string) => string; body?: unknown; title: string }> = [
  { method: "GET", path: (id) => `/events/${id}`, title: "Event not found" },
  { method: "POST", path: (id) => `/events/dlq/${id}/retry`, title: "Not in the DLQ" },
  { method: "DELETE", path: (id) => `/events/dlq/${id}`, body: { reason: "spam" }, title: "Not in the DLQ" },
  { method: "GET", path: (id) => `/replays/${id}`, title: "Replay not found" },
  { method: "POST", path: (id) => `/replays/${id}/cancel`, title: "Replay not found" },
];

describe.each(["redis", "postgres"])("one row by id (%s)", (backend) => {
  it("a malformed id and an unknown one are the route's 404, and nothing is written", async () => {
    const env = await freshEnv({ ADMIN_TOKEN, EVENT_BACKEND: backend });
    for (const r of routes) {
      for (const id of ["not-a-uuid", crypto.randomUUID()]) {
        const a = await call(env, r.method, r.path(id), r.body === undefined ? {} : { body: r.body });
        expect(a.status, `${r.method} ${r.path(id)}`).toBe(404);
        expect(a.headers.get("content-type")).toMatch(/application\/problem\+json/);
        expect(a.body.title).toBe(r.title);
        expect(a.body.detail).toContain(id);
      }
    }
    const db = openDb(loadConfig(env));
    open.push(db);
    const n = await db.db.execute<{ e: number; j: number }>(
      sql`SELECT (SELECT count(*)::int FROM events) AS e, (SELECT count(*)::int FROM replay_jobs) AS j`,
    );
    expect(n.rows[0]).toEqual({ e: 0, j: 0 });
  });
});
