/**
 * The operations crons as the worker runs them (src/index.ts routes the cron strings here):
 *   "*\/2 * * * *"  replay runner: advance jobs, then drain the replay lane with its own group
 *                  and the redrive lane (events a DLQ retry-all sent back)
 *   "*\/5 * * * *"  DLQ sweeper
 * Each opens its own connections for the invocation, flushes the metrics through them and
 * closes them in waitUntil.
 */

import { flushMetrics, openBackend } from "../backends";
import { type Env, loadConfig } from "../config";
import { consumeInWorker } from "../consume/entry";
import { openDb } from "../db/client";
import { createLogger } from "../obs/log";
import { countedAs } from "../obs/usage";
import { sweep } from "./dlq-sweeper";
import { advanceReplays } from "./replay-runner";

export async function runReplayRunner(env: Env, ctx: ExecutionContext) {
  const cfg = loadConfig(env);
  const log = createLogger(cfg.LOG_LEVEL, { run: "replay-runner" });
  const started = Date.now();
  const db = openDb(cfg);
  const lane = openBackend(cfg, db).replayLane();
  try {
    // Half the budget to publish, the rest (at least that) to drain what was published.
    const report = await countedAs("replay", () =>
      advanceReplays({ db: db.db, lane, config: cfg, log, timeBudgetMs: cfg.REPLAY_TIME_BUDGET_MS / 2 }),
    );
    log.info("replay runner", { ...report, jobs: report.jobs.length });
  } finally {
    // Closed before the drain opens its own: one pool at a time (DB_POOL_MAX per invocation).
    await db.close();
  }
  const left = Math.max(1_000, cfg.REPLAY_TIME_BUDGET_MS - (Date.now() - started));
  // The replay lane's copies and the redrive lane's events (a DLQ retry-all), behind live traffic.
  return consumeInWorker(env, ctx, "replay-lane", { lanes: [lane.name], due: "redrive", timeBudgetMs: left });
}

export function runDlqSweeper(env: Env, ctx: ExecutionContext) {
  return countedAs("sweep", () => sweepInWorker(env, ctx));
}

async function sweepInWorker(env: Env, ctx: ExecutionContext) {
  const cfg = loadConfig(env);
  const log = createLogger(cfg.LOG_LEVEL, { run: "dlq-sweeper" });
  const db = openDb(cfg);
  try {
    const backend = openBackend(cfg, db);
    const report = await sweep({ db: db.db, store: backend.store, lanes: backend.streams, config: cfg, log });
    log.info("dlq sweeper", { ...report });
    // A failed step fails the invocation, so it shows in the cron's history.
    if (report.errors.length) throw new Error(`DLQ sweeper: ${report.errors.join("; ")}`);
    return report;
  } finally {
    ctx.waitUntil(flushMetrics(cfg, db).then(() => db.close()));
  }
}
