/**
 * Worker entry: HTTP (`fetch`), cron (`scheduled`) and the wake-up queue (`queue`).
 * Each cron string in wrangler.toml is routed to its own module here.
 */
import { app } from "./app";
import { loadConfig, type Env, type WakeMessage } from "./config";
import { consumeInWorker } from "./consume/entry";
import { runDlqSweeper, runReplayRunner } from "./ops/scheduled";
import { recordConsumerRun } from "./obs/run-metrics";
import { flushMetrics } from "./obs/sink";

/** Cron string -> scheduled function. Unknown strings are logged, not failed. */
const crons: Record<string, (env: Env, ctx: ExecutionContext) => Promise<unknown>> = {
  // Consumer safety net: drains the streams and picks up due retries even with no traffic.
  "* * * * *": async (env, ctx) => recordConsumerRun("cron", await consumeInWorker(env, ctx, "cron")),
  // Replay runner: advances replay jobs a chunk at a time, then drains the replay lane (src/ops).
  "*/2 * * * *": runReplayRunner,
  // DLQ sweeper: stuck events, idle consumers, stream trimming, DLQ alert (src/ops).
  "*/5 * * * *": runDlqSweeper,
};

export default {
  fetch: app.fetch,

  async scheduled(controller: ScheduledController, env: Env, ctx: ExecutionContext): Promise<void> {
    const run = crons[controller.cron];
    if (!run) {
      console.warn(JSON.stringify({ level: "warn", msg: "no scheduled function for cron", cron: controller.cron }));
      return;
    }
    try {
      await run(env, ctx);
    } finally {
      ctx.waitUntil(flushMetrics(loadConfig(env)));
    }
  },

  /**
   * Wake-up nudges (ingest after publishing, the consumer for due retries). One drain serves
   * the whole message batch; if it fails, the messages are retried by the queue and the cron
   * remains the safety net.
   */
  async queue(batch: MessageBatch<WakeMessage>, env: Env, ctx: ExecutionContext): Promise<void> {
    try {
      recordConsumerRun("queue", await consumeInWorker(env, ctx, "queue"));
    } finally {
      ctx.waitUntil(flushMetrics(loadConfig(env)));
    }
    batch.ackAll();
  },
} satisfies ExportedHandler<Env, WakeMessage>;
