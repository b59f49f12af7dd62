/**
 * Postgres side of the DLQ sweeper (src/ops/dlq-sweeper.ts).
 */
import { sql } from "drizzle-orm";
import { type EventEnvelope, envelopeFrom } from "../events/envelope";
import type { Db } from "./client";

export interface SweptEvent {
  event: EventEnvelope;
  status: "dlq" | "pending";
  attempts: number;
  error: string;
}

/**
 * Events left 'processing' since before `stuckBefore` by a consumer that died and that
 * nothing reclaimed (e.g. the stream entry was trimmed while pending, or a Postgres-side
 * lease expired with no consumer running since). The dead attempt counts: with attempts
 * exhausted the event goes to the DLQ, otherwise back to pending, due now (claimDue takes
 * it). SKIP LOCKED and the status check keep this safe beside running consumers, and a late
 * settle from the presumed-dead consumer no longer applies (claimed_by is cleared).
 */
export async function sweepStuck(
  db: Db,
  o: { maxAttempts: number; stuckBefore: Date; now: Date; limit: number },
): Promise<SweptEvent[]> {
  const before = o.stuckBefore.toISOString();
  const now = o.now.toISOString();
  const error = "no outcome recorded: the consumer died or timed out during this attempt (swept)";
  const r = await db.execute<{
    id: string;
    type: string;
    source: string;
    timestamp: string | Date;
    payload: Record<string, unknown>;
    meta: Record<string, unknown>;
    status: "dlq" | "pending";
    attempts: number;
  }>(sql`
    WITH stuck AS (
      SELECT id FROM events
       WHERE status = 'processing'
         AND coalesce(lease_until, updated_at) < ${before}::timestamptz
       LIMIT ${o.limit}
       FOR UPDATE SKIP LOCKED)
    UPDATE events AS e SET
      status = (CASE WHEN e.attempts >= ${o.maxAttempts} THEN 'dlq' ELSE 'pending' END)::event_status,
      last_error = ${error},
      errors = e.errors || jsonb_build_array(jsonb_build_object('attempt', e.attempts, 'error', ${error}::text, 'at', ${now}::text)),
      next_retry_at = CASE WHEN e.attempts >= ${o.maxAttempts} THEN NULL ELSE ${now}::timestamptz END,
      processed_at = CASE WHEN e.attempts >= ${o.maxAttempts} THEN ${now}::timestamptz ELSE e.processed_at END,
      claimed_by = NULL, lease_until = NULL, updated_at = now()
      FROM stuck WHERE e.id = stuck.id AND e.status = 'processing'
    RETURNING e.id, e.type, e.source, e."timestamp", e.payload, e.meta, e.status, e.attempts`);
  return r.rows.map((x) => ({
    event: envelopeFrom(x),
    status: x.status,
    attempts: Number(x.attempts),
    error,
  }));
}

/**
 * Records whether a watched quantity is above its threshold and answers true only on the
 * transition to "above" (once per crossing). Atomic: of two overlapping sweeps, one wins.
 */
export async function crossedAbove(db: Db, key: string, above: boolean): Promise<boolean> {
  const r = await db.execute<{ above: boolean }>(sql`
    INSERT INTO ops_state (key, value) VALUES (${key}, jsonb_build_object('above', ${above}::boolean))
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
      WHERE (ops_state.value ->> 'above')::boolean IS DISTINCT FROM (EXCLUDED.value ->> 'above')::boolean
    RETURNING (value ->> 'above')::boolean AS above`);
  return r.rows.length > 0 && r.rows[0]!.above === true;
}
