/**
 * The dead-letter queue's statements for operators (src/operations/dlq-actions.ts) and the
 * sweeper's alert (src/jobs/dlq-sweeper.ts).
 *
 * Postgres is the system of record, so the DLQ is `events WHERE status = 'dlq'`; the DLQ
 * stream in Redis is only a notification trail. A redrive puts the row back to 'pending'
 * with attempts 0 and a next_retry_at, and the consumers' claimDue() picks it up: no
 * stream entry is needed, and the errors of earlier attempts stay in `errors`.
 */
import { and, desc, eq, sql } from "drizzle-orm";
import { alias } from "drizzle-orm/pg-core";
import { REDRIVE_LANE } from "../backends/history-writes";
import { forgetOrdered } from "../consume/ordered-sql";
import type { Db } from "../db/client";
import { events } from "../db/schema";
import { assign } from "../db/sql";
import { type EventView, view, viewFields, where } from "./event-queries";

export interface DlqFilter {
  type?: string;
  source?: string;
}

const IN_DLQ = eq(events.status, "dlq");

/** The DLQ, newest dead first, with the total count for the same filter. */
export async function dlqList(db: Db, f: DlqFilter, limit: number): Promise<{ count: number; events: EventView[] }> {
  const w = and(IN_DLQ, ...where(f));
  const [rows, count] = await Promise.all([
    db.select(viewFields).from(events).where(w).orderBy(desc(events.updatedAt), desc(events.id)).limit(limit),
    db.select({ n: sql<number>`count(*)::int` }).from(events).where(w),
  ]);
  return { count: count[0]?.n ?? 0, events: rows.map(view) };
}

/** What a redrive sets (next_retry_at apart). */
const REDRIVE = {
  status: sql`'pending'`,
  attempts: sql`0`,
  claimedBy: sql`NULL`,
  leaseUntil: sql`NULL`,
  processedAt: sql`NULL`,
  updatedAt: sql`now()`,
};

/** Sends one DLQ event back for processing now, as a live retry. null when it is not in the DLQ. */
export async function dlqRetry(db: Db, id: string): Promise<{ id: string; next_retry_at: string } | null> {
  const [row] = await db
    .update(events)
    .set({ ...REDRIVE, lane: null, nextRetryAt: sql`now()` })
    .where(and(eq(events.id, id), IN_DLQ))
    .returning({ id: events.id, nextRetryAt: events.nextRetryAt });
  return row ? { id: row.id, next_retry_at: row.nextRetryAt!.toISOString() } : null;
}

/**
 * Sends every matching DLQ event back, in one statement, into the redrive lane: the replay
 * runner's drain claims them (and their retries), never a live consumer, so a redrive of any
 * size waits behind live traffic instead of riding in front of it in the live batches. Their
 * next_retry_at is spread at `rate` per second, oldest dead first: the drain takes them as a
 * steady trickle. Returns how many.
 */
export async function dlqRetryAll(db: Db, f: DlqFilter, rate: number): Promise<number> {
  const e = alias(events, "e");
  const r = await db.execute<{ n: number }>(sql`
    WITH picked AS (
      SELECT ${events.id} AS id, row_number() OVER (ORDER BY ${events.updatedAt}, ${events.id}) - 1 AS n
        FROM ${events} WHERE ${and(IN_DLQ, ...where(f))}
    ), moved AS (
      UPDATE ${events} AS ${e} SET ${assign(e, {
        ...REDRIVE,
        lane: REDRIVE_LANE,
        nextRetryAt: sql`now() + (p.n::float8 / ${rate}::float8) * interval '1 second'`,
      })}
        FROM picked p WHERE ${e.id} = p.id AND ${e.status} = 'dlq'
      RETURNING 1)
    SELECT count(*)::int AS n FROM moved`);
  return Number(r.rows[0]?.n ?? 0);
}

/**
 * Takes an event out of the DLQ for good; the row stays, with the reason. null when not in the
 * DLQ. A held head of an ordered scope: the scope resumes with its next event at once (a
 * second statement; if it fails, the next head runs at its next look, ORDERED_SLEEP_MS).
 */
export async function dlqDiscard(db: Db, id: string, reason: string, now = new Date()): Promise<EventView | null> {
  const [row] = await db
    .update(events)
    .set({ status: "discarded", discardReason: reason, nextRetryAt: null, updatedAt: sql`now()` })
    .where(and(eq(events.id, id), IN_DLQ))
    .returning(viewFields);
  if (!row) return null;
  await forgetOrdered(db, id, now);
  return view(row);
}

/** DLQ size and its largest types, for the sweeper's alert. */
export async function dlqSummary(
  db: Db,
): Promise<{ count: number; byType: Array<{ type: string; count: number }>; oldest: string | null }> {
  const n = sql<number>`count(*)::int`.as("n");
  const rows = await db
    .select({ type: events.type, n, oldest: sql`min(${events.updatedAt})`.mapWith(events.updatedAt) })
    .from(events)
    .where(IN_DLQ)
    .groupBy(events.type)
    .orderBy(desc(n));
  const count = rows.reduce((s, x) => s + x.n, 0);
  const oldest = rows.reduce<Date | null>((m, x) => (m === null || x.oldest < m ? x.oldest : m), null);
  return {
    count,
    byType: rows.slice(0, 10).map((x) => ({ type: x.type, count: x.n })),
    oldest: oldest?.toISOString() ?? null,
  };
}
