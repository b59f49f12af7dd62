/**
 * Durable step records (./steps.ts keeps the rules; this is the SQL).
 *
 *  - loadCompleted: the completed steps of a batch's events, ONE statement per batch.
 *  - recordSteps: many step outcomes in ONE statement (the journal groups the records that
 *    arrive while a write is in flight). A completed row is never overwritten: a record that
 *    meets one (another consumer ran the step first) is not written, and the caller reads the
 *    winner back with completedOf - a second statement only in that race. A record whose
 *    event's scope fence is below a newer holder's (src/backends/fences.ts) is not written either.
 */
import { and, asc, eq, getTableColumns, inArray, sql } from "drizzle-orm";
import { type Fence, type FencesByEvent, fenceClear } from "../backends/fences";
import type { Db } from "../db/client";
import { type StepRow, stepStatus, steps } from "../db/schema";
import { assign, columnNames, excluded, selection } from "../db/sql";

export type StepRecord = typeof steps.$inferInsert;

/** Completed steps of `eventIds`, every trigger. */
export async function loadCompleted(db: Db, eventIds: string[]): Promise<StepRow[]> {
  if (eventIds.length === 0) return [];
  return db
    .select()
    .from(steps)
    .where(and(inArray(steps.eventId, eventIds), eq(steps.status, "completed")));
}

const stepRow = selection(getTableColumns(steps));
const c = steps;

/**
 * Inserts the records; a failed row is replaced, a completed one left as it is, and records
 * of a fenced-off holder are left out. Returns the rows written (a record missing from them
 * met a completed row, or was fenced off). Callers pass each key once.
 */
export async function recordSteps(db: Db, records: StepRecord[], fences?: FencesByEvent): Promise<StepRow[]> {
  if (records.length === 0) return [];
  const mine = new Map<string, readonly Fence[]>();
  for (const r of records) {
    const f = fences?.get(r.eventId);
    if (f) mine.set(r.eventId, f);
  }
  const guard = fenceClear(sql`r."eventId"`, mine);
  const rows = JSON.stringify(records.map((r) => ({ ...r, derived: r.derived ?? [] })));
  const res = await db.execute(sql`
    INSERT INTO ${c} (${columnNames(c.eventId, c.trigger, c.name, c.status, c.result, c.error, c.derived, c.usage, c.attempt, c.startedAt, c.durationMs)})
    SELECT r."eventId", r.trigger, r.name, r.status, r.result, r.error, r.derived, r.usage, r.attempt, r."startedAt", r."durationMs"
      FROM jsonb_to_recordset(${rows}::jsonb) AS r("eventId" uuid, trigger text, name text, status ${stepStatus},
        result jsonb, error text, derived jsonb, usage jsonb, attempt int, "startedAt" timestamptz, "durationMs" int)
     ${guard ? sql`WHERE ${guard}` : sql``}
    ON CONFLICT (${columnNames(c.eventId, c.trigger, c.name)}) DO UPDATE SET ${assign(c, {
      status: excluded(c.status),
      result: excluded(c.result),
      error: excluded(c.error),
      derived: excluded(c.derived),
      usage: excluded(c.usage),
      attempt: excluded(c.attempt),
      startedAt: excluded(c.startedAt),
      durationMs: excluded(c.durationMs),
    })}
    WHERE ${c.status} = 'failed'
    RETURNING ${stepRow.list}`);
  return res.rows.map((x) => stepRow.read(x));
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
