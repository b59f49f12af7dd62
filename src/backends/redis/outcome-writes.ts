/**
 * History for events claimed from a stream (the Redis backend): the row is written once,
 * with the event's outcome. While an event is in flight the stream's pending-entries list
 * says who holds it, since when and how many deliveries it had; history has no row for it
 * (or its last attempt's row), so a claim costs a read of history, not a write.
 *
 * Ownership: a settle inserts the row, or updates one only while it is 'processing' for the
 * settling consumer. Such a row exists only for an event whose claim moved to another
 * consumer (a reclaim writes it, see persistClaimed) or that is held under a Postgres-side
 * claim (a due retry): a consumer that lost its claim then finds the row taken and records
 * nothing, and one that settles before any takeover is simply the event's outcome.
 */
import { sql } from "drizzle-orm";
import type { Db } from "../../db/client";
import { eventStatus, events } from "../../db/schema";
import { columnNames, excluded, padded, selection } from "../../db/sql";
import { type EventEnvelope, payloadOf } from "../../events/envelope";
import { type FencesByEvent, fenceClear } from "../fences";
import {
  type ClaimedRow,
  claimedFields,
  claimedRow,
  type DueLook,
  dueUpdate,
  envelopeColumns,
  type SettleStatus,
} from "../history-writes";

/**
 * Which of `ids` history already has a row for (an outcome, a retry scheduled, or a claim in
 * Postgres): such a delivery is not handed out. With `due`, the same statement claims due
 * events (claimDue) other than `ids`. One statement either way.
 */
export async function seenInHistory(
  db: Db,
  consumer: string,
  ids: string[],
  due?: DueLook,
): Promise<{ seen: Set<string>; due: ClaimedRow[] }> {
  const param = sql`${sql.param(ids)}::uuid[]`;
  if (!due) {
    if (ids.length === 0) return { seen: new Set(), due: [] };
    const r = await db.execute<{ id: string }>(
      sql`SELECT ${events.id} AS id FROM ${events} WHERE ${events.id} = ANY(${param})`,
    );
    return { seen: new Set(r.rows.map((x) => x.id)), due: [] };
  }
  const claimed = selection(claimedFields);
  const r = await db.execute<{ is_due: boolean; id: string }>(sql`
    WITH due AS (${dueUpdate({ consumer, ...due }, ids)})
    SELECT ${padded(claimedFields, { id: events.id })}, false AS is_due FROM ${events} WHERE ${events.id} = ANY(${param})
    UNION ALL
    SELECT *, true FROM due`);
  const seen = new Set<string>();
  const claimedDue: ClaimedRow[] = [];
  for (const x of r.rows) {
    if (x.is_due) claimedDue.push(claimedRow(claimed.read(x)));
    else seen.add(x.id);
  }
  return { seen, due: claimedDue };
}

/** One outcome to record: the event itself (the row may not exist yet) and its attempt number. */
export interface OutcomeRow {
  event: EventEnvelope;
  /** Deliveries so far, this one included (what the claim handed out). */
  attempts: number;
  status: SettleStatus;
  /** Error of this attempt (retry, dlq): errors[] and last_error. */
  error?: string;
  /** When the retry (or deferred attempt) is due. */
  retryAt?: Date;
}

/**
 * Records the outcomes of a batch in one upsert keyed by event id: a new row with its
 * outcome, or the update of a row `consumer` holds as 'processing' (a reclaimed event, a due
 * retry). "defer" gives the attempt back (attempts - 1) and records no error. With
 * `ids: false` it answers the count of rows written (the command tag) instead of their ids.
 * Callers pass each id once. An outcome whose scope fence a newer holder put below its
 * token (../fences.ts) is neither inserted nor applied.
 */
export async function recordOutcomes(
  db: Db,
  consumer: string,
  rows: OutcomeRow[],
  now: Date,
  answer: { ids: true },
  fences?: FencesByEvent,
): Promise<string[]>;
export async function recordOutcomes(
  db: Db,
  consumer: string,
  rows: OutcomeRow[],
  now: Date,
  answer: { ids: false },
  fences?: FencesByEvent,
): Promise<number>;
export async function recordOutcomes(
  db: Db,
  consumer: string,
  rows: OutcomeRow[],
  now: Date,
  answer: { ids: boolean },
  fences?: FencesByEvent,
): Promise<string[] | number> {
  if (rows.length === 0) return answer.ids ? [] : 0;
  const at = now.toISOString();
  const col = <T>(f: (x: OutcomeRow) => T) => sql.param(rows.map(f));
  const allCompleted = rows.every((x) => x.status === "completed");
  const clear = fenceClear(sql`v.id`, fences);
  const fenced = clear ? sql`WHERE ${clear}` : sql``;
  // Every outcome 'completed' (the usual batch): constants instead of four more arrays and CASEs.
  const source = allCompleted
    ? sql`
    SELECT v.id, v.type, v.source, v.ts, v.payload::jsonb, v.meta::jsonb, v.source,
           'completed'::${eventStatus}, v.attempts, NULL::text, '[]'::jsonb, NULL::timestamptz, ${at}::timestamptz
    FROM unnest(
      ${col((x) => x.event.id)}::uuid[], ${col((x) => x.event.type)}::text[], ${col((x) => x.event.source)}::text[],
      ${col((x) => x.event.timestamp)}::timestamptz[], ${col((x) => JSON.stringify(payloadOf(x.event)))}::text[],
      ${col((x) => JSON.stringify(x.event.meta))}::text[], ${col((x) => x.attempts)}::int[]
    ) AS v(id, type, source, ts, payload, meta, attempts)
    ${fenced}`
    : sql`
    SELECT v.id, v.type, v.source, v.ts, v.payload::jsonb, v.meta::jsonb, v.source,
           (CASE v.kind WHEN 'completed' THEN 'completed' WHEN 'dlq' THEN 'dlq' ELSE 'pending' END)::${eventStatus},
           CASE WHEN v.kind = 'defer' THEN greatest(v.attempts - 1, 0) ELSE v.attempts END,
           v.error,
           CASE WHEN v.error IS NULL THEN '[]'::jsonb
                ELSE jsonb_build_array(jsonb_build_object('attempt', v.attempts, 'error', v.error, 'at', ${at}::text)) END,
           v.retry_at,
           CASE WHEN v.kind IN ('completed', 'dlq') THEN ${at}::timestamptz END
    FROM unnest(
      ${col((x) => x.event.id)}::uuid[], ${col((x) => x.event.type)}::text[], ${col((x) => x.event.source)}::text[],
      ${col((x) => x.event.timestamp)}::timestamptz[], ${col((x) => JSON.stringify(payloadOf(x.event)))}::text[],
      ${col((x) => JSON.stringify(x.event.meta))}::text[], ${col((x) => x.attempts)}::int[],
      ${col((x) => x.status)}::text[], ${col((x) => x.error ?? null)}::text[],
      ${col((x) => x.retryAt?.toISOString() ?? null)}::timestamptz[]
    ) AS v(id, type, source, ts, payload, meta, attempts, kind, error, retry_at)
    ${fenced}`;
  const e = events;
  const statement = sql`
    INSERT INTO ${events} (${columnNames(
      ...envelopeColumns,
      e.status,
      e.attempts,
      e.lastError,
      e.errors,
      e.nextRetryAt,
      e.processedAt,
    )})
    ${source}
    ON CONFLICT (${sql.identifier(e.id.name)}) DO UPDATE SET
      ${sql.identifier(e.status.name)} = ${excluded(e.status)},
      ${sql.identifier(e.attempts.name)} = ${excluded(e.attempts)},
      ${sql.identifier(e.lastError.name)} = coalesce(${excluded(e.lastError)}, ${e.lastError}),
      ${sql.identifier(e.errors.name)} = ${e.errors} || ${excluded(e.errors)},
      ${sql.identifier(e.nextRetryAt.name)} = ${excluded(e.nextRetryAt)},
      ${sql.identifier(e.processedAt.name)} = coalesce(${excluded(e.processedAt)}, ${e.processedAt}),
      ${sql.identifier(e.claimedBy.name)} = NULL,
      ${sql.identifier(e.leaseUntil.name)} = NULL,
      ${sql.identifier(e.updatedAt.name)} = now()
    WHERE ${e.status} = 'processing' AND ${e.claimedBy} = ${consumer}`;
  if (!answer.ids) return (await db.execute(statement)).rowCount ?? 0;
  const r = await db.execute<{ id: string }>(sql`${statement} RETURNING ${e.id} AS id`);
  return r.rows.map((x) => x.id);
}
