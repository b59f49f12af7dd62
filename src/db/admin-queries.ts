/**
 * History reads and DLQ operations for the admin API (src/ops/admin-*.ts).
 *
 * Postgres is the system of record, so the DLQ is `events WHERE status = 'dlq'`; the DLQ
 * stream in Redis is only a notification trail. A redrive puts the row back to 'pending'
 * with attempts 0 and a next_retry_at, and the consumers' claimDue() picks it up: no
 * stream entry is needed, and the errors of earlier attempts stay in `errors`.
 *
 * Timestamps that serve as keyset cursors are read as text with microsecond precision
 * (JS dates stop at milliseconds, and a truncated cursor would skip or repeat rows).
 */
import { type SQL, sql } from "drizzle-orm";
import { type EventEnvelope, envelopeFrom } from "../events/envelope";
import type { Db } from "./client";
import type { HistoryRow } from "./history";
import type { EventStatus } from "./schema";

/** ISO 8601 UTC with microseconds, from a timestamptz column. */
export const isoMicros = (col: SQL) => sql`to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

export interface EventView extends EventEnvelope {
  status: EventStatus;
  attempts: number;
  last_error: string | null;
  errors: Array<{ attempt: number; error: string; at: string }>;
  next_retry_at: string | null;
  created_at: string;
  updated_at: string;
  processed_at: string | null;
  discard_reason: string | null;
}

type Row = HistoryRow & {
  status: EventStatus;
  attempts: number;
  last_error: string | null;
  errors: EventView["errors"];
  next_retry_at: string | Date | null;
  created_at: string | Date;
  updated_at: string | Date;
  processed_at: string | Date | null;
  discard_reason: string | null;
};

const COLUMNS = sql`id, type, source, ${isoMicros(sql`"timestamp"`)} AS ts, payload, meta, status, attempts, last_error, errors,
  next_retry_at, created_at, updated_at, processed_at, discard_reason`;

const iso = (v: string | Date | null): string | null => (v === null ? null : new Date(v).toISOString());

function view(r: Row): EventView {
  return {
    ...envelopeFrom({ id: r.id, type: r.type, source: r.source, timestamp: r.ts, meta: r.meta, payload: r.payload }),
    status: r.status,
    attempts: Number(r.attempts),
    last_error: r.last_error,
    errors: r.errors ?? [],
    next_retry_at: iso(r.next_retry_at),
    created_at: iso(r.created_at)!,
    updated_at: iso(r.updated_at)!,
    processed_at: iso(r.processed_at),
    discard_reason: r.discard_reason,
  };
}

export interface DerivedSummary {
  id: string;
  type: string;
  source: string;
  timestamp: string;
  status: EventStatus;
  replay: string | null;
}

/** One event with its derived events (those whose causation_id is its id, replay copies included). */
export async function getEvent(db: Db, id: string): Promise<(EventView & { derived: DerivedSummary[] }) | null> {
  const r = await db.execute<Row>(sql`SELECT ${COLUMNS} FROM events WHERE id = ${id}::uuid`);
  const row = r.rows[0];
  if (!row) return null;
  const d = await db.execute<{
    id: string;
    type: string;
    source: string;
    ts: string;
    status: EventStatus;
    replay: string | null;
  }>(sql`
    SELECT id, type, source, ${isoMicros(sql`"timestamp"`)} AS ts, status, meta ->> 'replay' AS replay
      FROM events WHERE meta ->> 'causation_id' = ${id} ORDER BY "timestamp", id LIMIT 100`);
  return {
    ...view(row),
    derived: d.rows.map((x) => ({
      id: x.id,
      type: x.type,
      source: x.source,
      timestamp: x.ts,
      status: x.status,
      replay: x.replay,
    })),
  };
}

export interface HistoryFilter {
  type?: string;
  source?: string;
  status?: EventStatus;
  from?: string;
  to?: string;
}

/** Keyset position: the (timestamp, id) of the last row of the previous page. */
export interface Cursor {
  ts: string;
  id: string;
}

export function encodeCursor(c: Cursor): string {
  return btoa(JSON.stringify([c.ts, c.id]))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

/** null when `s` is not a cursor this API handed out. */
export function decodeCursor(s: string): Cursor | null {
  try {
    const v = JSON.parse(atob(s.replace(/-/g, "+").replace(/_/g, "/"))) as unknown;
    if (!Array.isArray(v) || v.length !== 2) return null;
    const [ts, id] = v as [unknown, unknown];
    if (typeof ts !== "string" || Number.isNaN(Date.parse(ts))) return null;
    if (typeof id !== "string" || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id))
      return null;
    return { ts, id };
  } catch {
    return null;
  }
}

function where(f: HistoryFilter): SQL[] {
  const w: SQL[] = [];
  if (f.type !== undefined) w.push(sql`type = ${f.type}`);
  if (f.source !== undefined) w.push(sql`source = ${f.source}`);
  if (f.status !== undefined) w.push(sql`status = ${f.status}::event_status`);
  if (f.from !== undefined) w.push(sql`"timestamp" >= ${f.from}::timestamptz`);
  if (f.to !== undefined) w.push(sql`"timestamp" < ${f.to}::timestamptz`);
  return w;
}

const and = (w: SQL[]) => (w.length ? sql`WHERE ${sql.join(w, sql` AND `)}` : sql``);

/** History page by (timestamp, id), ascending or descending; next_cursor null on the last page. */
export async function listEvents(
  db: Db,
  f: HistoryFilter,
  page: { cursor?: Cursor; limit: number; order: "asc" | "desc" },
): Promise<{ events: EventView[]; next_cursor: string | null }> {
  const w = where(f);
  const desc = page.order === "desc";
  if (page.cursor) {
    const c = sql`(${page.cursor.ts}::timestamptz, ${page.cursor.id}::uuid)`;
    w.push(desc ? sql`("timestamp", id) < ${c}` : sql`("timestamp", id) > ${c}`);
  }
  const dir = desc ? sql`DESC` : sql`ASC`;
  const r = await db.execute<Row>(sql`
    SELECT ${COLUMNS} FROM events ${and(w)} ORDER BY "timestamp" ${dir}, id ${dir} LIMIT ${page.limit + 1}`);
  const rows = r.rows.slice(0, page.limit);
  const last = rows[rows.length - 1];
  // With order=asc (tail) a cursor is handed out even on the last page - the same one again
  // on an empty page - so a follower keeps polling from where it is: new events may follow.
  let next: Cursor | null = null;
  if (last && (r.rows.length > page.limit || !desc)) next = { ts: last.ts, id: last.id };
  else if (!last && !desc && page.cursor) next = page.cursor;
  return { events: rows.map(view), next_cursor: next ? encodeCursor(next) : null };
}

export interface DlqFilter {
  type?: string;
  source?: string;
}

/** The DLQ, newest dead first, with the total count for the same filter. */
export async function dlqList(db: Db, f: DlqFilter, limit: number): Promise<{ count: number; events: EventView[] }> {
  const w = [sql`status = 'dlq'`, ...where(f)];
  const [rows, count] = await Promise.all([
    db.execute<Row>(sql`SELECT ${COLUMNS} FROM events ${and(w)} ORDER BY updated_at DESC, id DESC LIMIT ${limit}`),
    db.execute<{ n: number }>(sql`SELECT count(*)::int AS n FROM events ${and(w)}`),
  ]);
  return { count: Number(count.rows[0]?.n ?? 0), events: rows.rows.map(view) };
}

const REDRIVE = sql`status = 'pending', attempts = 0, claimed_by = NULL, lease_until = NULL, processed_at = NULL, updated_at = now()`;

/** Sends one DLQ event back for processing now. null when it is not in the DLQ. */
export async function dlqRetry(db: Db, id: string): Promise<{ id: string; next_retry_at: string } | null> {
  const r = await db.execute<{ id: string; next_retry_at: string | Date }>(sql`
    UPDATE events SET ${REDRIVE}, next_retry_at = now()
     WHERE id = ${id}::uuid AND status = 'dlq' RETURNING id, next_retry_at`);
  const row = r.rows[0];
  return row ? { id: row.id, next_retry_at: new Date(row.next_retry_at).toISOString() } : null;
}

/**
 * Sends every matching DLQ event back, in one statement. Their next_retry_at is spread at
 * `rate` per second, oldest dead first, so a large redrive reaches the consumers as a
 * steady trickle instead of one burst in front of live traffic. Returns how many.
 */
export async function dlqRetryAll(db: Db, f: DlqFilter, rate: number): Promise<number> {
  const w = [sql`status = 'dlq'`, ...where(f)];
  const r = await db.execute<{ n: number }>(sql`
    WITH picked AS (
      SELECT id, row_number() OVER (ORDER BY updated_at, id) - 1 AS n FROM events ${and(w)}
    ), moved AS (
      UPDATE events AS e SET ${REDRIVE}, next_retry_at = now() + (p.n::float8 / ${rate}::float8) * interval '1 second'
        FROM picked p WHERE e.id = p.id AND e.status = 'dlq'
      RETURNING 1)
    SELECT count(*)::int AS n FROM moved`);
  return Number(r.rows[0]?.n ?? 0);
}

/** Takes an event out of the DLQ for good; the row stays, with the reason. null when not in the DLQ. */
export async function dlqDiscard(db: Db, id: string, reason: string): Promise<EventView | null> {
  const r = await db.execute<Row>(sql`
    UPDATE events SET status = 'discarded', discard_reason = ${reason}, next_retry_at = NULL, updated_at = now()
     WHERE id = ${id}::uuid AND status = 'dlq' RETURNING ${COLUMNS}`);
  return r.rows[0] ? view(r.rows[0]) : null;
}

/** DLQ size and its largest types, for the sweeper's alert. */
export async function dlqSummary(
  db: Db,
): Promise<{ count: number; byType: Array<{ type: string; count: number }>; oldest: string | null }> {
  const r = await db.execute<{ type: string; n: number; oldest: string | Date }>(sql`
    SELECT type, count(*)::int AS n, min(updated_at) AS oldest FROM events WHERE status = 'dlq' GROUP BY type ORDER BY n DESC`);
  const count = r.rows.reduce((s, x) => s + Number(x.n), 0);
  const oldest = r.rows.reduce<Date | null>((m, x) => {
    const d = new Date(x.oldest);
    return m === null || d < m ? d : m;
  }, null);
  return {
    count,
    byType: r.rows.slice(0, 10).map((x) => ({ type: x.type, count: Number(x.n) })),
    oldest: oldest?.toISOString() ?? null,
  };
}
