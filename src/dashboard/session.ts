/**
 * Dashboard sessions: a token typed into the sign-in form becomes a signed session cookie.
 *
 *  - ADMIN_TOKEN signs in an admin session (every view and action), METRICS_TOKEN a
 *    read-only one (views only; every action answers 403).
 *  - The cookie (`__Host-reflex_session`: HttpOnly, Secure, SameSite=Strict, Path=/) holds
 *    "<role>.<expiry>.<session id>", signed with HMAC-SHA256 (hono/cookie signed cookies).
 *    The signing key is derived from the token of the role (HMAC of a fixed label keyed by
 *    it), so no extra secret is needed and rotating a token ends every session it opened.
 *    The role is the one whose key verifies the signature, whatever the value says.
 *  - Sessions are stateless: signing out clears the cookie in this browser; a copied cookie
 *    stays valid until its expiry (SESSION_TTL_S) or until the token is rotated.
 *  - Every POST needs the same origin (hono/csrf: Origin or Sec-Fetch-Site) and the session's
 *    CSRF token, an HMAC of the session id under the session key, sent as the form field
 *    `_csrf`.
 */
import type { Context, MiddlewareHandler } from "hono";
import { deleteCookie, generateSignedCookie, getSignedCookie } from "hono/cookie";
import type { Config } from "../config";
import { accessFor, tokensEqual } from "../http/admin-auth";
import { HTTPProblem } from "../http/problem";
import type { DashEnv, Role, Session } from "./env";

const COOKIE = "reflex_session";
/** A working day: long enough not to interrupt an incident, short enough for a borrowed laptop. */
export const SESSION_TTL_S = 8 * 3600;
const LABEL = "reflex-edge dashboard session v1";

const enc = new TextEncoder();

async function hmac(key: string, message: string): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey("raw", enc.encode(key), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, enc.encode(message)));
}

const base64url = (b: Uint8Array) =>
  btoa(String.fromCharCode(...b))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");

/** token -> derived signing key; a deployment has two tokens at most. */
const derived = new Map<string, string>();
async function sessionKey(token: string): Promise<string> {
  let k = derived.get(token);
  if (k === undefined) {
    k = base64url(await hmac(token, LABEL));
    derived.set(token, k);
  }
  return k;
}

function tokens(cfg: Config): Array<[Role, string]> {
  const out: Array<[Role, string]> = [];
  if (cfg.ADMIN_TOKEN) out.push(["admin", cfg.ADMIN_TOKEN]);
  if (cfg.METRICS_TOKEN) out.push(["read", cfg.METRICS_TOKEN]);
  return out;
}

/** Neither token configured: the dashboard is off, like the admin API without ADMIN_TOKEN. */
export function dashboardEnabled(cfg: Config): boolean {
  return tokens(cfg).length > 0;
}

/** The role a typed token grants, or null: the admin API's own comparison (src/http/admin-auth.ts). */
export async function roleOf(cfg: Config, given: string): Promise<Role | null> {
  const access = await accessFor(given, cfg);
  return access === "none" ? null : access;
}

async function csrfFor(key: string, sid: string): Promise<string> {
  return base64url(await hmac(key, `csrf:${sid}`));
}

/**
 * The Set-Cookie value of a new session of `role` (which must have its token configured),
 * opened at `now` (ms). Exported for tests, which need sessions that have expired.
 */
export async function sessionCookie(cfg: Config, role: Role, now = Date.now()): Promise<string> {
  const token = tokens(cfg).find(([r]) => r === role)?.[1];
  if (token === undefined) throw new Error(`no token configured for a ${role} session`);
  const expires = Math.floor(now / 1000) + SESSION_TTL_S;
  const sid = base64url(crypto.getRandomValues(new Uint8Array(16)));
  return generateSignedCookie(COOKIE, `${role}.${expires}.${sid}`, await sessionKey(token), {
    prefix: "host",
    httpOnly: true,
    secure: true,
    sameSite: "Strict",
    maxAge: SESSION_TTL_S,
    expires: new Date(expires * 1000),
  });
}

/** Signs a new session in: sets the cookie. */
export async function openSession(c: Context<DashEnv>, role: Role): Promise<void> {
  c.header("set-cookie", await sessionCookie(c.var.config, role), { append: true });
}

export function closeSession(c: Context<DashEnv>): void {
  deleteCookie(c, COOKIE, { prefix: "host", httpOnly: true, secure: true, sameSite: "Strict" });
}

/** The session of this request, or null (none, tampered, expired, or signed with a rotated token). */
export async function readSession(c: Context<DashEnv>, now = Date.now()): Promise<Session | null> {
  for (const [role, token] of tokens(c.var.config)) {
    const key = await sessionKey(token);
    const value = await getSignedCookie(c, key, COOKIE, "host");
    if (typeof value !== "string") continue;
    const [r, exp, sid] = value.split(".");
    const expires = Number(exp);
    if (r !== role || !sid || !Number.isInteger(expires) || expires * 1000 <= now) return null;
    return { role, expires, csrf: await csrfFor(key, sid) };
  }
  return null;
}

/**
 * Pages need a session: a browser without one is sent to the sign-in page (and back here
 * afterwards); anything but a GET is refused with 401.
 */
export const requireSession: MiddlewareHandler<DashEnv> = async (c, next) => {
  const s = await readSession(c);
  if (!s) {
    if (c.req.method === "GET" || c.req.method === "HEAD") {
      const url = new URL(c.req.url);
      return c.redirect(`/dashboard/login?next=${encodeURIComponent(url.pathname + url.search)}`, 303);
    }
    throw new HTTPProblem(401, "Signed out", "Sign in again: the session is missing or has expired.");
  }
  c.set("session", s);
  await next();
};

/**
 * Actions: the session's CSRF token must come with the request, compared in constant time.
 * (The origin check runs before this, for every POST: see ./routes.tsx.)
 */
export const requireCsrfToken: MiddlewareHandler<DashEnv> = async (c, next) => {
  const s = c.var.session;
  let given: string | undefined;
  if (/^(application\/x-www-form-urlencoded|multipart\/form-data)/i.test(c.req.header("content-type") ?? "")) {
    const v = (await c.req.parseBody())._csrf;
    if (typeof v === "string") given = v;
  }
  if (given === undefined || !(await tokensEqual(given, s.csrf))) {
    throw new HTTPProblem(
      403,
      "Cross-site request refused",
      "The form's anti-forgery token is missing or wrong: reload the page and try again.",
    );
  }
  await next();
};

/** Actions need an admin session: a read-only one sees no buttons, and is refused here too. */
export const requireAdmin: MiddlewareHandler<DashEnv> = async (c, next) => {
  if (c.var.session.role !== "admin") {
    throw new HTTPProblem(
      403,
      "Read-only session",
      "This session was opened with the read-only token: actions need the admin token.",
    );
  }
  await next();
};

const HOME = "/dashboard";
const PROBE_ORIGIN = "http://dashboard.invalid";

/**
 * A path under /dashboard of this origin to return to (after signing in, after an action),
 * normalised as a browser would read it; anything else is the overview. Refused: other
 * origins and schemes, `//` and backslashes (browsers read both as the start of a host), control
 * characters, dot segments, and any of these percent-encoded, so the redirect built from it
 * (also with query parameters added, as ./routes.tsx does) stays on this dashboard.
 */
export function safeNext(next: string | undefined): string {
  if (!next || next.length > 2048 || !next.startsWith("/") || /[\\\p{Cc}]/u.test(next)) return HOME;
  let u: URL;
  try {
    u = new URL(next, PROBE_ORIGIN);
  } catch {
    return HOME;
  }
  if (u.origin !== PROBE_ORIGIN || !/^\/dashboard(?:\/|$)/.test(u.pathname)) return HOME;
  // Decoded (twice, for double encoding) the path has no `//`, backslash, dot segment or control character.
  let path = u.pathname;
  for (let i = 0; i < 2; i++) {
    try {
      path = decodeURIComponent(path);
    } catch {
      return HOME;
    }
  }
  if (/\/\/|\\|(?:^|\/)\.{1,2}(?:\/|$)|\p{Cc}/u.test(path)) return HOME;
  return u.pathname + u.search + u.hash;
}
