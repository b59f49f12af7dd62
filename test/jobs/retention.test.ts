/**
 * History retention, applied by the DLQ sweeper: final history older than its retention goes,
 * in bounded batches (a backlog drains over several runs), never an open event, never a row
 * someone else holds (SKIP LOCKED: the sweep goes on past it instead of waiting).
 */
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config";
import { ConfigError } from "../../src/errors";
import type { Rig } from "../support/rig";
import { sweepRigsClosedAfterEach } from "../support/sweep";

const sweepRig = sweepRigsClosedAfterEach();

/** `n` events of `kind`, with timestamp `ageDays` ago and updated_at (DLQ entry) `dlqDays` ago. */
async function events(r: Rig, n: number, kind: string, status: string, ageDays: number, dlqDays = 0) {
  await r.db.db.execute(sql`
    INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts, updated_at)
    SELECT gen_random_uuid(), ${kind}, 's', now() - ${ageDays} * interval '1 day' - g * interval '1 second',
           '{}'::jsonb, '{"trace_id":"t"}'::jsonb, 's', ${status}::event_status, 1,
           now() - ${dlqDays} * interval '1 day'
      FROM generate_series(1, ${n}) AS g`);
}

const kinds = async (r: Rig) =>
  Object.fromEntries(
    (await r.rows<{ type: string; n: number }>(sql`SELECT type, count(*)::int AS n FROM events GROUP BY 1`)).map(
      (x) => [x.type, x.n],
    ),
  );
const count = async (r: Rig, table: string) =>
  Number((await r.rows<{ n: number }>(sql.raw(`SELECT count(*)::int AS n FROM ${table}`)))[0]!.n);

describe("history retention (sweeper)", () => {
  it("deletes final history past its retention in bounded batches; open events, recent history and younger dead letters stay", async () => {
    const { r, run } = await sweepRig({
      HISTORY_RETENTION_DAYS: "30",
      DLQ_RETENTION_DAYS: "90",
      DELIVERY_ATTEMPTS_RETENTION_DAYS: "7",
      REPLAY_JOBS_RETENTION_DAYS: "14",
      RETENTION_BATCH_SIZE: "400",
      RETENTION_MAX_BATCHES: "2",
    });
    await events(r, 1000, "old.completed", "completed", 31);
    await events(r, 30, "old.discarded", "discarded", 45);
    await events(r, 20, "recent.completed", "completed", 29);
    // Open events are never deleted, however old their timestamp.
    await events(r, 5, "old.pending", "pending", 400);
    await events(r, 5, "old.processing", "processing", 400);
    // Dead letters count from when they entered the DLQ, not from their timestamp.
    await events(r, 7, "dead.long", "dlq", 400, 91);
    await events(r, 6, "dead.recently", "dlq", 400, 10);
    // Ordered-scope rows go with their event (one left behind would count as in flight).
    await r.db.db.execute(sql`
      INSERT INTO ordered_events (scope, event_id, arrival, hold)
      SELECT 'sc', id, type, true FROM events WHERE type IN ('dead.long', 'dead.recently')`);
    await r.db.db.execute(sql`
      INSERT INTO delivery_attempts (event_id, destination, attempt, duration_ms, at)
      SELECT gen_random_uuid(), 'd', 1, 5, now() - (CASE WHEN g <= 50 THEN 8 ELSE 6 END) * interval '1 day'
        FROM generate_series(1, 80) AS g`);
    await r.db.db.execute(sql`
      INSERT INTO replay_jobs (id, status, from_ts, to_ts, rate, finished_at, updated_at)
      VALUES (gen_random_uuid(), 'done', now(), now(), 1, now() - interval '15 days', now() - interval '15 days'),
             (gen_random_uuid(), 'cancelled', now(), now(), 1, now() - interval '20 days', now() - interval '20 days'),
             (gen_random_uuid(), 'failed', now(), now(), 1, now() - interval '13 days', now() - interval '13 days'),
             (gen_random_uuid(), 'running', now(), now(), 1, NULL, now() - interval '60 days'),
             (gen_random_uuid(), 'scheduled', now(), now(), 1, NULL, now() - interval '60 days')`);

    // First run: two batches of 400 old events, then it stops and says there is more.
    const first = await run();
    expect(first.errors).toEqual([]);
    expect(first.retention).toEqual({ events: 800, dlq: 7, attempts: 50, replayJobs: 2, more: true });
    // The next run takes the rest.
    const second = await run();
    expect(second.retention).toEqual({ events: 230, dlq: 0, attempts: 0, replayJobs: 0, more: false });
    expect(await kinds(r)).toEqual({
      "recent.completed": 20,
      "old.pending": 5,
      "old.processing": 5,
      "dead.recently": 6,
    });
    expect(await count(r, "delivery_attempts")).toBe(30);
    expect(await r.rows(sql`SELECT DISTINCT arrival AS type FROM ordered_events`)).toEqual([{ type: "dead.recently" }]);
    expect(
      (await r.rows<{ status: string }>(sql`SELECT status::text AS status FROM replay_jobs ORDER BY 1`)).map(
        (x) => x.status,
      ),
    ).toEqual(["failed", "running", "scheduled"]);
    expect((await run()).retention).toEqual({ events: 0, dlq: 0, attempts: 0, replayJobs: 0, more: false });
  });

  it("skips rows another transaction holds instead of waiting for them, and deletes them on a later run", async () => {
    const { r, run } = await sweepRig({ HISTORY_RETENTION_DAYS: "30" });
    await events(r, 10, "old.completed", "completed", 60);
    const [held] = await r.rows<{ id: string }>(sql`SELECT id FROM events ORDER BY "timestamp" LIMIT 1`);
    const c = await r.db.pool.connect();
    try {
      await c.query("BEGIN");
      await c.query("SELECT 1 FROM events WHERE id = $1 FOR UPDATE", [held!.id]);
      // Would wait for the lock without SKIP LOCKED (and the test would time out).
      expect((await run()).retention.events).toBe(9);
      expect(await count(r, "events")).toBe(1);
      await c.query("ROLLBACK");
    } finally {
      c.release();
    }
    expect((await run()).retention.events).toBe(1);
    expect(await count(r, "events")).toBe(0);
  });

  it("0 keeps a kind forever", async () => {
    const { r, run } = await sweepRig({
      HISTORY_RETENTION_DAYS: "0",
      DLQ_RETENTION_DAYS: "0",
      DELIVERY_ATTEMPTS_RETENTION_DAYS: "0",
      REPLAY_JOBS_RETENTION_DAYS: "0",
    });
    await events(r, 10, "ancient", "completed", 3650);
    await events(r, 10, "ancient.dead", "dlq", 3650, 3650);
    expect((await run()).retention).toEqual({ events: 0, dlq: 0, attempts: 0, replayJobs: 0, more: false });
    expect(await count(r, "events")).toBe(20);
  });

  it("dead letters are never kept shorter than the history around them", () => {
    const base = { DATABASE_URL: "postgres://x@localhost/db", EVENT_BACKEND: "postgres" };
    expect(() => loadConfig({ ...base, HISTORY_RETENTION_DAYS: "90", DLQ_RETENTION_DAYS: "30" })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, HISTORY_RETENTION_DAYS: "0", DLQ_RETENTION_DAYS: "30" })).toThrow(
      /DLQ_RETENTION_DAYS: must be 0 \(forever\) or at least HISTORY_RETENTION_DAYS/,
    );
    expect(loadConfig({ ...base }).HISTORY_RETENTION_DAYS).toBe(90);
    expect(loadConfig({ ...base, HISTORY_RETENTION_DAYS: "0", DLQ_RETENTION_DAYS: "0" }).DLQ_RETENTION_DAYS).toBe(0);
  });
});
