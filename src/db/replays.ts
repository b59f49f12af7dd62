/**
 * Replay jobs in Postgres (table replay_jobs): creation, reads for the admin API, and the
 * runner's chunk primitives (lock a job, read its next chunk, save progress).
 *
 * The runner calls lockJob / readChunk / saveChunk inside ONE transaction per chunk: the
 * job row stays locked (FOR UPDATE SKIP LOCKED, so an overlapping runner skips it rather
 * than advancing the same cursor) until the chunk is published and the cursor moved. A
 * crash in between rolls the cursor back, and the chunk is published again with the same
 * ids (src/ops/replay-ids.ts).
 */
import { sql } from "drizzle-orm";
import { isoMicros } from "./admin-queries";
import type { Db } from "./client";
import type { HistoryRow } from "./history";
import type { EventStatus, ReplayStatus } from "./schema";

/** Db or a transaction on it: both execute(). */
export type Exec = Pick<Db, "execute">;

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

type JobRow = {
  id: string;
  status: ReplayStatus;
  from_ts: string;
  to_ts: string;
  types: string[] | null;
  sources: string[] | null;
  status_filter: EventStatus | null;
  target: string | null;
  dry_run: boolean;
  rate: number;
  start_at: string | Date;
  cursor_ts: string | null;
  cursor_id: string | null;
  scanned: number | string;
  republished: number | string;
  total_estimate: number | string | null;
  errors: ReplayJob["errors"];
  created_at: string | Date;
  updated_at: string | Date;
  started_at: string | Date | null;
  finished_at: string | Date | null;
};

const iso = (v: string | Date | null): string | null => (v === null ? null : new Date(v).toISOString());

/** Range bounds and the cursor as µs text, so they go back into SQL without losing precision. */
const JOB_COLUMNS = sql`id, status, ${isoMicros(sql`from_ts`)} AS from_ts, ${isoMicros(sql`to_ts`)} AS to_ts, types, sources,
  status_filter, target, dry_run, rate, start_at, ${isoMicros(sql`cursor_ts`)} AS cursor_ts, cursor_id, scanned, republished,
  total_estimate, errors, created_at, updated_at, started_at, finished_at`;

function job(r: JobRow): ReplayJob {
  return {
    id: r.id,
    status: r.status,
    from: r.from_ts,
    to: r.to_ts,
    types: r.types,
    sources: r.sources,
    statusFilter: r.status_filter,
    target: r.target,
    dryRun: r.dry_run,
    rate: Number(r.rate),
    startAt: iso(r.start_at)!,
    cursorTs: r.cursor_ts,
    cursorId: r.cursor_id,
    scanned: Number(r.scanned),
    republished: Number(r.republished),
    totalEstimate: r.total_estimate === null ? null : Number(r.total_estimate),
    errors: r.errors ?? [],
    createdAt: iso(r.created_at)!,
    updatedAt: iso(r.updated_at)!,
    startedAt: iso(r.started_at),
    finishedAt: iso(r.finished_at),
  };
}

const textArray = (a: string[] | null) => (a === null ? sql`NULL::text[]` : sql`${sql.param(a)}::text[]`);

export async function createReplay(db: Exec, n: NewReplay): Promise<ReplayJob> {
  const r = await db.execute<JobRow>(sql`
    INSERT INTO replay_jobs (id, status, from_ts, to_ts, types, sources, status_filter, target, dry_run, rate, start_at)
    VALUES (${n.id}::uuid, 'scheduled', ${n.from}::timestamptz, ${n.to}::timestamptz, ${textArray(n.types)}, ${textArray(n.sources)},
            ${n.status}::event_status, ${n.target}, ${n.dryRun}, ${n.rate}, ${n.startAt}::timestamptz)
    RETURNING ${JOB_COLUMNS}`);
  return job(r.rows[0]!);
}

export async function getReplay(db: Exec, id: string): Promise<ReplayJob | null> {
  const r = await db.execute<JobRow>(sql`SELECT ${JOB_COLUMNS} FROM replay_jobs WHERE id = ${id}::uuid`);
  return r.rows[0] ? job(r.rows[0]) : null;
}

export async function listReplays(db: Exec, limit: number, status?: ReplayStatus): Promise<ReplayJob[]> {
  const r = await db.execute<JobRow>(sql`
    SELECT ${JOB_COLUMNS} FROM replay_jobs ${status ? sql`WHERE status = ${status}::replay_status` : sql``}
     ORDER BY created_at DESC, id DESC LIMIT ${limit}`);
  return r.rows.map(job);
}

/**
 * Cancels a scheduled or running job. Waits for the chunk in flight (its row lock), so once
 * this returns no further chunk of the job is published. Returns the job as it now is
 * (unchanged when it had already ended), or null when unknown.
 */
export async function cancelReplay(db: Exec, id: string): Promise<{ job: ReplayJob; changed: boolean } | null> {
  const r = await db.execute<JobRow>(sql`
    UPDATE replay_jobs SET status = 'cancelled', finished_at = now(), updated_at = now()
     WHERE id = ${id}::uuid AND status IN ('scheduled', 'running') RETURNING ${JOB_COLUMNS}`);
  if (r.rows[0]) return { job: job(r.rows[0]), changed: true };
  const j = await getReplay(db, id);
  return j ? { job: j, changed: false } : null;
}

/** Jobs due to advance now, oldest first. */
export async function runnableReplays(db: Exec, now: Date, limit: number): Promise<string[]> {
  const r = await db.execute<{ id: string }>(sql`
    SELECT id FROM replay_jobs WHERE status IN ('scheduled', 'running') AND start_at <= ${now.toISOString()}::timestamptz
     ORDER BY created_at, id LIMIT ${limit}`);
  return r.rows.map((x) => x.id);
}

/** Locks a runnable job for this chunk's transaction; null when it ended, is not due, or another runner holds it. */
export async function lockJob(tx: Exec, id: string, now: Date): Promise<ReplayJob | null> {
  const r = await tx.execute<JobRow>(sql`
    SELECT ${JOB_COLUMNS} FROM replay_jobs
     WHERE id = ${id}::uuid AND status IN ('scheduled', 'running') AND start_at <= ${now.toISOString()}::timestamptz
     FOR UPDATE SKIP LOCKED`);
  return r.rows[0] ? job(r.rows[0]) : null;
}

/**
 * The job's filter as SQL. Replay copies (meta.replay set) and what they derived are never
 * replayed again: a second replay of the same range replays the originals, it does not
 * multiply earlier copies, and a running job never meets its own output.
 */
function jobFilter(j: ReplayJob) {
  return sql`"timestamp" >= ${j.from}::timestamptz AND "timestamp" < ${j.to}::timestamptz
    AND NOT (meta ? 'replay')
    ${j.types ? sql`AND type = ANY(${sql.param(j.types)}::text[])` : sql``}
    ${j.sources ? sql`AND source = ANY(${sql.param(j.sources)}::text[])` : sql``}
    ${j.statusFilter ? sql`AND status = ${j.statusFilter}::event_status` : sql``}`;
}

/** The next `limit` events after the job's cursor, in (timestamp, id) order. */
export async function readChunk(tx: Exec, j: ReplayJob, limit: number): Promise<HistoryRow[]> {
  const after =
    j.cursorTs !== null && j.cursorId !== null
      ? sql`AND ("timestamp", id) > (${j.cursorTs}::timestamptz, ${j.cursorId}::uuid)`
      : sql``;
  const r = await tx.execute<HistoryRow>(sql`
    SELECT id, type, source, ${isoMicros(sql`"timestamp"`)} AS ts, payload, meta FROM events
     WHERE ${jobFilter(j)} ${after}
     ORDER BY "timestamp", id LIMIT ${limit}`);
  return r.rows;
}

/** How many events the job covers in all (computed once, when it starts). */
export async function countJob(tx: Exec, j: ReplayJob): Promise<number> {
  const r = await tx.execute<{ n: number }>(sql`SELECT count(*)::bigint AS n FROM events WHERE ${jobFilter(j)}`);
  return Number(r.rows[0]?.n ?? 0);
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
  await tx.execute(sql`
    UPDATE replay_jobs SET
      status = ${p.done ? "done" : "running"}::replay_status,
      cursor_ts = ${p.last ? sql`${p.last.ts}::timestamptz` : sql`cursor_ts`},
      cursor_id = ${p.last ? sql`${p.last.id}::uuid` : sql`cursor_id`},
      scanned = scanned + ${p.scanned}, republished = republished + ${p.republished},
      total_estimate = ${p.totalEstimate !== undefined ? sql`${p.totalEstimate}::bigint` : sql`total_estimate`},
      started_at = coalesce(started_at, now()),
      finished_at = ${p.done ? sql`now()` : sql`NULL`},
      updated_at = now()
     WHERE id = ${id}::uuid`);
}

/** Records an error; the job ends as 'failed' once it has `maxErrors` of them. */
export async function recordReplayError(db: Exec, id: string, error: string, maxErrors: number): Promise<void> {
  await db.execute(sql`
    UPDATE replay_jobs SET
      errors = errors || jsonb_build_array(jsonb_build_object('at', now()::text, 'error', ${error}::text)),
      status = CASE WHEN jsonb_array_length(errors) + 1 >= ${maxErrors} AND status IN ('scheduled', 'running')
                    THEN 'failed'::replay_status ELSE status END,
      finished_at = CASE WHEN jsonb_array_length(errors) + 1 >= ${maxErrors} AND status IN ('scheduled', 'running')
                         THEN now() ELSE finished_at END,
      updated_at = now()
     WHERE id = ${id}::uuid`);
}
