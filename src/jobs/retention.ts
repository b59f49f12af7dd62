/**
 * History retention (the sweeper's "retention" step, src/jobs/dlq-sweeper.ts): what is old
 * enough goes, in bounded batches that never block ingest or consumers.
 *
 * Each batch is one statement, DELETE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP
 * LOCKED), in its own transaction: it locks only the rows it deletes, for milliseconds,
 * skips rows anyone else holds, and touches only rows no consumer works on (final events,
 * finished jobs, past attempts). Every candidate scan is an index range scan:
 *  - events completed or discarded, by event timestamp: events_timestamp_id_idx;
 *  - events in the DLQ, by when they entered it (updated_at): events_dlq_idx;
 *  - delivery attempts, by id order (ids grow with time, so the oldest come first);
 *  - finished replay jobs (a small table).
 * An event deleted takes its ordered-scope rows and its step records (results, derived
 * events, model usage) with it in the same statement: an ordered row without history counts
 * as in flight (src/consume/ordered-sql.ts) and would hold its scope forever, and a step record must
 * not outlive the event whose data it holds.
 * Not partitioned: history is keyed by event id alone (ON CONFLICT (id) is what makes
 * persistence idempotent), and a partitioned table's unique keys must hold the partition
 * key, so partitions by time would let one id be stored twice. bench/retention.ts measures
 * what the batches cost instead.
 */
import { and, inArray, lt, type SQL, sql } from "drizzle-orm";
import type { PgColumn, PgTable } from "drizzle-orm/pg-core";
import type { Db } from "../db/client";
import { deliveryAttempts, events, orderedEvents, replayJobs, steps } from "../db/schema";

export interface RetentionPolicy {
  /** Days each kind is kept; 0 keeps it forever. */
  historyDays: number;
  dlqDays: number;
  attemptsDays: number;
  replayJobsDays: number;
  /** Rows per statement, and statements per kind in one run. */
  batchSize: number;
  maxBatches: number;
}

export interface RetentionReport {
  /** Completed and discarded events deleted. */
  events: number;
  dlq: number;
  attempts: number;
  replayJobs: number;
  /** A kind stopped at maxBatches with more left: the next run goes on. */
  more: boolean;
}

const DAY_MS = 86_400_000;

/** One batch of a kind's statement: the rows it deleted. */
type Batch = (cutoff: Date, limit: number) => Promise<number>;

/**
 * DELETE FROM `table` WHERE id IN (SELECT id ... WHERE `where(cutoff)` ORDER BY `order` LIMIT n
 * FOR UPDATE SKIP LOCKED): the one statement every kind deletes with.
 */
function batchOf(
  db: Db,
  table: PgTable & { id: PgColumn },
  where: (cutoff: Date) => SQL | undefined,
  order?: PgColumn,
): Batch {
  const id = table.id;
  return async (cutoff, limit) => {
    const pick = db
      .select({ id })
      .from(table)
      .where(where(cutoff))
      .orderBy(...(order ? [order] : []))
      .limit(limit)
      .for("update", { skipLocked: true });
    if (table !== events) return (await db.delete(table).where(inArray(id, pick))).rowCount ?? 0;
    const r = await db.execute<{ n: number }>(sql`
      WITH d AS (DELETE FROM ${events} WHERE ${events.id} IN (${pick}) RETURNING ${events.id} AS id),
      x AS (DELETE FROM ${orderedEvents} WHERE ${orderedEvents.eventId} IN (SELECT id FROM d)),
      s AS (DELETE FROM ${steps} WHERE ${steps.eventId} IN (SELECT id FROM d))
      SELECT count(*)::int AS n FROM d`);
    return Number(r.rows[0]?.n ?? 0);
  };
}

const oldEvents = (db: Db) =>
  batchOf(
    db,
    events,
    (cutoff) => and(lt(events.timestamp, cutoff), inArray(events.status, ["completed", "discarded"])),
    events.timestamp,
  );

// status first, as the partial index events_dlq_idx is declared (WHERE status = 'dlq').
const oldDeadLetters = (db: Db) =>
  batchOf(db, events, (cutoff) => and(sql`${events.status} = 'dlq'`, lt(events.updatedAt, cutoff)), events.updatedAt);

const oldAttempts = (db: Db) =>
  batchOf(db, deliveryAttempts, (cutoff) => lt(deliveryAttempts.at, cutoff), deliveryAttempts.id);

const oldReplayJobs = (db: Db) =>
  batchOf(db, replayJobs, (cutoff) =>
    and(
      inArray(replayJobs.status, ["done", "cancelled", "failed"]),
      lt(sql`coalesce(${replayJobs.finishedAt}, ${replayJobs.updatedAt})`, cutoff),
    ),
  );

/** Applies `p` as of `now`: each kind until it has nothing older left, or maxBatches statements. */
export async function applyRetention(db: Db, p: RetentionPolicy, now: Date): Promise<RetentionReport> {
  const report: RetentionReport = { events: 0, dlq: 0, attempts: 0, replayJobs: 0, more: false };
  const kinds: Array<[keyof Omit<RetentionReport, "more">, number, Batch]> = [
    ["events", p.historyDays, oldEvents(db)],
    ["dlq", p.dlqDays, oldDeadLetters(db)],
    ["attempts", p.attemptsDays, oldAttempts(db)],
    ["replayJobs", p.replayJobsDays, oldReplayJobs(db)],
  ];
  for (const [kind, days, batch] of kinds) {
    if (days === 0) continue;
    const cutoff = new Date(now.getTime() - days * DAY_MS);
    for (let i = 0; ; i++) {
      if (i === p.maxBatches) {
        report.more = true;
        break;
      }
      const n = await batch(cutoff, p.batchSize);
      report[kind] += n;
      if (n < p.batchSize) break;
    }
  }
  return report;
}
