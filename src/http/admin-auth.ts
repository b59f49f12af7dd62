/**
 * Operator authentication: `Authorization: Bearer <token>`, two tokens.
 *
 *  - ADMIN_TOKEN: every admin route, actions included, /metrics, the figures of /health.
 *  - METRICS_TOKEN (read-only): /metrics, the figures of /health/detailed and /ready, and the
 *    admin routes that only read (GET, HEAD); an action with it is 403. A scraper or a
 *    dashboard holding it cannot retry, discard or replay anything.
 *
 * adminAuth, on the admin routes:
 *  - no token that could grant the request configured: 503 "Admin API disabled" - never
 *    open by default;
 *  - no (or a non-Bearer) Authorization header: 401 with WWW-Authenticate;
 *  - a wrong token, or the read-only one for an action: 403;
 *  - too many wrong tokens from the client's address: 429 with Retry-After (./auth-throttle.ts).
 * The comparison hashes both sides (equal lengths, whatever was sent) and compares the
 * digests without an early exit, so timing does not reveal how much of a guess was right.
 */
import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "./app-env";
import { authFailed, authThrottled } from "./auth-throttle";
import { problem } from "./problem";

const REALM = 'Bearer realm="reflex-admin"';

async function digest(s: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)));
}

export async function tokensEqual(given: string, expected: string): Promise<boolean> {
  const [a, b] = await Promise.all([digest(given), digest(expected)]);
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** What a request's credentials allow: everything, reading, or nothing (anonymous or wrong). */
export type Access = "admin" | "read" | "none";

function bearer(c: Context<AppEnv>): string | undefined {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(c.req.header("authorization") ?? "");
  return m?.[1];
}

/** What `token` grants under `cfg` (the dashboard's sign-in asks the same question). */
export async function accessFor(token: string, cfg: AppEnv["Variables"]["config"]): Promise<Access> {
  // Both compared whatever the first answers, so timing does not say which one matched.
  const [admin, read] = await Promise.all([
    cfg.ADMIN_TOKEN ? tokensEqual(token, cfg.ADMIN_TOKEN) : false,
    cfg.METRICS_TOKEN ? tokensEqual(token, cfg.METRICS_TOKEN) : false,
  ]);
  return admin ? "admin" : read ? "read" : "none";
}

/** The access of the request's Bearer token ("none" without one): for routes open to all that show more to operators. */
export async function accessOf(c: Context<AppEnv>): Promise<Access> {
  const token = bearer(c);
  return token ? accessFor(token, c.var.config) : "none";
}

export const adminAuth: MiddlewareHandler<AppEnv> = async (c, next) => {
  const cfg = c.var.config;
  const reading = c.req.method === "GET" || c.req.method === "HEAD";
  if (!cfg.ADMIN_TOKEN && !(reading && cfg.METRICS_TOKEN)) {
    return problem(c, 503, "Admin API disabled", "ADMIN_TOKEN is not configured on this deployment.");
  }
  const token = bearer(c);
  if (!token) {
    return problem(c, 401, "Unauthorized", "Send the admin token as `Authorization: Bearer <ADMIN_TOKEN>`.", {
      headers: { "www-authenticate": REALM },
    });
  }
  const throttled = await authThrottled(c, "admin");
  if (throttled) return throttled.toResponse();
  const access = await accessFor(token, cfg);
  if (access === "admin" || (access === "read" && reading)) return next();
  if (access === "read") {
    return problem(c, 403, "Forbidden", "The read-only token (METRICS_TOKEN) allows no action; use the admin token.");
  }
  await authFailed(c, "admin");
  return problem(c, 403, "Forbidden", "The admin token is not valid.");
};
