/** Per-request plumbing shared by the ingest routes. */
import type { Context } from "hono";
import { openBackend, openUpstash } from "../backends";
import type { Config } from "../config";
import type { AppEnv } from "../http/app-env";
import { HTTPProblem } from "../http/problem";
import { type IngestContext, storeUnavailable } from "./publish";
import { enforceRateLimit, type RateLimitSubject, rateLimitEnabled } from "./ratelimit";

export function ingestContext(c: Context<AppEnv>, cfg: Config = c.var.config): IngestContext {
  return {
    env: c.env,
    cfg,
    store: openBackend(cfg).store,
    waitUntil: (p) => c.executionCtx.waitUntil(p),
  };
}

/** Rate limit check; a failing Redis is a 503 like a failed publish (the 429 passes through). */
export async function rateLimit(ctx: IngestContext, subject: RateLimitSubject): Promise<void> {
  if (!rateLimitEnabled(ctx.cfg, subject.kind)) return;
  // @upstash/ratelimit needs Upstash; a Postgres-only deployment without it has no rate limits.
  const upstash = openUpstash(ctx.cfg);
  if (!upstash) return;
  try {
    await enforceRateLimit(upstash, ctx.cfg, subject, ctx.waitUntil);
  } catch (err) {
    if (err instanceof HTTPProblem) throw err;
    throw storeUnavailable(err, ctx.cfg);
  }
}
