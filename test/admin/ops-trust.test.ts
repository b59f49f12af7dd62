/**
 * Operator surfaces that must not be talked into more than was asked, on both backends:
 *  - the dashboard's return paths (`back`, `next`) stay on the dashboard, however encoded;
 *  - wrong admin/metrics tokens (bearer and dashboard sign-in) are throttled per client
 *    address (429 + Retry-After, the right token included) and counted in /metrics;
 *  - a replay's target names a trigger or destination of the deployment (else 422, no job);
 *  - a DLQ retry-all names a filter or says `all: true` (else 422, nothing moved).
 * Through the worker's own fetch handler against the real Postgres and Redis.
 */
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { sessionCookie } from "../../src/dashboard/session";
import { clientKey } from "../../src/http/auth-throttle";
import { ADMIN_TOKEN, call, scrapeMetrics } from "../support/admin";
import { fetchThrough } from "../support/fetch";
import { type BackendName, type Rig, rigsClosedAfterEach } from "../support/rig";

const ORIGIN = "http://reflex.test";
const METRICS_TOKEN = "ops-trust-read-token-0123456789";
const make = rigsClosedAfterEach();

async function dlqRows(r: Rig, n: number, type = "order.failed"): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = crypto.randomUUID();
    ids.push(id);
    await r.db.db.execute(sql`
      INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts, last_error, errors, updated_at)
      VALUES (${id}::uuid, ${type}, 'shop', now(), '{"n":1}'::jsonb, '{"trace_id":"t"}'::jsonb, 'shop', 'dlq', 3, 'boom',
              '[{"attempt":3,"error":"boom","at":"2026-01-01T00:00:00Z"}]'::jsonb, now())`);
  }
  return ids;
}

const statuses = async (r: Rig, ids: string[]) =>
  (
    await r.rows<{ status: string }>(
      sql`SELECT status FROM events WHERE id = ANY(${sql.param(ids)}::uuid[]) ORDER BY id`,
    )
  ).map((x) => x.status);

/** An admin session of the dashboard: its cookie, and form posts with its anti-forgery token. */
async function dashboard(r: Rig) {
  const cookie = (await sessionCookie(r.cfg, "admin")).split(";")[0]!;
  const send = async (method: string, path: string, form?: Record<string, string>, headers = {}) => {
    const { res, text } = await fetchThrough(
      r.env,
      new Request(`${ORIGIN}${path}`, {
        method,
        headers: {
          cookie,
          accept: "text/html",
          ...(method === "GET" ? {} : { origin: ORIGIN }),
          ...(form ? { "content-type": "application/x-www-form-urlencoded" } : {}),
          ...headers,
        },
        body: form ? new URLSearchParams(form).toString() : undefined,
      }),
    );
    return { status: res.status, headers: res.headers, text, location: res.headers.get("location") };
  };
  const csrf = /name="_csrf" value="([^"]+)"/.exec((await send("GET", "/dashboard/replays")).text)![1]!;
  return {
    send,
    act: (path: string, form: Record<string, string> = {}) => send("POST", path, { _csrf: csrf, ...form }),
  };
}

/** A sign-in form post (no session), from `ip` when given. */
async function signIn(r: Rig, token: string, next = "/dashboard", ip?: string) {
  const { res, text } = await fetchThrough(
    r.env,
    new Request(`${ORIGIN}/dashboard/login`, {
      method: "POST",
      headers: {
        origin: ORIGIN,
        "content-type": "application/x-www-form-urlencoded",
        ...(ip ? { "cf-connecting-ip": ip } : {}),
      },
      body: new URLSearchParams({ token, next }).toString(),
    }),
  );
  return { status: res.status, headers: res.headers, text, location: res.headers.get("location") };
}

const HOSTILE = [
  "/dashboard/..//evil.example",
  "/dashboard/../..//evil.example/x",
  "//evil.example",
  "///evil.example",
  "/\\evil.example",
  "/dashboard/\\..\\..\\evil.example",
  "/dashboard/%2e%2e//evil.example",
  "/dashboard/..%2f%2fevil.example",
  "/dashboard/%2e%2e%2f%2fevil.example",
  "/dashboard/%252e%252e/%252f%252fevil.example",
  "/dashboard/%5c%5cevil.example",
  "/dashboard/\t/..//evil.example",
  "https://evil.example/dashboard",
  "javascript:alert(1)",
  "/dashboardx",
  "/events",
];

describe("dashboard return paths", () => {
  it("a DLQ action's `back` that leaves /dashboard is the overview: never a Location off this site", async () => {
    const r = await make("postgres");
    const ids = await dlqRows(r, HOSTILE.length + 1);
    const d = await dashboard(r);
    for (const [i, back] of HOSTILE.entries()) {
      const a = await d.act(`/dashboard/dlq/${ids[i]}/retry`, { back });
      expect(a.status, back).toBe(303);
      expect(a.location, back).toBe("/dashboard?flash=retried");
    }
    // A path on the dashboard is kept, with its query.
    const kept = await d.act(`/dashboard/dlq/${ids.at(-1)}/retry`, { back: "/dashboard/dlq?type=order.failed" });
    expect(kept.location).toBe("/dashboard/dlq?type=order.failed&flash=retried");
  });

  it("sign-in's `next` (form and query) is a path under /dashboard or the overview", async () => {
    const r = await make("postgres");
    for (const next of HOSTILE) {
      const a = await signIn(r, ADMIN_TOKEN, next);
      expect(a.status, next).toBe(303);
      expect(a.location, next).toBe("/dashboard");
    }
    expect((await signIn(r, ADMIN_TOKEN, "/dashboard/events?type=a#x")).location).toBe("/dashboard/events?type=a#x");
    const d = await dashboard(r);
    const signedIn = await d.send("GET", `/dashboard/login?next=${encodeURIComponent("/dashboard/..//evil.example")}`);
    expect(signedIn.location).toBe("/dashboard");
  });
});

describe.each(["redis", "postgres"] as const)(
  "token guesses are throttled per address (%s)",
  (backend: BackendName) => {
    const rig = () => make(backend, { METRICS_TOKEN, AUTH_FAILURE_LIMIT: "3", AUTH_FAILURE_WINDOW_S: "600" });
    const from = (ip: string) => ({ "cf-connecting-ip": ip });

    it("admin bearer: 403 for the first wrong tokens, then 429 with Retry-After for any token from that address", async () => {
      const r = await rig();
      const before = await scrapeMetrics(r.env);
      const ip = "203.0.113.7";
      for (let i = 0; i < 3; i++) {
        const a = await call(r.env, "GET", "/events/dlq", { token: `wrong-${i}-0123456789`, headers: from(ip) });
        expect(a.status).toBe(403);
      }
      const refused = await call(r.env, "GET", "/events/dlq", { token: "wrong-3-0123456789", headers: from(ip) });
      expect(refused.status).toBe(429);
      expect(refused.headers.get("content-type")).toBe("application/problem+json");
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(Number(refused.headers.get("retry-after"))).toBeLessThanOrEqual(600);
      expect(refused.body).toMatchObject({ status: 429, limit: 3, window_s: 600 });
      // The right token from the same address too: a guess that hits must not look different.
      expect((await call(r.env, "GET", "/events/dlq", { headers: from(ip) })).status).toBe(429);
      expect((await call(r.env, "GET", "/metrics", { token: METRICS_TOKEN, headers: from(ip) })).status).toBe(429);
      // Other addresses are not held back; no token at all is a 401, not a guess.
      expect((await call(r.env, "GET", "/events/dlq", { headers: from("203.0.113.8") })).status).toBe(200);
      expect((await call(r.env, "GET", "/events/dlq", { token: null, headers: from(ip) })).status).toBe(401);
      // The read-only token asking for an action is refused, but is no guess.
      for (let i = 0; i < 4; i++) {
        const act = await call(r.env, "POST", "/events/dlq/retry", {
          token: METRICS_TOKEN,
          body: { all: true },
          headers: from("203.0.113.9"),
        });
        expect(act.status).toBe(403);
      }
      expect((await call(r.env, "GET", "/events/dlq", { headers: from("203.0.113.9") })).status).toBe(200);

      const after = await scrapeMetrics(r.env);
      const delta = (s: string) => (after.series.get(s) ?? 0) - (before.series.get(s) ?? 0);
      expect(delta('reflex_auth_failures_total{surface="admin"}')).toBe(3);
      expect(delta('reflex_auth_throttled_total{surface="admin"}')).toBe(3);
    });

    it("an IPv6 client is one /64: another address of its block is held back with it", async () => {
      const r = await rig();
      for (let i = 0; i < 3; i++)
        expect(
          (await call(r.env, "GET", "/events", { token: `guess-${i}-0123456789`, headers: from("2001:db8:1:2::1") }))
            .status,
        ).toBe(403);
      expect((await call(r.env, "GET", "/events", { headers: from("2001:db8:1:2:ffff:0:0:9") })).status).toBe(429);
      expect((await call(r.env, "GET", "/events", { headers: from("2001:db8:1:3::1") })).status).toBe(200);
    });

    it("dashboard sign-in: the first wrong tokens get the form again, then 429 with Retry-After, right token included", async () => {
      const r = await rig();
      const before = await scrapeMetrics(r.env);
      const ip = "198.51.100.4";
      for (let i = 0; i < 3; i++) expect((await signIn(r, `nope-${i}`, "/dashboard", ip)).status).toBe(403);
      const refused = await signIn(r, ADMIN_TOKEN, "/dashboard", ip);
      expect(refused.status).toBe(429);
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(refused.headers.get("set-cookie")).toBeNull();
      expect(refused.text).toContain("Too many failed sign-ins");
      expect((await signIn(r, ADMIN_TOKEN, "/dashboard", "198.51.100.5")).status).toBe(303);
      // Sign-in and the bearer API count against the same address.
      expect((await call(r.env, "GET", "/events", { headers: from(ip) })).status).toBe(429);

      const after = await scrapeMetrics(r.env);
      const delta = (s: string) => (after.series.get(s) ?? 0) - (before.series.get(s) ?? 0);
      expect(delta('reflex_auth_failures_total{surface="dashboard"}')).toBe(3);
      expect(delta('reflex_auth_throttled_total{surface="dashboard"}')).toBe(1);
      expect(delta('reflex_auth_throttled_total{surface="admin"}')).toBe(1);
    });
  },
);

it("client addresses: IPv4 as sent, IPv6 by its /64 however written", () => {
  expect(clientKey("203.0.113.7")).toBe("203.0.113.7");
  expect(clientKey("::ffff:203.0.113.7")).toBe("203.0.113.7");
  expect(clientKey("2001:DB8:0001:0002::1")).toBe("2001:db8:1:2::/64");
  expect(clientKey("2001:db8:1:2:aaaa:bbbb:cccc:dddd")).toBe("2001:db8:1:2::/64");
  expect(clientKey("2001:db8::1")).toBe("2001:db8:0:0::/64");
  expect(clientKey("::1")).toBe("0:0:0:0::/64");
});

describe.each(["redis", "postgres"] as const)("replay targets and retry-all (%s)", (backend: BackendName) => {
  const DESTINATIONS = JSON.stringify([
    { name: "crm", url: "https://crm.example/hook", filter: { types: ["never.*"] } },
  ]);
  const jobs = async (r: Rig) => (await r.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM replay_jobs`))[0]!.n;

  it("a replay `target` that names no trigger or destination is a 422 naming `target`, and no job", async () => {
    const r = await make(backend, { DESTINATIONS });
    const from = new Date(Date.now() - 3_600_000).toISOString();
    for (const target of ["nobody", "destination nobody", "CRM", "destination  crm"]) {
      const a = await call(r.env, "POST", "/replays", { body: { from, target } });
      expect(a.status, target).toBe(422);
      expect(a.body.errors, target).toEqual([expect.objectContaining({ path: "/target" })]);
    }
    expect(await jobs(r)).toBe(0);
    // The dashboard's form is refused the same way, its input kept.
    const d = await dashboard(r);
    const form = await d.act("/dashboard/replays", { from: "2026-03-01T10:00", target: "nobody" });
    expect(form.status).toBe(422);
    expect(form.text).toContain("names no trigger or destination");
    expect(await jobs(r)).toBe(0);
    // A destination by its name or its trigger's name.
    for (const target of ["crm", "destination crm"])
      expect((await call(r.env, "POST", "/replays", { body: { from, target } })).status, target).toBe(202);
    expect(await jobs(r)).toBe(2);
  });

  it("retry-all without a filter needs `all: true`: an empty or missing body is a 422 naming `all`, nothing moved", async () => {
    const r = await make(backend);
    const ids = await dlqRows(r, 3);
    for (const body of [undefined, {}, { all: false }, { all: "yes" }]) {
      const a = await call(r.env, "POST", "/events/dlq/retry", { body });
      expect(a.status, JSON.stringify(body)).toBe(422);
      expect(a.body.errors, JSON.stringify(body)).toEqual([expect.objectContaining({ path: "/all" })]);
    }
    expect(await statuses(r, ids)).toEqual(["dlq", "dlq", "dlq"]);
    expect((await call(r.env, "POST", "/events/dlq/retry", { body: { all: true } })).body).toEqual({ count: 3 });
    expect(await statuses(r, ids)).toEqual(["pending", "pending", "pending"]);
  });

  it("the dashboard's retry-all sends `all` when it has no filter, and a post without either is refused", async () => {
    const r = await make(backend);
    const ids = await dlqRows(r, 2);
    const d = await dashboard(r);
    const bare = await d.act("/dashboard/dlq/retry-all");
    expect(bare.status).toBe(422);
    expect(await statuses(r, ids)).toEqual(["dlq", "dlq"]);
    const confirm = await d.send("GET", "/dashboard/dlq/retry-all");
    expect(confirm.text).toContain('<input type="hidden" name="all" value="true"/>');
    const done = await d.act("/dashboard/dlq/retry-all", { all: "true" });
    expect(done).toMatchObject({ status: 303, location: "/dashboard/dlq?flash=retried-all&n=2" });
    expect(await statuses(r, ids)).toEqual(["pending", "pending"]);
  });
});
