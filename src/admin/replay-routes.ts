/**
 * Admin routes for replay jobs (behind adminAuth). The work itself is done by the replay
 * runner cron (./replay-runner.ts); these routes only create, read and cancel jobs.
 *
 *   POST /replays  {from, to?, types?, sources?, status?, target?, dry_run?, rate?, start_at?}  -> 202 {id, ...}
 *   GET  /replays/{id}          status, scanned, republished, total_estimate, progress, eta_s, errors
 *   GET  /replays?limit=&status= {replays: [...]}, newest first
 *   POST /replays/{id}/cancel   the job, now 'cancelled'; 409 when it had already ended
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Config } from "../config";
import type { Db } from "../db/client";
import { eventStatus, replayStatus } from "../db/schema";
import { TRIGGER_PREFIX } from "../destinations/runtime";
import { adminAuth } from "../http/auth";
import { onError } from "../http/errors";
import { HTTPProblem, invalidFields, type ProblemError } from "../http/problem";
import { createRouter, problemResponse } from "../http/router";
import { UUID_RE, withDb } from "../operations/db-scope";
import { cancelReplay, createReplay, getReplay, listReplays, type ReplayJob } from "../reads/replay-queries";
import { defaultTriggers } from "../triggers";
import { authResponses, IdParam, jsonOk, security } from "./route-kit";

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

export function adminReplayRoutes() {
  const r = createRouter();
  r.onError(onError);

  r.openapi(
    createRoute({
      method: "post",
      path: "/replays",
      tags: ["admin"],
      security,
      middleware: [adminAuth] as const,
      summary: "Start (or schedule) a replay of history",
      description:
        "Replays events with from <= timestamp < to (to: now) matching types/sources/status, through every trigger or only `target`. " +
        "Copies get new ids, causation_id = the original id and meta.replay = the job id. `dry_run` only counts. " +
        "Earlier replay copies are never replayed again.",
      request: { body: { required: true, content: { "application/json": { schema: NewReplayBody } } } },
      responses: {
        202: jsonOk("The job (`id`, `status`: scheduled)"),
        422: problemResponse("Bad body"),
        ...authResponses,
      },
    }),
    async (c) => {
      const b = c.req.valid("json");
      const now = new Date();
      return withDb(c, "write", async (db, cfg) => {
        const job = await startReplay(db, cfg, b, now);
        c.header("location", `/replays/${job.id}`);
        return c.json(replayView(job, now), 202);
      });
    },
  );

  r.openapi(
    createRoute({
      method: "get",
      path: "/replays/{id}",
      tags: ["admin"],
      security,
      middleware: [adminAuth] as const,
      summary: "One replay job's progress",
      request: { params: IdParam },
      responses: { 200: jsonOk("The job"), 404: problemResponse("Unknown job"), ...authResponses },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const job = UUID_RE.test(id) ? await withDb(c, "write", (db) => getReplay(db, id)) : null;
      if (!job) throw new HTTPProblem(404, "Replay not found", `No replay job with id ${id}.`);
      return c.json(replayView(job), 200);
    },
  );

  r.openapi(
    createRoute({
      method: "get",
      path: "/replays",
      tags: ["admin"],
      security,
      middleware: [adminAuth] as const,
      summary: "Recent replay jobs, newest first",
      request: {
        query: z.object({
          limit: z.coerce.number().int().min(1).max(500).default(50),
          status: z.enum(replayStatus.enumValues).optional(),
        }),
      },
      responses: { 200: jsonOk("`{replays: [...]}`"), 422: problemResponse("Bad query"), ...authResponses },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const jobs = await withDb(c, "write", (db) => listReplays(db, q.limit, q.status));
      const now = new Date();
      return c.json({ replays: jobs.map((j) => replayView(j, now)) }, 200);
    },
  );

  r.openapi(
    createRoute({
      method: "post",
      path: "/replays/{id}/cancel",
      tags: ["admin"],
      security,
      middleware: [adminAuth] as const,
      summary: "Cancel a scheduled or running replay (no chunk is published after this answers)",
      request: { params: IdParam },
      responses: {
        200: jsonOk("The job, now `cancelled`"),
        404: problemResponse("Unknown job"),
        409: problemResponse("Already ended"),
        ...authResponses,
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const r2 = UUID_RE.test(id) ? await withDb(c, "write", (db) => cancelReplay(db, id)) : null;
      if (!r2) throw new HTTPProblem(404, "Replay not found", `No replay job with id ${id}.`);
      if (!r2.changed) {
        throw new HTTPProblem(
          409,
          "Replay already ended",
          `Replay ${id} is ${r2.job.status}; only scheduled or running jobs can be cancelled.`,
          {
            replay_status: r2.job.status,
          },
        );
      }
      return c.json(replayView(r2.job), 200);
    },
  );

  return r;
}
