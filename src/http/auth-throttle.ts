/**
 * Throttling of token guesses: failed admin/metrics bearer checks (./admin-auth.ts) and failed
 * dashboard sign-ins (src/dashboard/pages/login.tsx) count against the client's address. After
 * AUTH_FAILURE_LIMIT failures within AUTH_FAILURE_WINDOW_S the client gets 429 with
 * Retry-After for every token it sends, the right one included (otherwise the answer to the
 * right guess would still tell it apart), until failures leave the window. 0 turns it off.
 *
 *  - The client is CF-Connecting-IP (set by Cloudflare, not by the client); an IPv6 address
 *    counts by its /64, the block one subscriber holds. Without the header (local runs) every
 *    request is one client, "local".
 *  - Failures are counted where the deployment keeps shared counters: with Upstash,
 *    @upstash/ratelimit (sliding window, keys under `<REDIS_PREFIX>:ratelimit:auth`, as ingest's
 *    limits); without it, rows of Postgres (./auth-failures.ts). A successful request
 *    costs one read; only failures write.
 *  - The store failing never locks operators out: the check is skipped (and logged), the token
 *    still decides.
 *  - /metrics counts failures and refusals by surface: reflex_auth_failures_total and
 *    reflex_auth_throttled_total.
 */
import { Ratelimit } from "@upstash/ratelimit";
import type { Context } from "hono";
import { openUpstash } from "../backends";
import { redisKeys } from "../backends/redis/keys";
import type { Config } from "../config";
import { createLogger } from "../obs/log";
import { inc } from "../obs/metrics";
import { withDb } from "../operations/db-scope";
import type { AppEnv } from "./app-env";
import { addAuthFailure, recentAuthFailures } from "./auth-failures";
import { HTTPProblem } from "./problem";

export type AuthSurface = "admin" | "dashboard";
type C = Pick<Context<AppEnv>, "var" | "executionCtx" | "req">;

/** IPv6 by its first 64 bits ("2001:db8:1:2::/64"); anything else as sent. */
export function clientKey(address: string): string {
  const a = address.trim().toLowerCase().slice(0, 64);
  if (!a.includes(":")) return a;
  const v4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(a);
  if (v4) return v4[1]!;
  const [head = "", tail] = a.split("::", 2);
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(Math.max(0, 8 - h.length - t.length)).fill("0"), ...t];
  return `${groups
    .slice(0, 4)
    .map((g) => (Number.parseInt(g, 16) || 0).toString(16))
    .join(":")}::/64`;
}

function clientOf(c: C): string {
  const ip = c.req.header("cf-connecting-ip");
  return ip ? clientKey(ip) : "local";
}

function waitUntil(c: C, p: Promise<unknown>): void {
  try {
    c.executionCtx.waitUntil(p);
  } catch {
    void p.catch(() => {}); // no execution context (app.request in scripts)
  }
}

interface FailureStore {
  /** Seconds until the client may try again, or null while it is under the limit. */
  blockedFor(client: string): Promise<number | null>;
  add(client: string): Promise<void>;
}

function openStore(c: C, cfg: Config): FailureStore {
  const limit = cfg.AUTH_FAILURE_LIMIT;
  const windowS = cfg.AUTH_FAILURE_WINDOW_S;
  const upstash = openUpstash(cfg);
  if (upstash) {
    const limiter = new Ratelimit({
      redis: upstash,
      limiter: Ratelimit.slidingWindow(limit, `${windowS} s`),
      prefix: `${redisKeys(cfg.REDIS_PREFIX).ratelimit}:auth`,
      ephemeralCache: false,
      analytics: false,
      timeout: 0,
    });
    return {
      async blockedFor(client) {
        const r = await limiter.getRemaining(client);
        return r.remaining > 0 ? null : Math.max(1, Math.ceil((r.reset - Date.now()) / 1000));
      },
      async add(client) {
        const r = await limiter.limit(client);
        waitUntil(c, r.pending);
      },
    };
  }
  return {
    blockedFor: (client) =>
      withDb(c, "write", async (db) => {
        const r = await recentAuthFailures(db, client, windowS);
        return r.count < limit ? null : Math.max(1, Math.ceil(r.oldestLeavesInMs / 1000));
      }),
    add: (client) => withDb(c, "write", (db) => addAuthFailure(db, client, windowS, limit)),
  };
}

function skipped(cfg: Config, what: string, e: unknown): void {
  createLogger(cfg.LOG_LEVEL).warn("auth throttle skipped: its store failed", {
    step: what,
    error: String((e as Error)?.message ?? e).slice(0, 200),
  });
}

/** The 429 for a client over its failure budget (counted), or null. */
export async function authThrottled(c: C, surface: AuthSurface): Promise<HTTPProblem | null> {
  const cfg = c.var.config;
  if (cfg.AUTH_FAILURE_LIMIT <= 0) return null;
  let retryAfter: number | null;
  try {
    retryAfter = await openStore(c, cfg).blockedFor(clientOf(c));
  } catch (e) {
    skipped(cfg, "check", e);
    return null;
  }
  if (retryAfter === null) return null;
  inc("reflex_auth_throttled_total", { surface });
  return new HTTPProblem(
    429,
    "Too many failed sign-ins",
    `${cfg.AUTH_FAILURE_LIMIT} wrong tokens from this address within ${cfg.AUTH_FAILURE_WINDOW_S} s: try again later.`,
    {
      headers: { "retry-after": String(retryAfter) },
      limit: cfg.AUTH_FAILURE_LIMIT,
      window_s: cfg.AUTH_FAILURE_WINDOW_S,
      retry_after_s: retryAfter,
    },
  );
}

/** Counts a wrong token from this request's client. */
export async function authFailed(c: C, surface: AuthSurface): Promise<void> {
  const cfg = c.var.config;
  inc("reflex_auth_failures_total", { surface });
  if (cfg.AUTH_FAILURE_LIMIT <= 0) return;
  try {
    await openStore(c, cfg).add(clientOf(c));
  } catch (e) {
    skipped(cfg, "count", e);
  }
}
