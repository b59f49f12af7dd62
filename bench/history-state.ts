/**
 * The state every system's Postgres table starts a run in, for bench/protocol.ts: the
 * history tables may hold `preloaded` completed rows (written once, kept across runs), and
 * before each run everything a previous run added is deleted and the table VACUUM ANALYZEd -
 * the same for our `events` table (both backends, and BullMQ's equal-work upsert into it) and
 * pg-boss's job table. Preloaded rows are told apart by type (`hist.*`, 20 types over 100
 * sources, a month of timestamps) or, in pg-boss, by `data.pre`.
 */
import pg from "pg";

/** The type of every event a protocol run publishes (preloaded history has other types). */
export const RUN_TYPE = "bench.noop";

async function withClient<T>(url: string, f: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await f(c);
  } finally {
    await c.end();
  }
}

/** Adds `rows` completed events to history, 100,000 per statement. */
export async function preloadEvents(url: string, rows: number): Promise<void> {
  await withClient(url, async (c) => {
    for (let from = 1; from <= rows; from += 100_000) {
      const to = Math.min(rows, from + 99_999);
      await c.query(
        `INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts,
                             created_at, updated_at, processed_at)
         SELECT gen_random_uuid(), 'hist.t' || (g % 20), 'live-' || (g % 100), t,
                jsonb_build_object('seq', g, 'body', jsonb_build_object(
                  'text', 'a small payload of a realistic size for a webhook-ish event', 'n', g)),
                jsonb_build_object('trace_id', md5(g::text)), 'live-' || (g % 100), 'completed', 1, t, t, t
           FROM generate_series($1::int, $2::int) g, LATERAL (SELECT now() - g * interval '2 seconds' AS t) x`,
        [from, to],
      );
    }
    await c.query("VACUUM ANALYZE events");
  });
}

/**
 * Deletes what earlier runs added to history, then VACUUM ANALYZE. The scope fences and
 * filter state go too: a run on the other backend (or after the bench's Redis was emptied,
 * which restarts the Redis lock tokens) would otherwise meet floors it never set and have
 * its outcomes refused.
 */
export async function resetEvents(url: string): Promise<void> {
  await withClient(url, async (c) => {
    await c.query("DELETE FROM events WHERE type NOT LIKE 'hist.%'");
    await c.query("TRUNCATE scope_fences, filter_state, wake_gate");
    await c.query("VACUUM ANALYZE events");
  });
}

/** Adds `rows` completed jobs to pg-boss's queue `queue` (its partition of `schema`.job). */
export async function preloadPgBoss(url: string, schema: string, queue: string, rows: number): Promise<void> {
  await withClient(url, async (c) => {
    for (let from = 1; from <= rows; from += 100_000) {
      const to = Math.min(rows, from + 99_999);
      await c.query(
        `INSERT INTO ${schema}.job (name, data, state, created_on, started_on, completed_on)
         SELECT $3, jsonb_build_object('pre', true, 'seq', g, 'body', jsonb_build_object(
                  'text', 'a small payload of a realistic size for a webhook-ish event', 'n', g)),
                'completed', t, t, t
           FROM generate_series($1::int, $2::int) g, LATERAL (SELECT now() - g * interval '2 seconds' AS t) x`,
        [from, to, queue],
      );
    }
    await c.query(`VACUUM ANALYZE ${schema}.job`);
  });
}

/** Deletes the jobs earlier runs added to pg-boss's queue, then VACUUM ANALYZE. */
export async function resetPgBoss(url: string, schema: string, queue: string): Promise<void> {
  await withClient(url, async (c) => {
    await c.query(`DELETE FROM ${schema}.job WHERE name = $1 AND NOT coalesce(data ? 'pre', false)`, [queue]);
    await c.query(`VACUUM ANALYZE ${schema}.job`);
  });
}

/** VACUUM ANALYZE of `table`, after a run's queue was filled (every system's table gets it). */
export async function analyze(url: string, table: string): Promise<void> {
  await withClient(url, (c) => c.query(`VACUUM ANALYZE ${table}`));
}
