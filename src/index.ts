/**
 * Worker entry: HTTP (`fetch`), cron (`scheduled`) and the wake-up queue (`queue`).
 */
import { app } from "./app";
import type { Env, WakeMessage } from "./config";

export default {
  fetch: app.fetch,

  async scheduled(controller: ScheduledController, env: Env, ctx: ExecutionContext): Promise<void> {
    void controller;
    void env;
    void ctx;
  },

  async queue(batch: MessageBatch<WakeMessage>, env: Env, ctx: ExecutionContext): Promise<void> {
    void env;
    void ctx;
    batch.ackAll();
  },
} satisfies ExportedHandler<Env, WakeMessage>;
