/**
 * Durable step records (src/triggers/steps.ts keeps the rules; this is the SQL).
 *
 *  - loadCompleted: the completed steps of a batch's events, ONE statement per batch.
 *  - recordSteps: many step outcomes in ONE statement (the journal groups the records that
 *    arrive while a write is in flight). A completed row is never overwritten: a record that
 *    meets one (another consumer ran the step first) is not written, and the caller reads the
 *    winner back with completedOf - a second statement only in that race.
 */
import { and, asc, eq, inArray, sql } from "drizzle-orm";
import type { Db } from "./client";
import { type StepRow, steps } from "./schema";
import { excluded } from "./sql";

export type StepRecord = typeof steps.$inferInsert;

/** Completed steps of `eventIds`, every trigger. */
export async function loadCompleted(db: Db, eventIds: string[]): Promise<StepRow[]> {
  if (eventIds.length === 0) return [];
  return db
    .select()
    .from(steps)
    .where(and(inArray(steps.eventId, eventIds), eq(steps.status, "completed")));
}

/**
 * Inserts the records; a failed row is replaced, a completed one left as it is. Returns the
 * rows written (a record missing from them met a completed row). Callers pass each key once.
 */
export async function recordSteps(db: Db, records: StepRecord[]): Promise<StepRow[]> {
  if (records.length === 0) return [];
  return db
    .insert(steps)
    .values(records)
    .onConflictDoUpdate({
      target: [steps.eventId, steps.trigger, steps.name],
      set: {
        status: excluded(steps.status),
        result: excluded(steps.result),
        error: excluded(steps.error),
        derived: excluded(steps.derived),
        usage: excluded(steps.usage),
        attempt: excluded(steps.attempt),
        startedAt: excluded(steps.startedAt),
        durationMs: excluded(steps.durationMs),
      },
      setWhere: sql`${steps.status} = 'failed'`,
    })
    .returning();
}

/** The completed rows among `keys` (the winners of a record that met one). */
export async function completedOf(
  db: Db,
  keys: Array<Pick<StepRecord, "eventId" | "trigger" | "name">>,
): Promise<StepRow[]> {
  if (keys.length === 0) return [];
  const rows = await loadCompleted(db, [...new Set(keys.map((k) => k.eventId))]);
  const wanted = new Set(keys.map((k) => `${k.eventId}\u0000${k.trigger}\u0000${k.name}`));
  return rows.filter((r) => wanted.has(`${r.eventId}\u0000${r.trigger}\u0000${r.name}`));
}

/** Every step of one event, in the order they started (the admin event detail). */
export async function stepsOfEvent(db: Db, eventId: string): Promise<StepRow[]> {
  return db.select().from(steps).where(eq(steps.eventId, eventId)).orderBy(asc(steps.startedAt), asc(steps.name));
}
