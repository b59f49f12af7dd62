/**
 * Event history queries for the consumers: the few statements that move an event through
 * pending -> processing -> completed | pending (retry) | dlq.
 *
 * Each function is ONE statement whatever the batch size (arrays in, unnest() inside), so
 * a batch costs one round trip to persist and one to settle. Shared by both EventStore
 * backends: the Redis one persists what it read from a stream, the Postgres one claims
 * due events straight from here with claimDue().
 *
 * Ownership: while an event is 'processing', claimed_by names the consumer (invocation)
 * holding it, and settle() applies only for that consumer. A consumer that was presumed
 * dead and lost its claim therefore cannot overwrite the newer owner's outcome.
 */
import { and, eq, type SQL, sql } from "drizzle-orm";
import { alias } from "drizzle-orm/pg-core";
import type { Db } from "../db/client";
import { type EventRow, eventStatus, events } from "../db/schema";
import {
  anyOf,
  arrayOf,
  assign,
  bare,
  columnNames,
  excluded,
  isoMicros,
  padded,
  type RowOf,
  selection,
} from "../db/sql";
import { type EventEnvelope, envelopeFrom, payloadOf } from "../events/envelope";
import { type FencesByEvent, fenceClear } from "./fences";

export interface PersistedClaim {
  id: string;
  /** Deliveries so far, this one included. */
  attempts: number;
}

/** Ask to claim due events too, in the same statement as a lane's batch (see claimDue). */
export interface DueLook {
  max: number;
  /** The consumer's clock: retries due at or before it are claimed. */
  now: Date;
  /** The Postgres-side claim's lease, ms. */
  leaseMs: number;
  /**
   * "redrive": only events of the redrive lane (a DLQ retry-all sends them there, drained by
   * the replay runner behind live traffic). Default: every other due event.
   */
  lane?: "redrive";
}

/** The lane column of events a DLQ retry-all sent back (see DueLook.lane). */
export const REDRIVE_LANE = "redrive";

export interface ClaimedRow {
  event: EventEnvelope;
  /** Deliveries so far, this one included. */
  attempts: number;
}

/**
 * `events AS e`: the row a claim UPDATE sets, kept apart from its subquery's own scan of
 * events (dueUpdate, and the Postgres backend's claimFresh).
 */
export const claimTarget = alias(events, "e");
const e = claimTarget;

/** What a claim answers per event (the columns an envelope is made of, and attempts). */
export const claimedFields = {
  id: e.id,
  type: e.type,
  source: e.source,
  timestamp: e.timestamp,
  payload: e.payload,
  meta: e.meta,
  attempts: e.attempts,
};
const claimed = selection(claimedFields);

/** A history row as a claim returns it, before it becomes an envelope. */
export type ClaimedEventRow = Pick<EventRow, keyof typeof claimedFields>;

/** The columns an envelope is made of, as a select or returning list (envelopeFrom takes the row). */
export const envelopeFields = {
  id: events.id,
  type: events.type,
  source: events.source,
  timestamp: events.timestamp,
  payload: events.payload,
  meta: events.meta,
};

/** An event as the keyset scans (admin listing, replay chunks) read it: `ts` is µs ISO text, the next cursor. */
export const historyFields = {
  id: events.id,
  type: events.type,
  source: events.source,
  ts: isoMicros(events.timestamp),
  payload: events.payload,
  meta: events.meta,
};
export type HistoryRow = RowOf<typeof historyFields>;

/**
 * The columns an envelope is stored in, in the order of the unnest() row sources that feed
 * them (`v(id, type, source, ts, payload, meta)`); scope is the source.
 */
export const envelopeColumns = [
  events.id,
  events.type,
  events.source,
  events.timestamp,
  events.payload,
  events.meta,
  events.scope,
];

/**
 * Records a batch as 'processing' for `consumer`, idempotently on event id. The Redis
 * backend calls it for reclaimed entries only (their claim moves to `consumer`: the row fences
 * the consumer that lost it, see ./redis/outcome-writes.ts); fresh reads write no row until settle.
 *  - a new id is inserted (attempts: `deliveries` of its entry, default 1);
 *  - an id already 'processing' under a stream claim (its consumer died before settling; the
 *    entry was reclaimed) is taken over (attempts + 1, at least its deliveries);
 *  - anything else (completed, dlq, pending a retry, held by a live Postgres-side claim, or
 *    held by `consumer` itself) is left alone and NOT returned: the caller acknowledges it
 *    without handling it. The last case: the consumer claims its next batch while the
 *    current one is still being handled (src/consume/consumer.ts), so an entry repeated in
 *    the stream (a republish) can reach it while it still holds the first one; taking that
 *    over would hand the same event out twice. (A consumer name is one invocation: its own
 *    claim is never that of a dead consumer.)
 * With `due`, the same statement also claims due events (claimDue), other than this batch's
 * ids: the due-retry look costs no round trip of its own.
 * Callers pass each id once (ON CONFLICT DO UPDATE cannot touch a row twice in one statement).
 */
export async function persistClaimed(
  db: Db,
  consumer: string,
  batch: EventEnvelope[],
  due?: DueLook,
  /** Per event of `batch`: the deliveries of its stream entry (the pending-entries list's count). */
  deliveries?: number[],
): Promise<{ owned: PersistedClaim[]; due: ClaimedRow[] }> {
  if (batch.length === 0) return { owned: [], due: due ? await claimDue(db, { consumer, ...due }) : [] };
  const col = <T>(f: (x: EventEnvelope) => T) => sql.param(batch.map(f));
  const counts = sql.param(batch.map((_, i) => deliveries?.[i] ?? 1));
  const insert = (returning: SQL) => sql`
    INSERT INTO ${events} (${columnNames(...envelopeColumns, events.status, events.attempts, events.claimedBy)})
    SELECT v.id, v.type, v.source, v.ts, v.payload::jsonb, v.meta::jsonb, v.source, 'processing', v.n, ${consumer}
    FROM unnest(
      ${col((x) => x.id)}::uuid[], ${col((x) => x.type)}::text[], ${col((x) => x.source)}::text[],
      ${col((x) => x.timestamp)}::timestamptz[], ${col((x) => JSON.stringify(payloadOf(x)))}::text[],
      ${col((x) => JSON.stringify(x.meta))}::text[], ${counts}::int[]
    ) AS v(id, type, source, ts, payload, meta, n)
    ON CONFLICT (${bare(events.id)}) DO UPDATE
      SET ${assign(events, {
        attempts: sql`greatest(${events.attempts} + 1, ${excluded(events.attempts)})`,
        claimedBy: excluded(events.claimedBy),
        updatedAt: sql`now()`,
      })}
      WHERE ${events.status} = 'processing' AND ${events.leaseUntil} IS NULL
        AND ${events.claimedBy} IS DISTINCT FROM ${excluded(events.claimedBy)}
    RETURNING ${returning}`;
  const owned = selection({ id: events.id, attempts: events.attempts });
  if (!due) {
    const r = await db.execute(insert(owned.list));
    return { owned: r.rows.map((x) => owned.read(x)), due: [] };
  }
  // The two parts touch disjoint rows (the due part skips this batch's ids), as one statement
  // must not modify a row twice. The lane's rows come padded to the due rows' columns.
  const lane = insert(padded(claimedFields, { id: events.id, attempts: events.attempts }));
  const except = batch.map((x) => x.id);
  const r = await db.execute<{ is_due: boolean }>(sql`
    WITH lane AS (${lane}),
         due AS (${dueUpdate({ consumer, ...due }, except)})
    SELECT *, false AS is_due FROM lane
    UNION ALL
    SELECT *, true FROM due`);
  const mine: PersistedClaim[] = [];
  const claimedDue: ClaimedRow[] = [];
  for (const x of r.rows) {
    if (x.is_due) claimedDue.push(claimedRow(claimed.read(x)));
    else mine.push(owned.read(x));
  }
  return { owned: mine, due: claimedDue };
}

/**
 * Claims up to `max` events that are due in Postgres: pending with next_retry_at <= now, or
 * 'processing' under a Postgres-side claim whose lease expired (its consumer died). They
 * become 'processing' for `consumer` with a lease of `leaseMs`, attempts + 1.
 * FOR UPDATE SKIP LOCKED: overlapping consumers never claim the same row.
 */
export async function claimDue(db: Db, req: DueLook & { consumer: string }): Promise<ClaimedRow[]> {
  const r = await db.execute(dueUpdate(req));
  return r.rows.map((x) => claimedRow(claimed.read(x)));
}

/**
 * claimDue's statement, also run as a CTE beside a lane claim (persistClaimed, and the
 * Postgres backend's claimFresh). `except`: ids the rest of that statement touches.
 * It answers `claimedFields`. The redrive lane and the rest are apart: a live consumer
 * never claims a redriven event (nor its retries), the replay runner's drain nothing else.
 */
export function dueUpdate(req: DueLook & { consumer: string }, except: string[] = []): SQL {
  const now = req.now.toISOString();
  const leaseUntil = new Date(req.now.getTime() + req.leaseMs).toISOString();
  // The expression of events_status_next_retry_idx, word for word, so the planner uses it.
  const lane = sql`coalesce(${events.lane} = 'redrive', false) = ${sql.raw(req.lane === "redrive" ? "true" : "false")}`;
  const others = except.length ? sql`AND ${events.id} <> ALL(${arrayOf(events.id, except)})` : sql``;
  // Two branches, each an ordered range scan of its own index that stops at the limit, instead
  // of one OR that reads every due row and sorts them: expired claims first (their consumer
  // died), then pending retries by due time, each only of its lane (redrive or not).
  return sql`
    UPDATE ${events} AS ${e}
       SET ${assign(e, {
         status: sql`'processing'`,
         attempts: sql`${e.attempts} + 1`,
         claimedBy: req.consumer,
         leaseUntil: sql`${leaseUntil}::timestamptz`,
         updatedAt: sql`now()`,
       })}
     WHERE ${e.id} IN (
       SELECT id FROM (
         SELECT id FROM (SELECT ${events.id} FROM ${events}
           WHERE ${events.status} = 'processing' AND ${events.leaseUntil} < ${now}::timestamptz AND ${lane} ${others}
           ORDER BY ${events.leaseUntil} LIMIT ${req.max} FOR UPDATE SKIP LOCKED) AS expired
         UNION ALL
         SELECT id FROM (SELECT ${events.id} FROM ${events}
           WHERE ${events.status} = 'pending' AND ${events.nextRetryAt} <= ${now}::timestamptz AND ${lane} ${others}
           ORDER BY ${events.nextRetryAt} LIMIT ${req.max} FOR UPDATE SKIP LOCKED) AS retries
       ) AS due LIMIT ${req.max})
    RETURNING ${claimed.list}`;
}

/**
 * Extends Postgres-side claims that `consumer` still holds to `leaseUntil`, one statement.
 * Answers the ids it extended; an id missing was settled or taken over by another consumer.
 */
export async function renewLeases(db: Db, consumer: string, ids: string[], leaseUntil: Date): Promise<string[]> {
  if (ids.length === 0) return [];
  const renewed = selection({ id: events.id });
  const r = await db.execute(sql`
    UPDATE ${events} SET ${assign(events, { leaseUntil: sql`${leaseUntil.toISOString()}::timestamptz` })}
     WHERE ${anyOf(events.id, ids)} AND ${events.status} = 'processing'
       AND ${events.claimedBy} = ${consumer} AND ${events.leaseUntil} IS NOT NULL
    RETURNING ${renewed.list}`);
  return r.rows.map((x) => renewed.read(x).id);
}

export function claimedRow(x: ClaimedEventRow): ClaimedRow {
  return { event: envelopeFrom(x), attempts: x.attempts };
}

/** How an attempt settled: the one name for Outcome["status"] (./types.ts) in every statement. */
export type SettleStatus = "completed" | "retry" | "defer" | "dlq";

export interface SettleRow {
  id: string;
  status: SettleStatus;
  /** Error of this attempt (retry, dlq); appended to errors[] and last_error. */
  error?: string;
  /** When the retry (or deferred attempt) is due. */
  retryAt?: Date;
}

/**
 * Records the outcomes of a batch in one statement, for rows `consumer` still holds and whose
 * scope fences are not below a newer holder's (./fences.ts).
 * "defer" gives the attempt back (attempts - 1) and appends no error: the event was not tried.
 * Returns the ids actually updated.
 */
export async function settleOutcomes(
  db: Db,
  consumer: string,
  rows: SettleRow[],
  now: Date,
  fences?: FencesByEvent,
): Promise<string[]> {
  if (rows.length === 0) return [];
  const p = <T>(f: (r: SettleRow) => T) => sql.param(rows.map(f));
  const at = now.toISOString();
  const settled = selection({ id: e.id });
  const r = await db.execute(sql`
    UPDATE ${events} AS ${e} SET ${assign(e, {
      status: sql`(CASE v.kind WHEN 'completed' THEN 'completed' WHEN 'dlq' THEN 'dlq' ELSE 'pending' END)
        ::${eventStatus}`,
      attempts: sql`CASE WHEN v.kind = 'defer' THEN greatest(${e.attempts} - 1, 0) ELSE ${e.attempts} END`,
      lastError: sql`coalesce(v.error, ${e.lastError})`,
      errors: sql`CASE WHEN v.error IS NULL THEN ${e.errors}
               ELSE ${e.errors} || jsonb_build_array(
                 jsonb_build_object('attempt', ${e.attempts}, 'error', v.error, 'at', ${at}::text)) END`,
      nextRetryAt: sql`v.retry_at`,
      processedAt: sql`CASE WHEN v.kind IN ('completed', 'dlq') THEN ${at}::timestamptz ELSE ${e.processedAt} END`,
      claimedBy: sql`NULL`,
      leaseUntil: sql`NULL`,
      updatedAt: sql`now()`,
    })}
    FROM unnest(
      ${p((x) => x.id)}::uuid[], ${p((x) => x.status)}::text[], ${p((x) => x.error ?? null)}::text[],
      ${p((x) => x.retryAt?.toISOString() ?? null)}::timestamptz[]
    ) AS v(id, kind, error, retry_at)
    WHERE ${e.id} = v.id AND ${e.status} = 'processing' AND ${e.claimedBy} = ${consumer}
      ${fenced(e.id, fences)}
    RETURNING ${settled.list}`);
  return r.rows.map((x) => settled.read(x).id);
}

/**
 * settleOutcomes() for the common batch in which every outcome is 'completed': the same
 * effect on those rows, as a plain UPDATE by id. Cheaper than the generic statement - one
 * array parameter instead of four, no unnest() join, no per-row CASEs - and it answers with
 * the count of rows updated (the command tag) instead of sending every id back.
 */
export async function settleCompleted(
  db: Db,
  consumer: string,
  ids: string[],
  now: Date,
  fences?: FencesByEvent,
): Promise<number> {
  if (ids.length === 0) return 0;
  const r = await db
    .update(events)
    .set({
      status: "completed",
      nextRetryAt: null,
      processedAt: now,
      claimedBy: null,
      leaseUntil: null,
      updatedAt: sql`now()`,
    })
    .where(
      and(
        anyOf(events.id, ids),
        eq(events.status, "processing"),
        eq(events.claimedBy, consumer),
        fenceClear(events.id, fences),
      ),
    );
  return r.rowCount ?? 0;
}

/** `AND <fence check>` for a settle statement, or nothing when no outcome carries a fence. */
function fenced(id: typeof e.id, fences: FencesByEvent | undefined): SQL {
  const clear = fenceClear(id, fences);
  return clear ? sql`AND ${clear}` : sql``;
}

/** Counts for health and metrics, in one statement. */
export async function historyCounts(db: Db, now: Date) {
  const at = now.toISOString();
  const count = (where: SQL) => sql<number>`count(*) FILTER (WHERE ${where})`.mapWith(Number);
  const [x] = await db
    .select({
      pending: count(sql`${events.status} = 'pending'`),
      processing: count(sql`${events.status} = 'processing'`),
      completed: count(sql`${events.status} = 'completed'`),
      dlq: count(sql`${events.status} = 'dlq'`),
      retryBacklog: count(sql`${events.status} = 'pending' AND ${events.nextRetryAt} > ${at}::timestamptz`),
      oldestAge: sql<number>`coalesce(extract(epoch FROM (${at}::timestamptz
             - min(${events.createdAt}) FILTER (WHERE ${events.status} IN ('pending', 'processing')))), 0)`.mapWith(
        Number,
      ),
    })
    .from(events);
  return {
    pending: x?.pending ?? 0,
    processing: x?.processing ?? 0,
    completed: x?.completed ?? 0,
    dlq: x?.dlq ?? 0,
    retryBacklog: x?.retryBacklog ?? 0,
    oldestPendingAgeSeconds: Math.max(0, x?.oldestAge ?? 0),
  };
}
