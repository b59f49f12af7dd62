/**
 * Event history queries for the consumers: the few statements that move an event through
 * pending -> processing -> completed | pending (retry) | dlq.
 *
 * Each function is ONE statement whatever the batch size (arrays in, unnest() inside), so
 * a batch costs one round trip to persist and one to settle. Shared by both EventStore
 * backends: the Redis one persists what it read from a stream, the Postgres one (issue 5)
 * claims straight from here with claimDue().
 *
 * Ownership: while an event is 'processing', claimed_by names the consumer (invocation)
 * holding it, and settle() applies only for that consumer. A consumer that was presumed
 * dead and lost its claim therefore cannot overwrite the newer owner's outcome.
 */
import { type SQL, sql } from "drizzle-orm";
import { type EventEnvelope, envelopeFrom, payloadOf } from "../events/envelope";
import type { Db } from "./client";

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
}

export interface ClaimedRow {
  event: EventEnvelope;
  /** Deliveries so far, this one included. */
  attempts: number;
}

/**
 * Records a freshly read batch as 'processing' for `consumer`, idempotently on event id:
 *  - a new id is inserted (attempts 1);
 *  - an id already 'processing' under a stream claim (its consumer died before settling; the
 *    entry was reclaimed) is taken over (attempts + 1);
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
  events: EventEnvelope[],
  due?: DueLook,
): Promise<{ owned: PersistedClaim[]; due: ClaimedRow[] }> {
  if (events.length === 0) return { owned: [], due: due ? await claimDue(db, { consumer, ...due }) : [] };
  const col = <T>(f: (e: EventEnvelope) => T) => sql.param(events.map(f));
  const insert = sql`
    INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts, claimed_by)
    SELECT v.id, v.type, v.source, v.ts, v.payload::jsonb, v.meta::jsonb, v.source, 'processing', 1, ${consumer}
    FROM unnest(
      ${col((e) => e.id)}::uuid[], ${col((e) => e.type)}::text[], ${col((e) => e.source)}::text[],
      ${col((e) => e.timestamp)}::timestamptz[], ${col((e) => JSON.stringify(payloadOf(e)))}::text[],
      ${col((e) => JSON.stringify(e.meta))}::text[]
    ) AS v(id, type, source, ts, payload, meta)
    ON CONFLICT (id) DO UPDATE
      SET attempts = events.attempts + 1, claimed_by = EXCLUDED.claimed_by, updated_at = now()
      WHERE events.status = 'processing' AND events.lease_until IS NULL
        AND events.claimed_by IS DISTINCT FROM EXCLUDED.claimed_by
    RETURNING id, attempts`;
  if (!due) {
    const r = await db.execute<{ id: string; attempts: number }>(insert);
    return { owned: r.rows.map((x) => ({ id: x.id, attempts: Number(x.attempts) })), due: [] };
  }
  // The two parts touch disjoint rows (the due part skips this batch's ids), as one statement
  // must not modify a row twice.
  const r = await db.execute<Partial<EventRowLite> & { id: string; attempts: number; is_due: boolean }>(sql`
    WITH lane AS (${insert}),
         due AS (${dueUpdate(
           { consumer, ...due },
           events.map((e) => e.id),
         )})
    SELECT id, attempts, false AS is_due, NULL::text AS type, NULL::text AS source, NULL::timestamptz AS "timestamp",
           NULL::jsonb AS payload, NULL::jsonb AS meta FROM lane
    UNION ALL
    SELECT id, attempts, true, type, source, "timestamp", payload, meta FROM due`);
  const owned: PersistedClaim[] = [];
  const claimed: EventRowLite[] = [];
  for (const x of r.rows) {
    if (x.is_due) claimed.push(x as EventRowLite);
    else owned.push({ id: x.id, attempts: Number(x.attempts) });
  }
  return { owned, due: claimed.map(claimedRow) };
}

/** A history row as the claim queries return it (before it becomes an envelope). */
export type EventRowLite = Record<string, unknown> & {
  id: string;
  type: string;
  source: string;
  timestamp: string | Date;
  payload: Record<string, unknown>;
  meta: Record<string, unknown>;
  attempts: number;
};

/** A history row as the keyset scans (admin listing, replay chunks) return it. */
export type HistoryRow = {
  id: string;
  type: string;
  source: string;
  /** µs-precision ISO text: the next cursor. */
  ts: string;
  payload: Record<string, unknown>;
  meta: Record<string, unknown>;
};

/**
 * Claims up to `max` events that are due in Postgres: pending with next_retry_at <= now, or
 * 'processing' under a Postgres-side claim whose lease expired (its consumer died). They
 * become 'processing' for `consumer` with a lease of `leaseMs`, attempts + 1.
 * FOR UPDATE SKIP LOCKED: overlapping consumers never claim the same row.
 */
export async function claimDue(db: Db, req: DueLook & { consumer: string }): Promise<ClaimedRow[]> {
  const r = await db.execute<EventRowLite>(dueUpdate(req));
  return r.rows.map(claimedRow);
}

/**
 * claimDue's statement, also run as a CTE beside a lane claim (persistClaimed, and the
 * Postgres backend's claimFresh). `except`: ids the rest of that statement touches.
 */
export function dueUpdate(req: DueLook & { consumer: string }, except: string[] = []): SQL {
  const now = req.now.toISOString();
  const leaseUntil = new Date(req.now.getTime() + req.leaseMs).toISOString();
  return sql`
    UPDATE events AS e
       SET status = 'processing', attempts = e.attempts + 1, claimed_by = ${req.consumer},
           lease_until = ${leaseUntil}::timestamptz, updated_at = now()
     WHERE e.id IN (
       SELECT id FROM events
        WHERE ((status = 'pending' AND next_retry_at <= ${now}::timestamptz)
           OR (status = 'processing' AND lease_until < ${now}::timestamptz))
          ${except.length ? sql`AND id <> ALL(${sql.param(except)}::uuid[])` : sql``}
        ORDER BY next_retry_at NULLS FIRST
        LIMIT ${req.max}
        FOR UPDATE SKIP LOCKED)
    RETURNING e.id, e.type, e.source, e."timestamp", e.payload, e.meta, e.attempts`;
}

export function claimedRow(x: EventRowLite): ClaimedRow {
  return { event: envelopeFrom({ ...x, timestamp: new Date(x.timestamp) }), attempts: Number(x.attempts) };
}

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
 * Records the outcomes of a batch in one statement, for rows `consumer` still holds.
 * "defer" gives the attempt back (attempts - 1) and appends no error: the event was not tried.
 * Returns the ids actually updated.
 */
export async function settleOutcomes(db: Db, consumer: string, rows: SettleRow[], now: Date): Promise<string[]> {
  if (rows.length === 0) return [];
  const p = <T>(f: (r: SettleRow) => T) => sql.param(rows.map(f));
  const at = now.toISOString();
  const r = await db.execute<{ id: string }>(sql`
    UPDATE events AS e SET
      status = (CASE v.kind WHEN 'completed' THEN 'completed' WHEN 'dlq' THEN 'dlq' ELSE 'pending' END)::event_status,
      attempts = CASE WHEN v.kind = 'defer' THEN greatest(e.attempts - 1, 0) ELSE e.attempts END,
      last_error = coalesce(v.error, e.last_error),
      errors = CASE WHEN v.error IS NULL THEN e.errors
               ELSE e.errors || jsonb_build_array(jsonb_build_object('attempt', e.attempts, 'error', v.error, 'at', ${at}::text)) END,
      next_retry_at = v.retry_at,
      processed_at = CASE WHEN v.kind IN ('completed', 'dlq') THEN ${at}::timestamptz ELSE e.processed_at END,
      claimed_by = NULL, lease_until = NULL, updated_at = now()
    FROM unnest(
      ${p((x) => x.id)}::uuid[], ${p((x) => x.status)}::text[], ${p((x) => x.error ?? null)}::text[],
      ${p((x) => x.retryAt?.toISOString() ?? null)}::timestamptz[]
    ) AS v(id, kind, error, retry_at)
    WHERE e.id = v.id AND e.status = 'processing' AND e.claimed_by = ${consumer}
    RETURNING e.id`);
  return r.rows.map((x) => x.id);
}

/**
 * settleOutcomes() for the common batch in which every outcome is 'completed': the same
 * effect on those rows, as a plain UPDATE by id. Cheaper than the generic statement - one
 * array parameter instead of four, no unnest() join, no per-row CASEs - and it answers with
 * the count of rows updated (the command tag) instead of sending every id back.
 */
export async function settleCompleted(db: Db, consumer: string, ids: string[], now: Date): Promise<number> {
  if (ids.length === 0) return 0;
  const r = await db.execute(sql`
    UPDATE events SET status = 'completed', next_retry_at = NULL, processed_at = ${now.toISOString()}::timestamptz,
      claimed_by = NULL, lease_until = NULL, updated_at = now()
    WHERE id = ANY(${sql.param(ids)}::uuid[]) AND status = 'processing' AND claimed_by = ${consumer}`);
  return r.rowCount ?? 0;
}

/** Counts for health and metrics, in one statement. */
export async function historyCounts(db: Db, now: Date) {
  const r = await db.execute<Record<string, number | string | null>>(sql`
    SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
           count(*) FILTER (WHERE status = 'processing') AS processing,
           count(*) FILTER (WHERE status = 'completed') AS completed,
           count(*) FILTER (WHERE status = 'dlq') AS dlq,
           count(*) FILTER (WHERE status = 'pending' AND next_retry_at > ${now.toISOString()}::timestamptz) AS retry_backlog,
           coalesce(extract(epoch FROM (${now.toISOString()}::timestamptz
             - min(created_at) FILTER (WHERE status IN ('pending', 'processing')))), 0) AS oldest_age
      FROM events`);
  const x = r.rows[0] ?? {};
  return {
    pending: Number(x.pending ?? 0),
    processing: Number(x.processing ?? 0),
    completed: Number(x.completed ?? 0),
    dlq: Number(x.dlq ?? 0),
    retryBacklog: Number(x.retry_backlog ?? 0),
    oldestPendingAgeSeconds: Math.max(0, Number(x.oldest_age ?? 0)),
  };
}
