/**
 * Replay runner: advances replay jobs a chunk at a time (cron "*\/2 * * * *").
 *
 * One chunk = one Postgres transaction: lock the job row (SKIP LOCKED: an overlapping run
 * skips it), read the next REPLAY_CHUNK_SIZE events after the keyset cursor (timestamp, id),
 * append copies to the replay lane, move the cursor, commit. Interrupted anywhere, the
 * transaction rolls back and the chunk is redone with the same copy ids (./replay-ids.ts):
 * at-least-once into a stream lane (Redis), exactly once into a Postgres lane (the copies
 * are written in the same transaction), exactly once in history either way.
 *
 * Copies get a new id, causation_id = the original's id, meta.replay = the job id, and
 * meta.replay_target when the job targets one trigger or destination. They keep the
 * original's type, source, timestamp, fields and trace, and are checked against the event
 * registry as ingest checks input: an original whose type is no longer registered, or whose
 * fields no longer pass, fails its chunk with an error naming the event and the problem
 * (recorded in the job; after MAX_JOB_ERRORS the job fails) - nothing of that chunk is
 * republished, so narrow the job's range or types to step past it.
 *
 * Throttling: a job republishes at most rate x REPLAY_INTERVAL_S events per invocation (so
 * it averages its rate across invocations), and not at all while the replay lane still
 * holds that much unhandled work - the lane is drained by its own consumer group at its own
 * pace, and a replay never queues in front of live traffic.
 */

import type { HistoryRow } from "../backends/history-writes";
import type { ReplayLane } from "../backends/types";
import type { Config } from "../config";
import type { Db } from "../db/client";
import { checkEnvelope } from "../events/build";
import type { EventEnvelope, EventMeta } from "../events/envelope";
import { registry } from "../events/event-types";
import type { EventRegistry } from "../events/type-registry";
import type { Logger } from "../obs/log";
import { inc } from "../obs/metrics";
import {
  countJob,
  lockJob,
  type ReplayJob,
  readChunk,
  recordReplayError,
  runnableReplays,
  saveChunk,
} from "../reads/replay-queries";
import { replayId } from "./replay-ids";

export interface ReplayRunOptions {
  db: Db;
  /** Where copies go: a stream (Redis backend) or rows of the replay lane (Postgres backend). */
  lane: ReplayLane;
  config: Config;
  log?: Logger;
  now?: () => Date;
  /** The event types copies must be (default: the registry ingest validates against). */
  eventTypes?: EventRegistry;
  /** Wall-clock budget of this run, ms (default REPLAY_TIME_BUDGET_MS). */
  timeBudgetMs?: number;
  /** Stop after scanning this many events in this run (tests use it to interrupt a job mid-way). */
  maxEvents?: number;
  chunkSize?: number;
  /**
   * Crash injection (tests only): throw after the n-th chunk of this run was appended to the
   * lane and before its transaction commits - the interruption the design must survive.
   */
  crashAfterPublish?: number;
}

export class ReplayCrash extends Error {
  constructor() {
    super("crash injected after publish, before the cursor moved");
    this.name = "ReplayCrash";
  }
}

export interface ReplayRunReport {
  jobs: Array<{
    id: string;
    scanned: number;
    republished: number;
    status: "advanced" | "done" | "skipped" | "held-back" | "error";
  }>;
  scanned: number;
  republished: number;
  stoppedBy: "idle" | "budget" | "max-events";
}

/** A job gives up after this many failed chunks (each recorded in its `errors`). */
export const MAX_JOB_ERRORS = 10;

export function replayCopy(job: Pick<ReplayJob, "id" | "target">, row: HistoryRow, id: string): EventEnvelope {
  const meta: EventMeta = {
    ...(row.meta as EventMeta),
    causation_id: row.id,
    replay: job.id,
    ...(job.target ? { replay_target: job.target } : {}),
  };
  return {
    ...row.payload,
    id,
    type: row.type,
    source: row.source,
    timestamp: new Date(row.ts).toISOString(),
    meta,
  };
}

type Chunk = { stop: boolean; heldBack?: boolean; scanned: number; republished: number; done: boolean };

export async function advanceReplays(o: ReplayRunOptions): Promise<ReplayRunReport> {
  const cfg = o.config;
  const now = o.now ?? (() => new Date());
  const started = Date.now();
  const budget = o.timeBudgetMs ?? cfg.REPLAY_TIME_BUDGET_MS;
  const chunkSize = o.chunkSize ?? cfg.REPLAY_CHUNK_SIZE;
  const types = o.eventTypes ?? registry;
  const report: ReplayRunReport = { jobs: [], scanned: 0, republished: 0, stoppedBy: "idle" };
  const outOfTime = () => Date.now() - started >= budget;
  let chunksPublished = 0;
  const outOfEvents = () => o.maxEvents !== undefined && report.scanned >= o.maxEvents;

  for (const id of await runnableReplays(o.db, now(), 20)) {
    if (outOfTime()) {
      report.stoppedBy = "budget";
      break;
    }
    if (outOfEvents()) {
      report.stoppedBy = "max-events";
      break;
    }
    const entry: ReplayRunReport["jobs"][number] = { id, scanned: 0, republished: 0, status: "skipped" };
    report.jobs.push(entry);
    let quota = Number.POSITIVE_INFINITY;
    try {
      for (;;) {
        if (outOfTime() || outOfEvents() || entry.scanned >= quota) break;
        const r = await o.db.transaction(async (tx): Promise<Chunk> => {
          const job = await lockJob(tx, id, now());
          if (!job) return { stop: true, scanned: 0, republished: 0, done: false };
          if (quota === Number.POSITIVE_INFINITY) {
            quota = job.rate * cfg.REPLAY_INTERVAL_S;
            // Back-pressure: the lane still holds a full round of unhandled work.
            if (!job.dryRun && (await o.lane.backlog(tx)) >= quota) {
              return { stop: true, heldBack: true, scanned: 0, republished: 0, done: false };
            }
          }
          const total = job.totalEstimate === null ? await countJob(tx, job) : undefined;
          let n = Math.min(chunkSize, quota - entry.scanned);
          if (o.maxEvents !== undefined) n = Math.min(n, o.maxEvents - report.scanned);
          const rows = await readChunk(tx, job, n);
          let republished = 0;
          if (!job.dryRun && rows.length) {
            const copies = await Promise.all(
              rows.map(async (row) => {
                // A copy of a verified delivery stays one: ingress-only types pass here.
                const checked = checkEnvelope(replayCopy(job, row, await replayId(job.id, row.id)), types, {
                  ingressTypes: true,
                });
                if (!checked.ok)
                  throw new Error(`event ${row.id} (${row.type}) cannot be replayed: ${checked.problem}`);
                return checked.event;
              }),
            );
            await o.lane.append(copies, tx);
            republished = copies.length;
            if (o.crashAfterPublish !== undefined && ++chunksPublished === o.crashAfterPublish) throw new ReplayCrash();
          }
          const last = rows[rows.length - 1];
          const done = rows.length < n;
          await saveChunk(tx, id, {
            last: last ? { ts: last.ts, id: last.id } : null,
            scanned: rows.length,
            republished,
            done,
            ...(total !== undefined ? { totalEstimate: total } : {}),
          });
          return { stop: done, scanned: rows.length, republished, done };
        });
        // Counted once the chunk committed: a rolled-back chunk republished nothing.
        inc("reflex_events_replayed_total", undefined, r.republished);
        if (r.heldBack) entry.status = "held-back";
        if (r.scanned > 0 || r.done) {
          entry.scanned += r.scanned;
          entry.republished += r.republished;
          report.scanned += r.scanned;
          report.republished += r.republished;
          entry.status = r.done ? "done" : "advanced";
        }
        if (r.stop) break;
      }
    } catch (e) {
      if (e instanceof ReplayCrash) throw e; // a "dead" invocation records nothing
      entry.status = "error";
      const msg = e instanceof Error ? e.message : String(e);
      o.log?.error("replay chunk failed", { replay_id: id, error: msg });
      // The chunk's transaction rolled back; the next run redoes it. A job that keeps failing ends as 'failed'.
      await recordReplayError(o.db, id, msg, MAX_JOB_ERRORS).catch(() => {});
    }
  }
  if (report.stoppedBy === "idle") {
    if (outOfEvents()) report.stoppedBy = "max-events";
    else if (outOfTime()) report.stoppedBy = "budget";
  }
  return report;
}
