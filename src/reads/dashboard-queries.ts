/**
 * Reads the operator dashboard (src/dashboard) needs and the admin API does not have.
 *
 * Listings select summary columns only, never payloads: a page of fifty rows must not pull
 * up to MAX_BODY_BYTES per row from Postgres; the event page reads the whole row with
 * getEvent (./event-queries.ts). Keyset cursors are the admin API's (encodeCursor).
 */
import { and, desc, eq, gte, isNotNull, or, type SQL, sql } from "drizzle-orm";
import { alias } from "drizzle-orm/pg-core";
import type { Db } from "../db/client";
import { deliveryAttempts, type EventStatus, events } from "../db/schema";
import { anyOf, isoMicros } from "../db/sql";
import { type Cursor, encodeCursor } from "./event-queries";

export interface EventSummary {
  id: string;
  type: string;
  source: string;
  /** ISO 8601 with microseconds (a keyset position). */
  timestamp: string;
  status: EventStatus;
  attempts: number;
  /** The first 300 characters of the last error. */
  last_error: string | null;
  updated_at: string;
  /** Set on replay copies: the job's id. */
  replay: string | null;
}

export interface SearchFilter {
  type?: string;
  source?: string;
  status?: EventStatus;
  /** Inclusive lower bound of the event's timestamp (ISO 8601). */
  from?: string;
  /** Exclusive upper bound. */
  to?: string;
  /** meta.correlation_id; an event whose id it is (the root of derived events) matches too. */
  correlation?: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const summary = {
  id: events.id,
  type: events.type,
  source: events.source,
  timestamp: isoMicros(events.timestamp),
  status: events.status,
  attempts: events.attempts,
  last_error: sql<string | null>`left(${events.lastError}, 300)`,
  updated_at: events.updatedAt,
  replay: sql<string | null>`${events.meta} ->> 'replay'`,
};

function summaryOf(r: Omit<EventSummary, "updated_at"> & { updated_at: Date }): EventSummary {
  return { ...r, attempts: Number(r.attempts), updated_at: new Date(r.updated_at).toISOString() };
}

function conditions(f: SearchFilter): SQL[] {
  const w: (SQL | undefined)[] = [
    f.type !== undefined ? eq(events.type, f.type) : undefined,
    f.source !== undefined ? eq(events.source, f.source) : undefined,
    f.status !== undefined ? eq(events.status, f.status) : undefined,
    f.from !== undefined ? sql`${events.timestamp} >= ${f.from}::timestamptz` : undefined,
    f.to !== undefined ? sql`${events.timestamp} < ${f.to}::timestamptz` : undefined,
  ];
  if (f.correlation !== undefined) {
    const byMeta = sql`${events.meta} ->> 'correlation_id' = ${f.correlation}`;
    w.push(UUID.test(f.correlation) ? or(byMeta, sql`${events.id} = ${f.correlation}::uuid`) : byMeta);
  }
  return w.filter((x): x is SQL => x !== undefined);
}

/**
 * One page of history, newest first by (timestamp, id). Without a correlation id every
 * filter is served by an index (timestamp, type or source with timestamp, the open-status
 * index); a correlation id has none and is checked row by row within the other filters.
 */
export async function searchEvents(
  db: Db,
  f: SearchFilter,
  page: { cursor?: Cursor; limit: number },
): Promise<{ events: EventSummary[]; next_cursor: string | null }> {
  const w = conditions(f);
  if (page.cursor)
    w.push(sql`(${events.timestamp}, ${events.id}) < (${page.cursor.ts}::timestamptz, ${page.cursor.id}::uuid)`);
  const rows = await db
    .select(summary)
    .from(events)
    .where(and(...w))
    .orderBy(desc(events.timestamp), desc(events.id))
    .limit(page.limit + 1);
  const list = rows.slice(0, page.limit).map(summaryOf);
  const last = list[list.length - 1];
  const next = rows.length > page.limit && last ? encodeCursor({ ts: last.timestamp, id: last.id }) : null;
  return { events: list, next_cursor: next };
}

/** The DLQ, most recently dead first (the partial DLQ index), summaries only. */
export async function dlqEvents(db: Db, f: { type?: string; source?: string }, limit: number): Promise<EventSummary[]> {
  const rows = await db
    .select(summary)
    .from(events)
    .where(and(eq(events.status, "dlq"), ...conditions(f)))
    .orderBy(desc(events.updatedAt), desc(events.id))
    .limit(limit);
  return rows.map(summaryOf);
}

export interface DlqGroup {
  /** The first 160 characters of the last error (errors that differ only later group together). */
  error: string;
  type: string;
  source: string;
  count: number;
  newest: string;
}

/** The DLQ grouped by error, type and source, largest groups first. */
export async function dlqGroups(db: Db, limit: number): Promise<DlqGroup[]> {
  const r = await db.execute<{ error: string; type: string; source: string; n: number; newest: string | Date }>(sql`
    SELECT coalesce(left(${events.lastError}, 160), '') AS error, ${events.type} AS type, ${events.source} AS source,
           count(*)::int AS n, max(${events.updatedAt}) AS newest
      FROM ${events} WHERE ${events.status} = 'dlq'
     GROUP BY 1, 2, 3 ORDER BY n DESC, newest DESC LIMIT ${limit}`);
  return r.rows.map((x) => ({
    error: x.error,
    type: x.type,
    source: x.source,
    count: Number(x.n),
    newest: new Date(x.newest).toISOString(),
  }));
}

export interface ChainLink {
  id: string;
  type: string;
  source: string;
  status: EventStatus;
  found: boolean;
}

/**
 * The causation chain above an event: its parent, the parent's parent, ... up to `depth`,
 * nearest first, by primary key. A parent missing from history (not persisted yet, or an
 * id a client made up) ends the chain with found = false.
 */
export async function ancestors(db: Db, parentId: string, depth = 20): Promise<ChainLink[]> {
  const e = alias(events, "e");
  if (!UUID.test(parentId)) return [{ id: parentId, type: "", source: "", status: "pending", found: false }];
  const r = await db.execute<{
    id: string;
    type: string;
    source: string;
    status: EventStatus;
    parent: string | null;
    d: number;
  }>(sql`
    WITH RECURSIVE chain AS (
      SELECT ${events.id} AS id, ${events.type} AS type, ${events.source} AS source, ${events.status} AS status,
             ${events.meta} ->> 'causation_id' AS parent, 1 AS d
        FROM ${events} WHERE ${events.id} = ${parentId}::uuid
      UNION ALL
      SELECT ${e.id}, ${e.type}, ${e.source}, ${e.status}, ${e.meta} ->> 'causation_id', c.d + 1
        FROM chain c JOIN ${events} ${e} ON ${e.id} = c.parent::uuid
       WHERE c.d < ${depth} AND c.parent ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
    )
    SELECT * FROM chain ORDER BY d`);
  const links: ChainLink[] = r.rows.map((x) => ({
    id: x.id,
    type: x.type,
    source: x.source,
    status: x.status,
    found: true,
  }));
  const top = r.rows[r.rows.length - 1];
  if (!top) return [{ id: parentId, type: "", source: "", status: "pending", found: false }];
  if (top.parent && Number(top.d) < depth)
    links.push({ id: top.parent, type: "", source: "", status: "pending", found: false });
  return links;
}

export interface MinuteBucket {
  /** Start of the minute, ISO 8601. */
  minute: string;
  /**
   * Events stamped in this minute: ingest's and those handlers derived, what entered the
   * backbone (replay copies keep their original's time and are not in the window).
   */
  accepted: number;
  /** Events completed in this minute. */
  completed: number;
  /** Events that went to the DLQ in this minute (and are still there). */
  dlq: number;
}

/** Minutes counted from the Unix epoch: date_bin is cheaper than date_trunc, which works in the session's zone. */
const EPOCH = sql`TIMESTAMPTZ 'epoch'`;

/**
 * Per-minute traffic over the last `minutes`, from history, on existing indexes only:
 *  - accepted and completed: events whose timestamp falls in the window plus `slackMin`
 *    before it (the (timestamp, id) index), bucketed by timestamp and by processed_at. An
 *    event completed more than the slack after its timestamp (an old DLQ event redriven,
 *    a replay copy, which keeps its original's timestamp) is not counted: in a steady state
 *    both charts count the same events, so they show whether the consumers keep up;
 *  - dlq: the partial DLQ index on updated_at, exact for events still in the DLQ.
 * The cost is one range scan of the window's events (plus the slack), whatever the size of
 * history (bench/dashboard.ts measures it).
 * Every minute of the window is returned, empty ones as zeros, oldest first.
 */
export async function minuteSeries(db: Db, now: Date, minutes = 60, slackMin = 60): Promise<MinuteBucket[]> {
  const end = Math.floor(now.getTime() / 60_000) * 60_000 + 60_000;
  const start = end - minutes * 60_000;
  const since = new Date(start).toISOString();
  const scanFrom = new Date(start - slackMin * 60_000).toISOString();
  // One pass over the window's rows, grouped twice (by stamped minute, by completed minute).
  const traffic = db.execute<{ g: number; am: string | Date | null; pm: string | Date | null; n: number }>(sql`
    SELECT GROUPING(am, pm) AS g, am, pm, count(*)::int AS n
      FROM (SELECT CASE WHEN ${events.timestamp} >= ${since}::timestamptz
                        THEN date_bin('1 minute', ${events.timestamp}, ${EPOCH}) END AS am,
                   CASE WHEN ${events.status} = 'completed' AND ${events.processedAt} >= ${since}::timestamptz
                        THEN date_bin('1 minute', ${events.processedAt}, ${EPOCH}) END AS pm
              FROM ${events} WHERE ${events.timestamp} >= ${scanFrom}::timestamptz) x
     GROUP BY GROUPING SETS ((am), (pm))`);
  const dead = db.execute<{ m: string | Date; n: number }>(sql`
    SELECT date_bin('1 minute', ${events.updatedAt}, ${EPOCH}) AS m, count(*)::int AS n
      FROM ${events} WHERE ${events.status} = 'dlq' AND ${events.updatedAt} >= ${since}::timestamptz GROUP BY 1`);
  const [t, d] = await Promise.all([traffic, dead]);
  const key = (v: string | Date) => new Date(v).getTime();
  const accepted = new Map<number, number>();
  const completed = new Map<number, number>();
  for (const x of t.rows) {
    // GROUPING(am, pm) is 1 for the (am) set, 2 for the (pm) set; NULL keys are outside the window.
    if (Number(x.g) === 1 && x.am !== null) accepted.set(key(x.am), Number(x.n));
    if (Number(x.g) === 2 && x.pm !== null) completed.set(key(x.pm), Number(x.n));
  }
  const dlq = new Map(d.rows.map((x) => [key(x.m), Number(x.n)]));
  const out: MinuteBucket[] = [];
  for (let m = start; m < end; m += 60_000) {
    out.push({
      minute: new Date(m).toISOString(),
      accepted: accepted.get(m) ?? 0,
      completed: completed.get(m) ?? 0,
      dlq: dlq.get(m) ?? 0,
    });
  }
  return out;
}

export interface DestinationFigures {
  destination: string;
  attempts: number;
  succeeded: number;
  p50_ms: number | null;
  p95_ms: number | null;
  last_at: string | null;
}

/** Delivery figures per destination since `since` (the (destination, at) index). */
export async function destinationFigures(db: Db, names: string[], since: Date): Promise<DestinationFigures[]> {
  if (names.length === 0) return [];
  const rows = await db
    .select({
      destination: deliveryAttempts.destination,
      attempts: sql<number>`count(*)::int`,
      succeeded: sql<number>`count(*) FILTER (WHERE ${deliveryAttempts.error} IS NULL)::int`,
      p50: sql<number | null>`percentile_disc(0.5) WITHIN GROUP (ORDER BY ${deliveryAttempts.durationMs})`,
      p95: sql<number | null>`percentile_disc(0.95) WITHIN GROUP (ORDER BY ${deliveryAttempts.durationMs})`,
      last: sql<string | Date | null>`max(${deliveryAttempts.at})`,
    })
    .from(deliveryAttempts)
    .where(and(anyOf(deliveryAttempts.destination, names), gte(deliveryAttempts.at, since)))
    .groupBy(deliveryAttempts.destination);
  const by = new Map(rows.map((x) => [x.destination, x]));
  return names.map((name) => {
    const x = by.get(name);
    return {
      destination: name,
      attempts: Number(x?.attempts ?? 0),
      succeeded: Number(x?.succeeded ?? 0),
      p50_ms: x?.p50 == null ? null : Number(x.p50),
      p95_ms: x?.p95 == null ? null : Number(x.p95),
      last_at: x?.last ? new Date(x.last).toISOString() : null,
    };
  });
}

export interface DeliveryError {
  destination: string;
  event_id: string;
  attempt: number;
  status_code: number | null;
  error: string;
  at: string;
}

/** The latest failed deliveries of one destination since `since`, newest first. */
export async function lastDeliveryErrors(db: Db, name: string, since: Date, limit: number): Promise<DeliveryError[]> {
  const rows = await db
    .select({
      event_id: deliveryAttempts.eventId,
      attempt: deliveryAttempts.attempt,
      status_code: deliveryAttempts.statusCode,
      error: deliveryAttempts.error,
      at: deliveryAttempts.at,
    })
    .from(deliveryAttempts)
    .where(
      and(eq(deliveryAttempts.destination, name), gte(deliveryAttempts.at, since), isNotNull(deliveryAttempts.error)),
    )
    .orderBy(desc(deliveryAttempts.at))
    .limit(limit);
  return rows.map((x) => ({
    destination: name,
    event_id: x.event_id,
    attempt: Number(x.attempt),
    status_code: x.status_code === null ? null : Number(x.status_code),
    error: x.error ?? "",
    at: new Date(x.at).toISOString(),
  }));
}
