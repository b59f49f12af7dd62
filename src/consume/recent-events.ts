/**
 * Recent events of a scope, for handlers (ctx.history) and the agents' context: events of
 * the same source, optionally those whose field at a dotted path equals a value, older than
 * the event asking, newest first. One statement; an index range scan of
 * events_source_timestamp_idx, backwards from the asking event's time. Replay copies are
 * left out: they repeat an original that is already there.
 */
import { and, desc, eq, lte, ne, type SQL, sql } from "drizzle-orm";
import { envelopeFields } from "../backends/history-writes";
import type { Db } from "../db/client";
import { events } from "../db/schema";
import { type EventEnvelope, envelopeFrom } from "../events/envelope";

export interface ScopeHistoryQuery {
  source: string;
  /** The asking event: excluded, and nothing after its timestamp is returned. */
  before: { id: string; timestamp: string };
  limit: number;
  /** Only events whose payload has this value at `field.path` (dotted, e.g. "body.repository.full_name"). */
  field?: { path: string; equals: string };
  /** Event type, `*` as a wildcard ("github.*"). */
  type?: string;
  /** Only events whose JSON contains this text (case-insensitive). */
  contains?: string;
}

/** LIKE's own wildcards, taken literally. */
const escapeLike = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

export async function scopeHistory(db: Db, q: ScopeHistoryQuery): Promise<EventEnvelope[]> {
  const w: SQL[] = [
    eq(events.source, q.source),
    ne(events.id, q.before.id),
    lte(events.timestamp, new Date(q.before.timestamp)),
    sql`NOT (${events.meta} ? 'replay')`,
  ];
  if (q.field) w.push(sql`${events.payload} #>> ${sql.param(q.field.path.split("."))}::text[] = ${q.field.equals}`);
  if (q.type) w.push(sql`${events.type} LIKE ${escapeLike(q.type).replace(/\*/g, "%")}`);
  if (q.contains) w.push(sql`${events.payload}::text ILIKE ${`%${escapeLike(q.contains)}%`}`);
  const rows = await db
    .select(envelopeFields)
    .from(events)
    .where(and(...w))
    .orderBy(desc(events.timestamp), desc(events.id))
    .limit(q.limit);
  return rows.map(envelopeFrom);
}
