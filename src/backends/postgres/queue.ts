/**
 * The queue half of the Postgres backend (./store.ts): publishing into the
 * events table and claiming fresh events from it. Retries, expired claims, settling and
 * counts are shared with the Redis backend (../history-writes.ts).
 *
 * A published event is 'pending' with next_retry_at NULL - "fresh": due now, whatever the
 * clocks say. claimFresh() takes those in arrival order; claimDue() (../history-writes.ts) takes the
 * rest (retries and deferrals, which carry a due time on the consumer's clock, and expired
 * claims). Keeping fresh events out of the due-time comparison means no clock skew between
 * a publisher, the database and a consumer (or a test's injected clock) can hold a new
 * event back, and each claim is a range scan of its own partial index.
 *
 * Every function is ONE statement (arrays in, unnest() inside): one round trip per batch.
 */

import { eq, type SQL, sql } from "drizzle-orm";
import type { Db } from "../../db/client";
import { events, wakeGate, webhookDeliveries } from "../../db/schema";
import { assign, bare, columnNames, excluded, selection } from "../../db/sql";
import { type EventEnvelope, payloadOf } from "../../events/envelope";
import {
  type ClaimedRow,
  claimedFields,
  claimedRow,
  claimTarget,
  type DueLook,
  dueUpdate,
  envelopeColumns,
} from "../history-writes";

/** The single row of wake_gate (one deployment per database). */
const GATE = "consumers";

export interface GateAnswer {
  /** This statement opened a new wake-up window. */
  opened: boolean;
  /** Time left in the current window, ms (0 when unknown or closed). */
  leftMs: number;
}

/** unnest() of the events' columns, as `v(id, type, source, ts, payload, meta)`. */
export function eventRows(batch: EventEnvelope[]): SQL {
  const col = <T>(f: (e: EventEnvelope) => T) => sql.param(batch.map(f));
  return sql`unnest(
      ${col((e) => e.id)}::uuid[], ${col((e) => e.type)}::text[], ${col((e) => e.source)}::text[],
      ${col((e) => e.timestamp)}::timestamptz[], ${col((e) => JSON.stringify(payloadOf(e)))}::text[],
      ${col((e) => JSON.stringify(e.meta))}::text[]
    ) WITH ORDINALITY AS v(id, type, source, ts, payload, meta, ord)`;
}

/**
 * The wake gate as a CTE: moves open_until forward only if the window is closed (the
 * ON CONFLICT ... WHERE sees the latest committed row, so concurrent publishers open one
 * window between them). `when` restricts it (publishOnce: only if the event was new).
 */
export function gateCte(windowMs: number, when: SQL = sql`true`): SQL {
  return sql`gate AS (
      INSERT INTO ${wakeGate} (${columnNames(wakeGate.name, wakeGate.openUntil)})
      SELECT ${GATE}, now() + ${windowMs}::float8 * interval '1 millisecond' WHERE ${when}
      ON CONFLICT (${bare(wakeGate.name)})
        DO UPDATE SET ${assign(wakeGate, { openUntil: excluded(wakeGate.openUntil) })}
        WHERE ${wakeGate.openUntil} <= now()
      RETURNING ${wakeGate.openUntil} AS open_until)`;
}

/** The gate's answer columns (the plain SELECT sees the row as of the statement's start). */
export const gateAnswer = sql`(SELECT count(*) FROM gate)::int AS opened,
      greatest(0, extract(epoch FROM (coalesce((SELECT open_until FROM gate),
        (SELECT ${wakeGate.openUntil} FROM ${wakeGate} WHERE ${wakeGate.name} = ${GATE})) - now())) * 1000
      )::float8 AS left_ms`;

export function gateFrom(row: { opened?: unknown; left_ms?: unknown } | undefined): GateAnswer {
  return { opened: Number(row?.opened ?? 0) > 0, leftMs: Math.max(0, Number(row?.left_ms ?? 0)) };
}

/**
 * created_at of a published row: the statement's time plus the row's position in the batch,
 * in microseconds, so that created_at alone orders arrivals (now() is one value per
 * statement, and envelope timestamps tie or come from clients). A batch of 1,000 spans 1 ms.
 */
export const arrival = sql`now() + (v.ord - 1) * interval '1 microsecond'`;

/** The columns a publish writes: the envelope's (from eventRows), then created_at (the arrival). */
export const publishedColumns = [...envelopeColumns, events.createdAt];

/**
 * Inserts the events as fresh 'pending' rows of `lane` (null: live traffic), one statement;
 * ids already stored are left alone (a client retrying with its own ids, a replay chunk
 * redone). With `wakeWindowMs`, the wake gate rides in the same statement.
 */
export async function insertPending(
  db: Pick<Db, "execute">,
  batch: EventEnvelope[],
  wakeWindowMs?: number,
  lane: string | null = null,
): Promise<GateAnswer> {
  const insert = sql`INSERT INTO ${events} (${columnNames(...publishedColumns, events.lane)})
      SELECT v.id, v.type, v.source, v.ts, v.payload::jsonb, v.meta::jsonb, v.source, ${arrival}, ${lane}::text
        FROM ${eventRows(batch)}
      ON CONFLICT (${bare(events.id)}) DO NOTHING`;
  if (!wakeWindowMs) {
    await db.execute(insert);
    return { opened: false, leftMs: 0 };
  }
  const r = await db.execute<{ opened: number; left_ms: number }>(
    sql`WITH ins AS (${insert}), ${gateCte(wakeWindowMs)} SELECT ${gateAnswer}`,
  );
  return gateFrom(r.rows[0]);
}

export type OnceAnswer = GateAnswer & ({ duplicate: false } | { duplicate: true; firstId: string });

/**
 * Inserts one event unless `key` was recorded within its window, atomically (one
 * statement): the delivery row is written if and only if the event row is. An expired
 * delivery row is taken over; a couple of other expired rows are deleted on the way, so
 * the table stays about as big as one window's deliveries without a sweeper.
 */
export async function insertOnce(
  db: Db,
  event: EventEnvelope,
  key: string,
  windowS: number,
  wakeWindowMs?: number,
): Promise<OnceAnswer> {
  const fresh = sql`EXISTS (SELECT 1 FROM d)`;
  const w = webhookDeliveries;
  const firstId = sql`(SELECT ${w.eventId} FROM ${w} WHERE ${w.key} = ${key})::text`;
  const q = sql`WITH d AS (
        INSERT INTO ${w} (${columnNames(w.key, w.eventId, w.expiresAt)})
        VALUES (${key}, ${event.id}::uuid, now() + ${windowS}::float8 * interval '1 second')
        ON CONFLICT (${bare(w.key)})
          DO UPDATE SET ${assign(w, { eventId: excluded(w.eventId), expiresAt: excluded(w.expiresAt) })}
          WHERE ${w.expiresAt} <= now()
        RETURNING ${w.eventId}),
      ins AS (
        INSERT INTO ${events} (${columnNames(...publishedColumns)})
        SELECT v.id, v.type, v.source, v.ts, v.payload::jsonb, v.meta::jsonb, v.source, ${arrival}
          FROM ${eventRows([event])} WHERE ${fresh}
        ON CONFLICT (${bare(events.id)}) DO NOTHING),
      gc AS (
        DELETE FROM ${w} WHERE ${w.key} IN (
          SELECT ${w.key} FROM ${w} WHERE ${w.expiresAt} < now() AND ${w.key} <> ${key}
           ORDER BY ${w.expiresAt} LIMIT 2 FOR UPDATE SKIP LOCKED)),
      ${wakeWindowMs ? gateCte(wakeWindowMs, fresh) : sql`gate AS (SELECT NULL::timestamptz AS open_until WHERE false)`}
    SELECT ${fresh} AS fresh, ${firstId} AS first_id, ${gateAnswer}`;
  const r = await db.execute<{ fresh: boolean; first_id: string | null; opened: number; left_ms: number }>(q);
  const row = r.rows[0];
  if (row?.fresh) return { duplicate: false, ...(wakeWindowMs ? gateFrom(row) : { opened: false, leftMs: 0 }) };
  // Duplicate. The row that made it one may have been committed after this statement's
  // snapshot (a concurrent first delivery), so it can be invisible above: read it again.
  let first = row?.first_id ?? null;
  if (!first) {
    const [again] = await db
      .select({ eventId: sql<string>`${w.eventId}::text` })
      .from(w)
      .where(eq(w.key, key));
    first = again?.eventId ?? event.id;
  }
  return { duplicate: true, firstId: first, opened: false, leftMs: 0 };
}

/** What claimFresh answers per event: a claim's fields and the arrival. */
const freshClaimed = selection({
  ...claimedFields,
  /** created_at in microseconds since the epoch (a Date would drop the microseconds). */
  arrivalUs: sql<string>`(extract(epoch FROM ${claimTarget.createdAt}) * 1000000)::bigint::text`,
});

/**
 * Claims up to `max` fresh events of `lane` for `consumer` in arrival order: 'processing', attempts
 * + 1, leased until `leaseUntil` (after which claimDue() lets another consumer take them
 * over: the visibility timeout). FOR UPDATE SKIP LOCKED: concurrent claimers never get the
 * same row, and never wait for each other. With `due`, the same statement also claims due
 * events (../history-writes.ts claimDue: retries, expired claims; never a fresh row, so the two parts
 * touch disjoint rows); they come first in the answer.
 */
export async function claimFresh(
  db: Db,
  req: { consumer: string; max: number; leaseUntil: Date; lane: string | null },
  due?: DueLook,
): Promise<{ fresh: ClaimedRow[]; due: ClaimedRow[] }> {
  const e = claimTarget;
  const fresh = sql`
    UPDATE ${events} AS ${e}
       SET ${assign(e, {
         status: sql`'processing'`,
         attempts: sql`${e.attempts} + 1`,
         claimedBy: req.consumer,
         leaseUntil: sql`${req.leaseUntil.toISOString()}::timestamptz`,
         updatedAt: sql`now()`,
       })}
     WHERE ${e.id} IN (
       SELECT ${events.id} FROM ${events}
        WHERE ${events.status} = 'pending' AND ${events.nextRetryAt} IS NULL AND ${laneIs(req.lane)}
        ORDER BY ${events.createdAt}, ${events.timestamp}
        LIMIT ${req.max}::int
        FOR UPDATE SKIP LOCKED)
    RETURNING ${freshClaimed.list}`;
  const r = await db.execute<{ is_due?: boolean }>(
    due
      ? sql`WITH fresh AS (${fresh}), due AS (${dueUpdate({ consumer: req.consumer, ...due })})
        SELECT *, false AS is_due FROM fresh
        UNION ALL SELECT *, NULL::text, true FROM due`
      : fresh,
  );
  // RETURNING has no order: restore arrival order, which the dispatcher keeps per scope.
  const rows = r.rows
    .filter((x) => !x.is_due)
    .map((x) => freshClaimed.read(x))
    .map((x) => ({ x, at: BigInt(x.arrivalUs) }))
    .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  return {
    fresh: rows.map(({ x }) => claimedRow(x)),
    due: r.rows.filter((x) => x.is_due).map((x) => claimedRow(freshClaimed.read(x))),
  };
}

/** Fresh events waiting in a lane, counted up to `upTo` (a range of the lane's partial index). */
export async function freshBacklog(db: Db, lane: string | null, upTo: number): Promise<number> {
  const r = await db.execute<{ n: number }>(sql`
    SELECT count(*)::int AS n FROM (
      SELECT 1 FROM ${events}
       WHERE ${events.status} = 'pending' AND ${events.nextRetryAt} IS NULL AND ${laneIs(lane)}
       LIMIT ${upTo}::int) AS waiting`);
  return Number(r.rows[0]?.n ?? 0);
}

/** The lane condition; the two forms match the two partial indexes of fresh events. */
function laneIs(lane: string | null): SQL {
  return lane === null ? sql`${events.lane} IS NULL` : sql`${events.lane} = ${lane}`;
}

export interface QueueStats {
  /** Events not yet final: pending (fresh or waiting for a retry) plus processing. */
  open: number;
  /** Claimed, not yet settled. */
  processing: number;
  /** Fresh events never handed out. */
  fresh: number;
  /** Consumers holding claims now. */
  consumers: number;
}

/**
 * Counts of one lane of the queue (null: live traffic), one statement (partial indexes keep
 * it off the completed history). A claimed event keeps its lane until it is final.
 */
export async function queueStats(db: Pick<Db, "execute">, lane: string | null): Promise<QueueStats> {
  const open = sql`${events.status} IN ('pending', 'processing')`;
  const processing = sql`${events.status} = 'processing'`;
  const r = await db.execute<Record<string, number | string>>(sql`
    SELECT count(*) FILTER (WHERE ${open})::int AS open,
           count(*) FILTER (WHERE ${processing})::int AS processing,
           count(*) FILTER (WHERE ${events.status} = 'pending' AND ${events.nextRetryAt} IS NULL)::int AS fresh,
           count(DISTINCT ${events.claimedBy}) FILTER (WHERE ${processing})::int AS consumers
      FROM ${events} WHERE ${open} AND ${laneIs(lane)}`);
  const x = r.rows[0] ?? {};
  return {
    open: Number(x.open ?? 0),
    processing: Number(x.processing ?? 0),
    fresh: Number(x.fresh ?? 0),
    consumers: Number(x.consumers ?? 0),
  };
}
