/**
 * Admin authentication: `Authorization: Bearer <ADMIN_TOKEN>`.
 *
 *  - ADMIN_TOKEN not configured: 503 "Admin API disabled" - never open by default;
 *  - no (or a non-Bearer) Authorization header: 401 with WWW-Authenticate;
 *  - a wrong token: 403.
 * The comparison hashes both sides (equal lengths, whatever was sent) and compares the
 * digests without an early exit, so timing does not reveal how much of a guess was right.
 */
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./app-env";
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

export const adminAuth: MiddlewareHandler<AppEnv> = async (c, next) => {
  const token = c.var.config.ADMIN_TOKEN;
  if (!token) {
    return problem(c, 503, "Admin API disabled", "ADMIN_TOKEN is not configured on this deployment.");
  }
  const header = c.req.header("authorization") ?? "";
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (!m) {
    return problem(c, 401, "Unauthorized", "Send the admin token as `Authorization: Bearer <ADMIN_TOKEN>`.", {
      headers: { "www-authenticate": REALM },
    });
  }
  if (!(await tokensEqual(m[1]!, token))) {
    return problem(c, 403, "Forbidden", "The admin token is not valid.");
  }
  await next();
};
