/**
 * Rate limits at ingest, with @upstash/ratelimit (sliding window, one EVALSHA per check)
 * on the same Upstash client as publishing, keys under `<REDIS_PREFIX>:ratelimit`.
 *
 *   per API key:        RATE_LIMIT_KEY_EVENTS events per RATE_LIMIT_WINDOW_S (a batch of n costs n)
 *   per webhook source: RATE_LIMIT_SOURCE_REQUESTS deliveries per RATE_LIMIT_WINDOW_S
 *
 * Checked after authentication (a key that fails auth, or an unsigned webhook, cannot
 * spend someone's quota) and before publishing. A limit of 0 turns the check off.
 * Over the limit: 429 with Retry-After (seconds to the window's reset). Redis failing: the
 * caller maps the error to 503, like a failed publish.
 */
import { Ratelimit } from "@upstash/ratelimit";
import type { Redis } from "../backends/redis/client";
import { redisKeys } from "../backends/redis/keys";
import type { Config } from "../config";
import { HTTPProblem } from "../http/problem";

// Identifiers known to be over their limit until the window resets: answered without a
// Redis command (the library's "ephemeral cache"), shared by the isolate's requests.
const blocked = new Map<string, number>();

export interface RateLimitSubject {
  kind: "key" | "source";
  /** API key id or source name. */
  id: string;
  /** Units this request spends (events for keys, 1 for a delivery). */
  cost: number;
}

function limitFor(cfg: Config, kind: RateLimitSubject["kind"]): number {
  return kind === "key" ? cfg.RATE_LIMIT_KEY_EVENTS : cfg.RATE_LIMIT_SOURCE_REQUESTS;
}

export function rateLimitEnabled(cfg: Config, kind: RateLimitSubject["kind"]): boolean {
  return limitFor(cfg, kind) > 0;
}

/** Throws a 429 problem when over the limit; resolves otherwise. `waitUntil` receives the library's background work. */
export async function enforceRateLimit(
  redis: Redis,
  cfg: Config,
  subject: RateLimitSubject,
  waitUntil: (p: Promise<unknown>) => void,
): Promise<void> {
  const limit = limitFor(cfg, subject.kind);
  if (limit <= 0) return;
  const limiter = new Ratelimit({
    redis,
    limiter: Ratelimit.slidingWindow(limit, `${cfg.RATE_LIMIT_WINDOW_S} s`),
    prefix: `${redisKeys(cfg.REDIS_PREFIX).ratelimit}:${subject.kind}`,
    ephemeralCache: blocked,
    analytics: false,
    // No "allow on timeout": a slow Redis should surface as 503, not as unmetered traffic.
    timeout: 0,
  });
  const r = await limiter.limit(subject.id, { rate: subject.cost });
  waitUntil(r.pending);
  if (r.success) return;
  const retryAfter = Math.max(1, Math.ceil((r.reset - Date.now()) / 1000));
  const what = subject.kind === "key" ? "API key" : `webhook source "${subject.id}"`;
  throw new HTTPProblem(
    429,
    "Too many requests",
    `Rate limit of the ${what} exceeded: ${limit} ${subject.kind === "key" ? "events" : "deliveries"} per ${cfg.RATE_LIMIT_WINDOW_S} s.`,
    {
      headers: { "retry-after": String(retryAfter) },
      limit,
      window_s: cfg.RATE_LIMIT_WINDOW_S,
      retry_after_s: retryAfter,
    },
  );
}
