/**
 * Admin routes for replay jobs (behind adminAuth). The work itself is done by the replay
 * runner cron (src/jobs/replay-runner.ts); these routes only create, read and cancel jobs,
 * through src/operations/replay-jobs.ts.
 *
 *   POST /replays  {from, to?, types?, sources?, status?, target?, dry_run?, rate?, start_at?}  -> 202 {id, ...}
 *   GET  /replays/{id}          status, scanned, republished, total_estimate, progress, eta_s, errors
 *   GET  /replays?limit=&status= {replays: [...]}, newest first
 *   POST /replays/{id}/cancel   the job, now 'cancelled'; 409 when it had already ended
 */
import { createRoute, z } from "@hono/zod-openapi";
import { replayStatus } from "../db/schema";
import { adminAuth } from "../http/admin-auth";
import { onError } from "../http/error-handler";
import { createRouter, problemResponse } from "../http/router";
import {
  cancelReplayJob,
  NewReplayBody,
  replayJob,
  replayJobs,
  replayView,
  startReplayJob,
} from "../operations/replay-jobs";
import { authResponses, IdParam, jsonOk, security } from "./route-kit";

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
      const job = await startReplayJob(c, b, now);
      c.header("location", `/replays/${job.id}`);
      return c.json(replayView(job, now), 202);
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
      return c.json(replayView(await replayJob(c, id)), 200);
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
      const jobs = await replayJobs(c, q.limit, q.status);
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
      return c.json(replayView(await cancelReplayJob(c, id)), 200);
    },
  );

  return r;
}
