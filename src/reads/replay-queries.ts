/**
 * Replay jobs in Postgres (table replay_jobs): creation, reads for the admin API, and the
 * runner's chunk primitives (lock a job, read its next chunk, save progress).
 *
 * The runner calls lockJob / readChunk / saveChunk inside ONE transaction per chunk: the
 * job row stays locked (FOR UPDATE SKIP LOCKED, so an overlapping runner skips it rather
 * than advancing the same cursor) until the chunk is published and the cursor moved. A
 * crash in between rolls the cursor back, and the chunk is published again with the same
 * ids (src/jobs/replay-ids.ts).
 */
import { and, desc, eq, getTableColumns, inArray, lte, type SQL, sql } from "drizzle-orm";
import type { NeonQueryResultHKT } from "drizzle-orm/neon-serverless";
import type { PgDatabase } from "drizzle-orm/pg-core";
import { type HistoryRow, historyFields } from "../backends/history-writes";
import type * as schema from "../db/schema";
import { type EventStatus, events, type ReplayStatus, replayJobs, replayStatus } from "../db/schema";
import { anyOf, isoMicros, type RowOf } from "../db/sql";

/** Db or a transaction on it. */
export type Exec = PgDatabase<NeonQueryResultHKT, typeof schema>;

export interface NewReplay {
  id: string;
  from: string;
  to: string;
  types: string[] | null;
  sources: string[] | null;
  status: EventStatus | null;
  target: string | null;
  dryRun: boolean;
  rate: number;
  startAt: string;
}

export interface ReplayJob {
  id: string;
  status: ReplayStatus;
  from: string;
  to: string;
  types: string[] | null;
  sources: string[] | null;
  statusFilter: EventStatus | null;
  target: string | null;
  dryRun: boolean;
  rate: number;
  startAt: string;
  cursorTs: string | null;
  cursorId: string | null;
  scanned: number;
  republished: number;
  totalEstimate: number | null;
  errors: Array<{ at: string; error: string }>;
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** Range bounds and the cursor as µs text, so they go back into SQL without losing precision. */
const jobFields = {
  ...getTableColumns(replayJobs),
  fromTs: isoMicros(replayJobs.fromTs),
  toTs: isoMicros(replayJobs.toTs),
  cursorTs: isoMicros(replayJobs.cursorTs),
};

const iso = (v: Date | null): string | null => (v === null ? null : v.toISOString());

function job(r: RowOf<typeof jobFields>): ReplayJob {
  return {
    id: r.id,
    status: r.status,
    from: r.fromTs,
    to: r.toTs,
    types: r.types,
    sources: r.sources,
    statusFilter: r.statusFilter,
    target: r.target,
    dryRun: r.dryRun,
    rate: r.rate,
    startAt: r.startAt.toISOString(),
    cursorTs: r.cursorTs,
    cursorId: r.cursorId,
    scanned: r.scanned,
    republished: r.republished,
    totalEstimate: r.totalEstimate,
    errors: r.errors ?? [],
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
    startedAt: iso(r.startedAt),
    finishedAt: iso(r.finishedAt),
  };
}

/** Jobs that may still advance. */
const RUNNABLE = inArray(replayJobs.status, ["scheduled", "running"]);

export async function createReplay(db: Exec, n: NewReplay): Promise<ReplayJob> {
  const [row] = await db
    .insert(replayJobs)
    .values({
      id: n.id,
      status: "scheduled",
      // Bounds as given (µs text), not through a Date.
      fromTs: sql`${n.from}::timestamptz`,
      toTs: sql`${n.to}::timestamptz`,
      types: n.types,
      sources: n.sources,
      statusFilter: n.status,
      target: n.target,
      dryRun: n.dryRun,
      rate: n.rate,
      startAt: sql`${n.startAt}::timestamptz`,
    })
    .returning(jobFields);
  return job(row!);
}

export async function getReplay(db: Exec, id: string): Promise<ReplayJob | null> {
  const [row] = await db.select(jobFields).from(replayJobs).where(eq(replayJobs.id, id));
  return row ? job(row) : null;
}

export async function listReplays(db: Exec, limit: number, status?: ReplayStatus): Promise<ReplayJob[]> {
  const rows = await db
    .select(jobFields)
    .from(replayJobs)
    .where(status ? eq(replayJobs.status, status) : undefined)
    .orderBy(desc(replayJobs.createdAt), desc(replayJobs.id))
    .limit(limit);
  return rows.map(job);
}

/**
 * Cancels a scheduled or running job. Waits for the chunk in flight (its row lock), so once
 * this returns no further chunk of the job is published. Returns the job as it now is
 * (unchanged when it had already ended), or null when unknown.
 */
export async function cancelReplay(db: Exec, id: string): Promise<{ job: ReplayJob; changed: boolean } | null> {
  const [row] = await db
    .update(replayJobs)
    .set({ status: "cancelled", finishedAt: sql`now()`, updatedAt: sql`now()` })
    .where(and(eq(replayJobs.id, id), RUNNABLE))
    .returning(jobFields);
  if (row) return { job: job(row), changed: true };
  const j = await getReplay(db, id);
  return j ? { job: j, changed: false } : null;
}

/** Jobs due to advance now, oldest first. */
export async function runnableReplays(db: Exec, now: Date, limit: number): Promise<string[]> {
  const rows = await db
    .select({ id: replayJobs.id })
    .from(replayJobs)
    .where(and(RUNNABLE, lte(replayJobs.startAt, now)))
    .orderBy(replayJobs.createdAt, replayJobs.id)
    .limit(limit);
  return rows.map((x) => x.id);
}

/** Locks a runnable job for this chunk's transaction; null when it ended, is not due, or another runner holds it. */
export async function lockJob(tx: Exec, id: string, now: Date): Promise<ReplayJob | null> {
  const [row] = await tx
    .select(jobFields)
    .from(replayJobs)
    .where(and(eq(replayJobs.id, id), RUNNABLE, lte(replayJobs.startAt, now)))
    .for("update", { skipLocked: true });
  return row ? job(row) : null;
}

/**
 * The job's filter as SQL. Replay copies (meta.replay set) and what they derived are never
 * replayed again: a second replay of the same range replays the originals, it does not
 * multiply earlier copies, and a running job never meets its own output.
 */
function jobFilter(j: ReplayJob): SQL[] {
  return [
    sql`${events.timestamp} >= ${j.from}::timestamptz`,
    sql`${events.timestamp} < ${j.to}::timestamptz`,
    sql`NOT (${events.meta} ? 'replay')`,
    ...(j.types ? [oneOf(events.type, j.types)] : []),
    ...(j.sources ? [oneOf(events.source, j.sources)] : []),
    ...(j.statusFilter ? [eq(events.status, j.statusFilter)] : []),
  ];
}

/**
 * `col = v` for a single value: the (type|source, timestamp) index then hands the chunk out in
 * timestamp order and the scan stops after `limit` rows (with = ANY it is read whole and sorted).
 */
function oneOf(col: typeof events.type | typeof events.source, values: string[]): SQL {
  return values.length === 1 ? eq(col, values[0]!) : anyOf(col, values);
}

/** The next `limit` events after the job's cursor, in (timestamp, id) order. */
export async function readChunk(tx: Exec, j: ReplayJob, limit: number): Promise<HistoryRow[]> {
  const after =
    j.cursorTs !== null && j.cursorId !== null
      ? sql`(${events.timestamp}, ${events.id}) > (${j.cursorTs}::timestamptz, ${j.cursorId}::uuid)`
      : undefined;
  return tx
    .select(historyFields)
    .from(events)
    .where(and(...jobFilter(j), after))
    .orderBy(events.timestamp, events.id)
    .limit(limit);
}

/** How many events the job covers in all (computed once, when it starts). */
export async function countJob(tx: Exec, j: ReplayJob): Promise<number> {
  const [row] = await tx
    .select({ n: sql`count(*)::bigint`.mapWith(Number) })
    .from(events)
    .where(and(...jobFilter(j)));
  return row?.n ?? 0;
}

/** Moves the cursor past `last` (or finishes the job when `done`), adding to the counters. */
export async function saveChunk(
  tx: Exec,
  id: string,
  p: {
    last: { ts: string; id: string } | null;
    scanned: number;
    republished: number;
    done: boolean;
    totalEstimate?: number;
  },
): Promise<void> {
  // A field left undefined keeps its value.
  await tx
    .update(replayJobs)
    .set({
      status: p.done ? "done" : "running",
      cursorTs: p.last ? sql`${p.last.ts}::timestamptz` : undefined,
      cursorId: p.last?.id,
      scanned: sql`${replayJobs.scanned} + ${p.scanned}`,
      republished: sql`${replayJobs.republished} + ${p.republished}`,
      totalEstimate: p.totalEstimate,
      startedAt: sql`coalesce(${replayJobs.startedAt}, now())`,
      finishedAt: p.done ? sql`now()` : null,
      updatedAt: sql`now()`,
    })
    .where(eq(replayJobs.id, id));
}

/** Records an error; the job ends as 'failed' once it has `maxErrors` of them. */
export async function recordReplayError(db: Exec, id: string, error: string, maxErrors: number): Promise<void> {
  const last = () =>
    sql`jsonb_array_length(${replayJobs.errors}) + 1 >= ${maxErrors}
        AND ${replayJobs.status} IN ('scheduled', 'running')`;
  await db
    .update(replayJobs)
    .set({
      errors: sql`${replayJobs.errors}
        || jsonb_build_array(jsonb_build_object('at', now()::text, 'error', ${error}::text))`,
      status: sql`CASE WHEN ${last()} THEN 'failed'::${replayStatus} ELSE ${replayJobs.status} END`,
      finishedAt: sql`CASE WHEN ${last()} THEN now() ELSE ${replayJobs.finishedAt} END`,
      updatedAt: sql`now()`,
    })
    .where(eq(replayJobs.id, id));
}
