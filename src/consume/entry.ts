/**
 * The consumer as the worker runs it (src/index.ts): from `scheduled` (cron) and `queue`
 * (wake-up) alike. Opens the backend and Postgres for this invocation, drains with the
 * default trigger registry (filled by src/handlers), records the run's counters, and in
 * waitUntil flushes the metrics and closes the pool.
 */
import { type Config, type Env, loadConfig } from "../config";
import { openDb } from "../db/client";
import "../handlers";
import { flushMetrics, openBackend } from "../backends";
import { openDestinations } from "../destinations";
import { createLogger } from "../obs/log";
import { countedAs } from "../obs/usage";
import { defaultTriggers } from "../triggers/registry";
import { type RunReport, runConsumer } from "./consumer";
import { recordConsumerRun } from "./run-metrics";

/** Sends delayed wake-up messages so that retries run when due, not at the next cron tick. */
function wakeScheduler(env: Env) {
  const q = env.WAKE_QUEUE;
  if (!q) return undefined;
  // Cloudflare Queues accept delays up to 12 hours.
  return async (delays: number[]) => {
    await q.sendBatch(
      delays.map((d) => ({
        body: { kind: "wake" as const, at: Date.now() + d * 1000 },
        delaySeconds: Math.min(d, 43_200),
      })),
    );
  };
}

/** A run on other lanes than the live shards: the replay runner drains the replay lane with it. */
export interface LaneRun {
  lanes: string[];
  /** Which due events it claims: none, or the redrive lane's (the live retries are the live consumer's). */
  due: "none" | "redrive";
  timeBudgetMs: number;
}

/** Its Redis commands and Postgres round trips are counted as consume work (src/obs/usage.ts). */
export function consumeInWorker(
  env: Env,
  ctx: ExecutionContext,
  trigger: string,
  laneRun?: LaneRun,
): Promise<RunReport> {
  return countedAs("consume", () => consume(env, ctx, trigger, laneRun));
}

/** Configurations whose off triggers this isolate has logged: one line each at start, not per run. */
const announced = new WeakSet<Config>();

async function consume(env: Env, ctx: ExecutionContext, trigger: string, laneRun?: LaneRun): Promise<RunReport> {
  const base: Config = loadConfig(env);
  const cfg: Config = laneRun ? { ...base, CONSUMER_TIME_BUDGET_MS: laneRun.timeBudgetMs } : base;
  const log = createLogger(cfg.LOG_LEVEL, { run: trigger });
  if (!announced.has(base)) {
    announced.add(base);
    for (const x of defaultTriggers.off(base)) log.warn("trigger off", x);
  }
  const db = openDb(cfg);
  const backend = openBackend(cfg, db);
  const locks = backend.scopeLocks();
  // DESTINATIONS become triggers beside the code triggers, with their breaker/attempt hooks.
  const destinations = openDestinations({ config: cfg, db: db.db, base: defaultTriggers, log });
  try {
    const report = await runConsumer({
      store: backend.store,
      triggers: destinations.triggers,
      hooks: destinations.hooks,
      locks,
      filterState: backend.filterState(),
      config: cfg,
      env,
      db: db.db,
      log,
      scheduleWake: wakeScheduler(env),
      ...(laneRun
        ? laneRun.due === "redrive"
          ? { lanes: laneRun.lanes, dueLane: "redrive" as const }
          : { lanes: laneRun.lanes, skipDue: true }
        : {}),
    });
    recordConsumerRun(trigger, report);
    log.info("consumer run", { ...report });
    return report;
  } finally {
    // One after another: the metrics go through the invocation's pool before it ends, so the
    // invocation never holds more than its DB_POOL_MAX connections (and the lock connection).
    ctx.waitUntil(
      locks
        .close()
        .catch(() => {})
        .then(() => flushMetrics(cfg, db))
        .then(() => db.close()),
    );
  }
}
