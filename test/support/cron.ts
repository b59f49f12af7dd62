/** Runs one of the worker's crons through its own `scheduled` entry point, waiting for its waitUntil work. */
import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import type { Env } from "../../src/config";
import worker from "../../src/index";

export async function runCron(env: Env, cron: string): Promise<void> {
  const ctx = createExecutionContext();
  await worker.scheduled!(createScheduledController({ cron, scheduledTime: Date.now() }), env, ctx);
  await waitOnExecutionContext(ctx);
}
