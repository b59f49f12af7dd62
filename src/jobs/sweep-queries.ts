/**
 * Postgres side of the DLQ sweeper (src/jobs/dlq-sweeper.ts).
 */
import { and, eq, type SQLWrapper, sql } from "drizzle-orm";
import { envelopeFields } from "../backends/history-writes";
import type { Db } from "../db/client";
import { eventStatus, events, opsState } from "../db/schema";
import { excluded } from "../db/sql";
import { type EventEnvelope, envelopeFrom } from "../events/envelope";

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
  const stuck = db.$with("stuck").as(
    db
      .select({ id: events.id })
      .from(events)
      .where(
        and(
          eq(events.status, "processing"),
          sql`coalesce(${events.leaseUntil}, ${events.updatedAt}) < ${before}::timestamptz`,
        ),
      )
      .limit(o.limit)
      .for("update", { skipLocked: true }),
  );
  const exhausted = () => sql`${events.attempts} >= ${o.maxAttempts}`;
  const rows = await db
    .with(stuck)
    .update(events)
    .set({
      status: sql`(CASE WHEN ${exhausted()} THEN 'dlq' ELSE 'pending' END)::${eventStatus}`,
      lastError: error,
      errors: sql`${events.errors} || jsonb_build_array(
        jsonb_build_object('attempt', ${events.attempts}, 'error', ${error}::text, 'at', ${now}::text))`,
      nextRetryAt: sql`CASE WHEN ${exhausted()} THEN NULL ELSE ${now}::timestamptz END`,
      processedAt: sql`CASE WHEN ${exhausted()} THEN ${now}::timestamptz ELSE ${events.processedAt} END`,
      claimedBy: null,
      leaseUntil: null,
      updatedAt: sql`now()`,
    })
    .from(stuck)
    .where(and(eq(events.id, stuck.id), eq(events.status, "processing")))
    .returning({ ...envelopeFields, status: events.status, attempts: events.attempts });
  return rows.map((x) => ({
    event: envelopeFrom(x),
    status: x.status as SweptEvent["status"],
    attempts: x.attempts,
    error,
  }));
}

/**
 * Records whether a watched quantity is above its threshold and answers true only on the
 * transition to "above" (once per crossing). Atomic: of two overlapping sweeps, one wins.
 */
export async function crossedAbove(db: Db, key: string, above: boolean): Promise<boolean> {
  const flag = (value: SQLWrapper) => sql<boolean>`(${value} ->> 'above')::boolean`;
  const rows = await db
    .insert(opsState)
    .values({ key, value: sql`jsonb_build_object('above', ${above}::boolean)` })
    .onConflictDoUpdate({
      target: opsState.key,
      set: { value: excluded(opsState.value), updatedAt: sql`now()` },
      setWhere: sql`${flag(opsState.value)} IS DISTINCT FROM ${flag(excluded(opsState.value))}`,
    })
    .returning({ above: flag(opsState.value) });
  return rows.length > 0 && rows[0]!.above === true;
}
