/**
 * Worker entry: HTTP (`fetch`), cron (`scheduled`) and the wake-up queue (`queue`).
 * Each cron string in wrangler.toml is routed to its own module here.
 */
import { instrument } from "@microlabs/otel-cf-workers";
import { app } from "./app";
import { type Env, loadConfig, type WakeMessage } from "./config";
import { consumeInWorker } from "./consume/entry";
import { runDlqSweeper, runReplayRunner } from "./jobs/scheduled";
import { traceConfig, tracingEnabled } from "./obs/trace";
import { countedAs, workOfRequest } from "./obs/usage";

/** Cron string -> scheduled function. Unknown strings are logged, not failed. */
const crons: Record<string, (env: Env, ctx: ExecutionContext) => Promise<unknown>> = {
  // Consumer safety net: drains the streams and picks up due retries even with no traffic.
  "* * * * *": (env, ctx) => consumeInWorker(env, ctx, "cron"),
  // Replay runner: advances replay jobs a chunk at a time, then drains the replay lane (src/jobs).
  "*/2 * * * *": runReplayRunner,
  // DLQ sweeper: stuck events, idle consumers, stream trimming, DLQ alert (src/jobs).
  "*/5 * * * *": runDlqSweeper,
};

const worker = {
  // Each request's Redis commands and Postgres round trips are counted as ingest or other HTTP work.
  fetch: (req: Request, env: Env, ctx: ExecutionContext) =>
    countedAs(workOfRequest(req.method, new URL(req.url).pathname), () => app.fetch(req, env, ctx)),

  async scheduled(controller: ScheduledController, env: Env, ctx: ExecutionContext): Promise<void> {
    const run = crons[controller.cron];
    if (!run) {
      console.warn(JSON.stringify({ level: "warn", msg: "no scheduled function for cron", cron: controller.cron }));
      return;
    }
    // Each scheduled function flushes the metrics itself, through its own pool.
    await run(env, ctx);
  },

  /**
   * Wake-up nudges (ingest after publishing, the consumer for due retries). One drain serves
   * the whole message batch; if it fails, the messages are retried by the queue and the cron
   * remains the safety net.
   */
  async queue(batch: MessageBatch<WakeMessage>, env: Env, ctx: ExecutionContext): Promise<void> {
    await consumeInWorker(env, ctx, "queue");
    batch.ackAll();
  },
} satisfies ExportedHandler<Env, WakeMessage>;

/**
 * With OTEL_EXPORTER_OTLP_ENDPOINT set, every invocation runs under the OpenTelemetry
 * wrapper (spans exported over OTLP/HTTP in waitUntil); without it, the plain handlers run
 * and the spans in src/obs/trace.ts are no-ops.
 */
let tracedWorker: ExportedHandler<Env, WakeMessage> | undefined;
/** Built on first use: instrument() patches globals, which an untraced deployment must not pay for. */
const traced = () => (tracedWorker ??= instrument(worker, (env: Env) => traceConfig(loadConfig(env))));

function wantsTracing(env: Env): boolean {
  try {
    return tracingEnabled(loadConfig(env));
  } catch {
    return false; // a configuration error surfaces from the handler itself
  }
}

export default {
  fetch: (req, env, ctx) => (wantsTracing(env) ? traced().fetch!(req, env, ctx) : worker.fetch(req, env, ctx)),
  scheduled: (c, env, ctx) => (wantsTracing(env) ? traced().scheduled!(c, env, ctx) : worker.scheduled(c, env, ctx)),
  queue: (b, env, ctx) => (wantsTracing(env) ? traced().queue!(b, env, ctx) : worker.queue(b, env, ctx)),
} satisfies ExportedHandler<Env, WakeMessage>;
