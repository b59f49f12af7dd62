/**
 * Replay jobs as an operator starts, reads and cancels them, from the admin API
 * (src/admin/replay-routes.ts) and the dashboard alike. The runner that does the work is
 * src/jobs/replay-runner.ts; the statements are src/reads/replay-queries.ts.
 */
import { z } from "@hono/zod-openapi";
import type { Config } from "../config";
import type { Db } from "../db/client";
import { eventStatus, type ReplayStatus } from "../db/schema";
import { TRIGGER_PREFIX } from "../destinations/runtime";
import { HTTPProblem, invalidFields, type ProblemError } from "../http/problem";
import { getEvent } from "../reads/event-queries";
import { cancelReplay, createReplay, getReplay, listReplays, type ReplayJob } from "../reads/replay-queries";
import { defaultTriggers } from "../triggers";
import { byId, type RequestScope, withDb } from "./db-scope";

const when = z.iso.datetime({ offset: true, message: "must be an ISO 8601 date-time with a time zone" });
const names = (max: number) => z.array(z.string().min(1).max(max)).min(1).max(100);

/** A new job as the API (and the dashboard's form) takes it. */
export const NewReplayBody = z
  .object({
    from: when,
    to: when.optional(),
    types: names(128).optional(),
    sources: names(256).optional(),
    status: z.enum(eventStatus.enumValues).optional(),
    target: z.string().min(1).max(128).optional(),
    dry_run: z.boolean().optional(),
    rate: z.number().int().min(1).optional(),
    start_at: when.optional(),
  })
  .strict();

/**
 * What a replay may target: the worker's code triggers by name, its destinations by name or
 * by their trigger's name ("destination <name>"), as the consumers match meta.replay_target.
 */
export function replayTargets(cfg: Config): Set<string> {
  return new Set([
    ...defaultTriggers.list().map((t) => t.name),
    ...cfg.DESTINATIONS.flatMap((d) => [d.name, TRIGGER_PREFIX + d.name]),
  ]);
}

/**
 * Creates a job from a checked body (`to` defaults to `now`, `rate` to REPLAY_DEFAULT_RATE).
 * Throws an invalid-fields problem when the range is empty, the rate above REPLAY_MAX_RATE or
 * the target names no trigger or destination of this deployment (a replay that runs nothing).
 */
export async function startReplay(
  db: Db,
  cfg: Config,
  b: z.output<typeof NewReplayBody>,
  now = new Date(),
): Promise<ReplayJob> {
  const to = b.to ?? now.toISOString();
  const errors: ProblemError[] = [];
  if (Date.parse(to) <= Date.parse(b.from)) errors.push({ path: "/to", message: "must be after `from`" });
  const rate = b.rate ?? Math.min(cfg.REPLAY_DEFAULT_RATE, cfg.REPLAY_MAX_RATE);
  if (rate > cfg.REPLAY_MAX_RATE)
    errors.push({ path: "/rate", message: `at most ${cfg.REPLAY_MAX_RATE} events per second` });
  if (b.target !== undefined && !replayTargets(cfg).has(b.target))
    errors.push({ path: "/target", message: "names no trigger or destination of this deployment" });
  if (errors.length) throw invalidFields(errors);
  return createReplay(db, {
    id: crypto.randomUUID(),
    from: new Date(b.from).toISOString(),
    to: new Date(to).toISOString(),
    types: b.types ?? null,
    sources: b.sources ?? null,
    status: b.status ?? null,
    target: b.target ?? null,
    dryRun: b.dry_run ?? false,
    rate,
    startAt: b.start_at ? new Date(b.start_at).toISOString() : now.toISOString(),
  });
}

/** The job as the API shows it: counters, progress, ETA. */
export function replayView(j: ReplayJob, now = new Date()) {
  const ended = j.status === "done" || j.status === "cancelled" || j.status === "failed";
  let eta: number | null = null;
  if (ended) eta = 0;
  else if (j.totalEstimate !== null || j.startedAt === null) {
    const remaining = j.totalEstimate === null ? null : Math.max(0, j.totalEstimate - j.scanned);
    const elapsed = j.startedAt ? (now.getTime() - Date.parse(j.startedAt)) / 1000 : 0;
    const observed = elapsed > 0 && j.scanned > 0 ? j.scanned / elapsed : 0;
    const speed = observed > 0 ? Math.min(observed, j.rate) : j.rate;
    const wait = Math.max(0, (Date.parse(j.startAt) - now.getTime()) / 1000);
    eta = remaining === null ? null : Math.ceil(wait + remaining / speed);
  }
  return {
    id: j.id,
    status: j.status,
    filter: { from: j.from, to: j.to, types: j.types, sources: j.sources, status: j.statusFilter },
    target: j.target,
    dry_run: j.dryRun,
    rate: j.rate,
    start_at: j.startAt,
    scanned: j.scanned,
    republished: j.republished,
    total_estimate: j.totalEstimate,
    progress: j.status === "done" ? 1 : j.totalEstimate ? Math.min(1, j.scanned / j.totalEstimate) : 0,
    eta_s: eta,
    errors: j.errors,
    created_at: j.createdAt,
    updated_at: j.updatedAt,
    started_at: j.startedAt,
    finished_at: j.finishedAt,
  };
}

export const replayNotFound = (id: string) => new HTTPProblem(404, "Replay not found", `No replay job with id ${id}.`);

/** A job started (or scheduled) from a checked body; see startReplay. */
export function startReplayJob(c: RequestScope, b: z.output<typeof NewReplayBody>, now = new Date()) {
  return withDb(c, "write", (db, cfg) => startReplay(db, cfg, b, now));
}

/** One job, or the replay-not-found problem. */
export function replayJob(c: RequestScope, id: string) {
  return byId(c, "write", id, (db) => getReplay(db, id), replayNotFound);
}

/** Recent jobs, newest first, optionally only those in `status`. */
export function replayJobs(c: RequestScope, limit: number, status?: ReplayStatus) {
  return withDb(c, "write", (db) => listReplays(db, limit, status));
}

/**
 * A scheduled or running job cancelled (no chunk is published after this returns); the
 * replay-not-found problem, or a 409 naming its status when it had already ended.
 */
export async function cancelReplayJob(c: RequestScope, id: string): Promise<ReplayJob> {
  const out = await byId(c, "write", id, (db) => cancelReplay(db, id), replayNotFound);
  if (!out.changed) {
    throw new HTTPProblem(
      409,
      "Replay already ended",
      `Replay ${id} is ${out.job.status}; only scheduled or running jobs can be cancelled.`,
      { replay_status: out.job.status },
    );
  }
  return out.job;
}

/**
 * "Replay this event": a job over its type, source and millisecond (envelope timestamps
 * have ms precision). A replay copy is refused (409): copies are not replayed again.
 */
export function replayOneEvent(c: RequestScope, id: string): Promise<ReplayJob> {
  const missing = (x: string) => new HTTPProblem(404, "Event not found", `No event with id ${x}.`);
  return byId(
    c,
    "write",
    id,
    async (db, cfg) => {
      const e = await getEvent(db, id);
      if (!e) return null;
      if (typeof e.meta.replay === "string")
        throw new HTTPProblem(409, "A replay copy", "Replay copies are not replayed again: replay the original.");
      const from = Math.floor(Date.parse(e.timestamp));
      return startReplay(db, cfg, {
        from: new Date(from).toISOString(),
        to: new Date(from + 1).toISOString(),
        types: [e.type],
        sources: [e.source],
      });
    },
    missing,
  );
}
