/**
 * Event history as operators read it (the admin API, the dashboard): one event, pages of
 * history, the rows in flight. The DLQ's statements are ./dlq-queries.ts.
 *
 * Timestamps that serve as keyset cursors are read as text with microsecond precision
 * (JS dates stop at milliseconds, and a truncated cursor would skip or repeat rows).
 */
import { and, asc, desc, eq, type SQL, sql } from "drizzle-orm";
import { historyFields } from "../backends/history-writes";
import type { Db } from "../db/client";
import { type EventStatus, events } from "../db/schema";
import { isoMicros, type RowOf } from "../db/sql";
import { type EventEnvelope, envelopeFrom } from "../events/envelope";

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

/** The columns an EventView is made of; `ts` is the keyset cursor's timestamp. */
export const viewFields = {
  ...historyFields,
  status: events.status,
  attempts: events.attempts,
  lastError: events.lastError,
  errors: events.errors,
  nextRetryAt: events.nextRetryAt,
  createdAt: events.createdAt,
  updatedAt: events.updatedAt,
  processedAt: events.processedAt,
  discardReason: events.discardReason,
};

const iso = (v: Date | null): string | null => (v === null ? null : v.toISOString());

export function view(r: RowOf<typeof viewFields>): EventView {
  return {
    ...envelopeFrom({ id: r.id, type: r.type, source: r.source, timestamp: r.ts, meta: r.meta, payload: r.payload }),
    status: r.status,
    attempts: r.attempts,
    last_error: r.lastError,
    errors: r.errors ?? [],
    next_retry_at: iso(r.nextRetryAt),
    created_at: r.createdAt.toISOString(),
    updated_at: r.updatedAt.toISOString(),
    processed_at: iso(r.processedAt),
    discard_reason: r.discardReason,
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
  const [row] = await db.select(viewFields).from(events).where(eq(events.id, id));
  if (!row) return null;
  const derived = await db
    .select({
      id: events.id,
      type: events.type,
      source: events.source,
      timestamp: isoMicros(events.timestamp),
      status: events.status,
      replay: sql<string | null>`${events.meta} ->> 'replay'`,
    })
    .from(events)
    .where(sql`${events.meta} ->> 'causation_id' = ${id}`)
    .orderBy(events.timestamp, events.id)
    .limit(100);
  return { ...view(row), derived };
}

export interface HistoryFilter {
  type?: string;
  source?: string;
  status?: EventStatus;
  from?: string;
  to?: string;
}

/**
 * Keyset position: the (timestamp, id) of the last row of the previous page - or, for the
 * recorded order (`by: "recorded"`), its (created_at, id).
 */
export interface Cursor {
  ts: string;
  id: string;
  by?: "recorded";
}

export function encodeCursor(c: Cursor): string {
  return btoa(JSON.stringify(c.by ? [c.ts, c.id, "r"] : [c.ts, c.id]))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

/** null when `s` is not a cursor this API handed out. */
export function decodeCursor(s: string): Cursor | null {
  try {
    const v = JSON.parse(atob(s.replace(/-/g, "+").replace(/_/g, "/"))) as unknown;
    if (!Array.isArray(v) || (v.length !== 2 && !(v.length === 3 && v[2] === "r"))) return null;
    const [ts, id] = v as [unknown, unknown];
    if (typeof ts !== "string" || Number.isNaN(Date.parse(ts))) return null;
    if (typeof id !== "string" || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id))
      return null;
    return v.length === 3 ? { ts, id, by: "recorded" } : { ts, id };
  } catch {
    return null;
  }
}

export function where(f: HistoryFilter): SQL[] {
  const w: SQL[] = [];
  if (f.type !== undefined) w.push(eq(events.type, f.type));
  if (f.source !== undefined) w.push(eq(events.source, f.source));
  if (f.status !== undefined) w.push(eq(events.status, f.status));
  // Bounds as given (µs text), not through a Date.
  if (f.from !== undefined) w.push(sql`${events.timestamp} >= ${f.from}::timestamptz`);
  if (f.to !== undefined) w.push(sql`${events.timestamp} < ${f.to}::timestamptz`);
  return w;
}

/**
 * A row recorded this long ago at least is listed in the recorded order: created_at is its
 * transaction's start, and a transaction that started earlier may commit after a later one -
 * a follower whose cursor already passed its created_at would never see it otherwise.
 */
export const RECORDED_SETTLE_MS = 2_000;

/**
 * History page by (timestamp, id), ascending or descending; next_cursor null on the last page.
 * "recorded": by (created_at, id) ascending - the order history recorded the events, which is
 * what a follower wants (a late event with an old timestamp comes after the cursor, not
 * before it), from `recordedFrom` on; a cursor is handed out even on the last page.
 */
export async function listEvents(
  db: Db,
  f: HistoryFilter,
  page: { cursor?: Cursor; limit: number; order: "asc" | "desc" | "recorded"; recordedFrom?: string },
): Promise<{ events: EventView[]; next_cursor: string | null }> {
  if (page.order === "recorded") return listRecorded(db, f, page);
  const w = where(f);
  const newestFirst = page.order === "desc";
  if (page.cursor) {
    const key = sql`(${events.timestamp}, ${events.id})`;
    const c = sql`(${page.cursor.ts}::timestamptz, ${page.cursor.id}::uuid)`;
    w.push(newestFirst ? sql`${key} < ${c}` : sql`${key} > ${c}`);
  }
  const dir = newestFirst ? desc : asc;
  const found = await db
    .select(viewFields)
    .from(events)
    .where(and(...w))
    .orderBy(dir(events.timestamp), dir(events.id))
    .limit(page.limit + 1);
  const rows = found.slice(0, page.limit);
  const last = rows[rows.length - 1];
  // With order=asc (tail) a cursor is handed out even on the last page - the same one again
  // on an empty page - so a follower keeps polling from where it is: new events may follow.
  let next: Cursor | null = null;
  if (last && (found.length > page.limit || !newestFirst)) next = { ts: last.ts, id: last.id };
  else if (!last && !newestFirst && page.cursor) next = page.cursor;
  return { events: rows.map(view), next_cursor: next ? encodeCursor(next) : null };
}

async function listRecorded(
  db: Db,
  f: HistoryFilter,
  page: { cursor?: Cursor; limit: number; recordedFrom?: string },
): Promise<{ events: EventView[]; next_cursor: string | null }> {
  const w = where(f);
  w.push(sql`${events.createdAt} <= now() - ${RECORDED_SETTLE_MS}::int * interval '1 millisecond'`);
  if (page.recordedFrom !== undefined) w.push(sql`${events.createdAt} >= ${page.recordedFrom}::timestamptz`);
  if (page.cursor)
    w.push(sql`(${events.createdAt}, ${events.id}) > (${page.cursor.ts}::timestamptz, ${page.cursor.id}::uuid)`);
  const rows = await db
    .select({ ...viewFields, recordedAt: isoMicros(events.createdAt) })
    .from(events)
    .where(and(...w))
    .orderBy(asc(events.createdAt), asc(events.id))
    .limit(page.limit);
  const last = rows[rows.length - 1];
  const next: Cursor | undefined = last ? { ts: last.recordedAt, id: last.id, by: "recorded" } : page.cursor;
  return { events: rows.map(view), next_cursor: next ? encodeCursor(next) : null };
}

/** The history status of each of `ids` that has a row (one statement). */
export async function statusesOf(db: Db, ids: string[]): Promise<Map<string, EventStatus>> {
  if (ids.length === 0) return new Map();
  const rows = await db
    .select({ id: events.id, status: events.status })
    .from(events)
    .where(sql`${events.id} = ANY(${sql.param(ids)}::uuid[])`);
  return new Map(rows.map((r) => [r.id, r.status]));
}

/** Events history holds as 'processing' (Postgres-side claims, reclaimed stream entries), oldest claim first. */
export async function processingRows(
  db: Db,
  limit: number,
): Promise<Array<{ event: EventEnvelope; consumer: string | null; since: Date; attempts: number }>> {
  const rows = await db
    .select({ ...historyFields, claimedBy: events.claimedBy, updatedAt: events.updatedAt, attempts: events.attempts })
    .from(events)
    .where(eq(events.status, "processing"))
    .orderBy(asc(events.updatedAt))
    .limit(limit);
  return rows.map((r) => ({
    event: envelopeFrom({
      id: r.id,
      type: r.type,
      source: r.source,
      timestamp: r.ts,
      meta: r.meta,
      payload: r.payload,
    }),
    consumer: r.claimedBy,
    since: r.updatedAt,
    attempts: r.attempts,
  }));
}
