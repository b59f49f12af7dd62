/**
 * The dashboard through the worker's own fetch handler, inside workerd, against the real
 * Postgres and Redis (through the stand-ins): sessions and their cookie, the cross-site
 * checks, read-only sessions, the Content-Security-Policy and page sizes, and what each page
 * shows and does, on rows written straight into history (parked scopes: by a consumer running
 * an ordered trigger). The browser run is test/node/dashboard-browser.test.ts.
 */
import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import { type Config, type Env, loadConfig } from "../../src/config";
import { listParked } from "../../src/consume/ordered-sql";
import { sessionCookie } from "../../src/dashboard/session";
import { type DbHandle, openDb } from "../../src/db/client";
import { minuteSeries } from "../../src/reads/dashboard-queries";
import { defaultTriggers, filters as f, type TriggerSpec } from "../../src/triggers";
import { call } from "../support/admin";
import { event } from "../support/consume";
import { freshEnv } from "../support/env";
import { fetchThrough } from "../support/fetch";
import { drain, publishInOrder } from "../support/ordered";
import { rigsClosedAfterEach } from "../support/rig";

const ORIGIN = "http://reflex.test";
const ADMIN = "dash-admin-token-0123456789";
const READ = "dash-read-token-0123456789";

const open: DbHandle[] = [];
afterEach(async () => {
  while (open.length) await open.pop()!.close();
});

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  location: string | null;
}

/** A cookie jar and a same-origin form poster: what a browser on the dashboard does. */
class Client {
  cookie = "";
  constructor(readonly env: Env) {}

  async req(
    method: string,
    path: string,
    o: { form?: Record<string, string>; headers?: Record<string, string>; origin?: string | null } = {},
  ): Promise<Answer> {
    const headers: Record<string, string> = { accept: "text/html", ...o.headers };
    if (this.cookie) headers.cookie = this.cookie;
    if (method !== "GET" && o.origin !== null) headers.origin = o.origin ?? ORIGIN;
    let body: string | undefined;
    if (o.form) {
      headers["content-type"] = "application/x-www-form-urlencoded";
      body = new URLSearchParams(o.form).toString();
    }
    const { res, text } = await fetchThrough(this.env, new Request(`${ORIGIN}${path}`, { method, headers, body }));
    const set = res.headers.get("set-cookie");
    if (set) {
      const pair = set.split(";")[0]!;
      this.cookie = pair.endsWith("=") ? "" : pair;
    }
    return { status: res.status, headers: res.headers, text, location: res.headers.get("location") };
  }

  async signIn(token: string, next = "/dashboard"): Promise<Answer> {
    return this.req("POST", "/dashboard/login", { form: { token, next } });
  }

  /** The session's anti-forgery token, from the sign-out form of any page. */
  async csrf(): Promise<string> {
    const page = await this.req("GET", "/dashboard/replays");
    return /name="_csrf" value="([^"]+)"/.exec(page.text)![1]!;
  }

  /** A form post with the session's token. */
  async act(path: string, form: Record<string, string> = {}): Promise<Answer> {
    return this.req("POST", path, { form: { _csrf: await this.csrf(), ...form } });
  }
}

async function setup(overrides: Record<string, unknown> = {}) {
  const env = await freshEnv({
    ADMIN_TOKEN: ADMIN,
    METRICS_TOKEN: READ,
    WAKE_QUEUE: undefined,
    LOG_LEVEL: "warn",
    ...overrides,
  });
  const cfg = loadConfig(env);
  const h = openDb(cfg);
  open.push(h);
  return { env, cfg, db: h.db };
}

async function signedIn(env: Env, token = ADMIN): Promise<Client> {
  const c = new Client(env);
  expect((await c.signIn(token)).status).toBe(303);
  return c;
}

interface Row {
  id?: string;
  type?: string;
  source?: string;
  ts?: string;
  status?: string;
  meta?: Record<string, unknown>;
  payload?: Record<string, unknown>;
  error?: string | null;
  updated?: string;
  processed?: string | null;
}

async function insert(db: DbHandle["db"], rows: Row[]): Promise<string[]> {
  const ids: string[] = [];
  for (const r of rows) {
    const id = r.id ?? crypto.randomUUID();
    ids.push(id);
    const ts = r.ts ?? new Date().toISOString();
    await db.execute(sql`
      INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts, last_error, errors,
                          updated_at, processed_at)
      VALUES (${id}::uuid, ${r.type ?? "order.created"}, ${r.source ?? "shop"}, ${ts}::timestamptz,
              ${JSON.stringify(r.payload ?? { n: 1 })}::jsonb, ${JSON.stringify({ trace_id: "t", ...r.meta })}::jsonb,
              ${r.source ?? "shop"}, ${r.status ?? "completed"}::event_status, 1, ${r.error ?? null},
              ${JSON.stringify(r.error ? [{ attempt: 1, error: r.error, at: ts }] : [])}::jsonb,
              ${r.updated ?? ts}::timestamptz, ${r.processed === undefined ? ts : r.processed}::timestamptz)`);
  }
  return ids;
}

const statusOf = async (db: DbHandle["db"], id: string) =>
  (
    await db.execute<{ status: string; discard_reason: string | null }>(sql`
    SELECT status, discard_reason FROM events WHERE id = ${id}::uuid`)
  ).rows[0];

const PAGES = [
  "/dashboard",
  "/dashboard/events",
  "/dashboard/dlq",
  "/dashboard/scopes",
  "/dashboard/replays",
  "/dashboard/destinations",
];

describe("dashboard sessions", () => {
  it("is off (503) with neither token configured", async () => {
    const { env } = await setup({ ADMIN_TOKEN: undefined, METRICS_TOKEN: undefined });
    const c = new Client(env);
    const page = await c.req("GET", "/dashboard/login");
    expect(page.status).toBe(503);
    expect(page.text).toContain("The dashboard is off.");
    expect((await c.signIn("anything-at-all-123")).status).toBe(503);
    expect(c.cookie).toBe("");
  });

  it("sends / and signed-out pages to the sign-in page, refuses wrong tokens, and sets a strict cookie", async () => {
    const { env } = await setup();
    const c = new Client(env);
    expect(await c.req("GET", "/")).toMatchObject({ status: 302, location: "/dashboard" });
    expect(await c.req("GET", "/dashboard/dlq?type=x")).toMatchObject({
      status: 303,
      location: `/dashboard/login?next=${encodeURIComponent("/dashboard/dlq?type=x")}`,
    });
    for (const wrong of [`${ADMIN}x`, ADMIN.slice(0, -1), "", READ.toUpperCase()]) {
      const r = await c.signIn(wrong);
      expect(r.status, wrong).toBe(403);
      expect(r.text).toContain("That token is not valid here.");
      expect(r.headers.get("set-cookie")).toBeNull();
    }
    const ok = await c.signIn(ADMIN, "/dashboard/dlq?type=x");
    expect(ok).toMatchObject({ status: 303, location: "/dashboard/dlq?type=x" });
    const set = ok.headers.get("set-cookie")!;
    expect(set).toMatch(
      /^__Host-reflex_session=[^;]+; Max-Age=28800; Path=\/; Expires=[^;]+; HttpOnly; Secure; SameSite=Strict$/,
    );
    expect((await c.req("GET", "/dashboard")).status).toBe(200);
  });

  it("answers 404 for a path no page serves (after the sign-in), even misconfigured", async () => {
    const { env } = await setup();
    expect((await new Client(env).req("GET", "/dashboard/nope")).status).toBe(303);
    expect((await (await signedIn(env)).req("GET", "/dashboard/nope")).status).toBe(404);
    const broken = new Client({ ...env, EVENT_MAX_ATTEMPTS: "zero" });
    expect((await broken.req("GET", "/dashboard/nope")).status).toBe(404);
    expect((await broken.req("GET", "/dashboard")).status).toBe(500);
  });

  it("returns only to a page of the dashboard after signing in", async () => {
    const { env } = await setup();
    for (const next of [
      "https://evil.example/",
      "//evil.example/dashboard",
      "/dashboardx",
      "/dashboard\\@evil.example",
      "javascript:alert(1)",
    ]) {
      const r = await new Client(env).signIn(ADMIN, next);
      expect(r.location, next).toBe("/dashboard");
    }
  });

  it("refuses expired, tampered and rotated-token sessions", async () => {
    const { env, cfg } = await setup();
    const expired = await sessionCookie(cfg as Config, "admin", Date.now() - 8 * 3600_000 - 1000);
    const c = new Client(env);
    c.cookie = expired.split(";")[0]!;
    expect((await c.req("GET", "/dashboard")).status).toBe(303);
    expect((await c.req("POST", "/dashboard/logout", { form: {} })).status).toBe(401);

    const good = await signedIn(env, READ);
    const [name, value] = good.cookie.split("=") as [string, string];
    const decoded = decodeURIComponent(value);
    expect(decoded.startsWith("read.")).toBe(true);
    const forged = new Client(env);
    forged.cookie = `${name}=${encodeURIComponent(decoded.replace(/^read\./, "admin."))}`;
    expect((await forged.req("GET", "/dashboard")).status).toBe(303);

    const rotated = new Client({ ...env, ADMIN_TOKEN: "another-admin-token-0123456789" });
    rotated.cookie = (await signedIn(env)).cookie;
    expect((await rotated.req("GET", "/dashboard")).status).toBe(303);
  });

  it("signs out: the cookie is cleared", async () => {
    const { env } = await setup();
    const c = await signedIn(env);
    const out = await c.act("/dashboard/logout");
    expect(out).toMatchObject({ status: 303, location: "/dashboard/login?flash=signed-out" });
    expect(out.headers.get("set-cookie")).toMatch(/^__Host-reflex_session=; Max-Age=0;/);
    expect(c.cookie).toBe("");
    expect((await c.req("GET", "/dashboard")).status).toBe(303);
  });
});

describe("dashboard cross-site protection", () => {
  it("needs the session's token and this origin on every post", async () => {
    const { env, db } = await setup();
    const [id] = await insert(db, [{ status: "dlq", error: "boom" }]);
    const c = await signedIn(env);
    const other = await signedIn(env);
    const path = `/dashboard/dlq/${id}/retry`;
    const refused = [
      await c.req("POST", path, { form: { back: "/dashboard/dlq" } }),
      await c.req("POST", path, { form: { _csrf: await other.csrf() } }),
      await c.req("POST", path, { form: { _csrf: `${await c.csrf()}x` } }),
      await c.req("POST", path, { form: { _csrf: await c.csrf() }, origin: "http://evil.example" }),
      await c.req("POST", path, { form: { _csrf: await c.csrf() }, origin: null }),
      await c.req("POST", path, {
        form: { _csrf: await c.csrf() },
        origin: null,
        headers: { "sec-fetch-site": "cross-site" },
      }),
    ];
    for (const r of refused) {
      expect(r.status).toBe(403);
      expect(r.text).toContain("Cross-site request refused");
    }
    expect((await statusOf(db, id!))!.status).toBe("dlq");
    // Same origin told by Sec-Fetch-Site alone (no Origin header).
    const ok = await c.req("POST", path, {
      form: { _csrf: await c.csrf() },
      origin: null,
      headers: { "sec-fetch-site": "same-origin" },
    });
    expect(ok).toMatchObject({ status: 303, location: "/dashboard?flash=retried" });
    expect((await statusOf(db, id!))!.status).toBe("pending");
  });

  it("gives a read-only session every view and no action", async () => {
    const { env, db } = await setup();
    const [id] = await insert(db, [{ status: "dlq", error: "boom" }]);
    const c = await signedIn(env, READ);
    for (const p of [...PAGES, `/dashboard/events/${id}`, "/dashboard/dlq/retry-all"]) {
      const page = await c.req("GET", p);
      expect(page.status, p).toBe(200);
      expect(page.text).toContain("read-only");
      expect(
        [...page.text.matchAll(/<form method="post" action="([^"]+)"/g)].map((m) => m[1]),
        p,
      ).toEqual(["/dashboard/logout"]);
    }
    for (const [p, form] of [
      [`/dashboard/dlq/${id}/retry`, {}],
      [`/dashboard/dlq/${id}/discard`, { reason: "no" }],
      ["/dashboard/dlq/retry-all", {}],
      [`/dashboard/events/${id}/replay`, {}],
      ["/dashboard/replays", { from: "2026-01-01T00:00" }],
    ] as const) {
      const r = await c.act(p, form);
      expect(r.status, p).toBe(403);
      expect(r.text).toContain("Read-only session");
    }
    expect((await statusOf(db, id!))!.status).toBe("dlq");
    expect((await c.act("/dashboard/logout")).status).toBe(303);
  });
});

describe("dashboard pages", () => {
  it("carry a strict CSP, no inline script or style, no-store, and stay under 100 KB", async () => {
    const { env, db } = await setup();
    const big = { blob: "x".repeat(200_000) };
    const [root] = await insert(db, [{ status: "dlq", error: "e".repeat(5000), payload: big }]);
    await insert(
      db,
      Array.from({ length: 120 }, () => ({
        meta: { causation_id: root!, correlation_id: root! },
        payload: big,
        status: "dlq",
        error: "e".repeat(2000),
      })),
    );
    const c = await signedIn(env);
    for (const p of [...PAGES, `/dashboard/events/${root}`, "/dashboard/dlq/retry-all", "/dashboard/login"]) {
      const page = await (p === "/dashboard/login" ? new Client(env) : c).req("GET", p);
      expect(page.status, p).toBe(200);
      const csp = page.headers.get("content-security-policy")!;
      expect(csp).toContain("default-src 'none'; script-src 'self'; style-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain("unsafe");
      expect(page.headers.get("cache-control")).toBe("no-store");
      expect(page.headers.get("x-frame-options")).toBe("DENY");
      expect(page.text.startsWith("<!doctype html>")).toBe(true);
      expect(page.text).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);
      expect(page.text).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
      expect(new TextEncoder().encode(page.text).length, p).toBeLessThan(100 * 1024);
    }
    const detail = await c.req("GET", `/dashboard/events/${root}`);
    expect(detail.text).toContain("Showing the first 49,152 of");
    const missing = await c.req("GET", `/dashboard/events/${crypto.randomUUID()}`);
    expect(missing.status).toBe(404);
    expect(missing.text).toContain("Event not found");
    expect(missing.headers.get("content-security-policy")).toContain("default-src 'none'");
  });

  it("serves its assets with a content hash, for a year; unknown ones are 404", async () => {
    const { env } = await setup();
    const c = new Client(env);
    const login = await c.req("GET", "/dashboard/login");
    const urls = [...login.text.matchAll(/(?:href|src)="(\/dashboard\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    expect(urls.map((u) => u.replace(/-[0-9a-f]{8}\./, "-#."))).toEqual([
      "/dashboard/assets/icon-#.svg",
      "/dashboard/assets/app-#.css",
      "/dashboard/assets/app-#.js",
      "/dashboard/assets/icon-#.svg",
    ]);
    for (const u of urls) {
      const a = await c.req("GET", u);
      expect(a.status).toBe(200);
      expect(a.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    }
    expect((await c.req("GET", urls[2]!)).headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect((await c.req("GET", "/dashboard/assets/app-00000000.js")).status).toBe(404);
  });

  it("events: filters, keyset pages, correlation ids, and 422 for a bad search", async () => {
    const { env, db } = await setup();
    const t0 = Date.parse("2026-03-01T10:00:00Z");
    const ids = await insert(
      db,
      Array.from({ length: 120 }, (_, i) => ({
        type: i % 2 ? "order.paid" : "order.created",
        source: i % 3 ? "shop" : "pos",
        ts: new Date(t0 + i * 1000).toISOString(),
        status: i % 10 === 0 ? "dlq" : "completed",
      })),
    );
    const c = await signedIn(env);
    const listed = (html: string) =>
      [...html.matchAll(/href="\/dashboard\/events\/([0-9a-f-]{36})"/g)].map((m) => m[1]);
    const seen: string[] = [];
    let url: string | null = "/dashboard/events";
    while (url) {
      const page = await c.req("GET", url);
      expect(page.status).toBe(200);
      seen.push(...listed(page.text));
      const next = /href="([^"]+)" rel="next"/.exec(page.text);
      url = next ? next[1]!.replace(/&amp;/g, "&") : null;
    }
    expect(seen).toEqual([...ids].reverse());

    const filtered = await c.req(
      "GET",
      "/dashboard/events?type=order.created&source=pos&status=completed&from=2026-03-01T10:00:30&to=2026-03-01T10:01:30",
    );
    const expected = ids.filter((_, i) => i % 2 === 0 && i % 3 === 0 && i % 10 !== 0 && i >= 30 && i < 90).reverse();
    expect(listed(filtered.text)).toEqual(expected);

    const [rootId] = await insert(db, [{ type: "order.created" }]);
    const [child] = await insert(db, [
      { type: "order.audited", meta: { causation_id: rootId, correlation_id: rootId } },
    ]);
    const byCorrelation = await c.req("GET", `/dashboard/events?correlation=${rootId}`);
    expect(new Set(listed(byCorrelation.text))).toEqual(new Set([rootId, child]));

    for (const bad of ["from=yesterday", "status=lost", "cursor=abc"]) {
      const r = await c.req("GET", `/dashboard/events?${bad}`);
      expect(r.status, bad).toBe(422);
      expect(r.text).toContain("The search was not run.");
    }
  });

  it("event: its durable steps, with their status, attempt, error and model tokens", async () => {
    const { env, db } = await setup();
    const [id, bare] = await insert(db, [{ type: "issue.opened" }, { type: "issue.opened" }]);
    await db.execute(sql`
      INSERT INTO steps (event_id, trigger, name, status, result, error, usage, attempt, started_at, duration_ms)
      VALUES (${id}::uuid, 'triage', 'model:1', 'completed', '{"value": 1}'::jsonb, NULL,
              '{"model": "openai:gpt-4.1-mini", "input_tokens": 1234, "output_tokens": 56}'::jsonb, 1, now(), 812),
             (${id}::uuid, 'triage', 'tool:publish', 'failed', NULL, 'publish refused: unknown type', NULL, 2, now(), 3)`);
    const c = await signedIn(env);

    const page = (await c.req("GET", `/dashboard/events/${id}`)).text;
    const section = page.slice(page.indexOf("Durable steps"), page.indexOf("Destination deliveries"));
    expect(section).toContain("model:1");
    expect(section).toContain("openai:gpt-4.1-mini: 1,234 in, 56 out");
    expect(section).toContain("tool:publish");
    expect(section).toContain("publish refused: unknown type");
    const other = (await c.req("GET", `/dashboard/events/${bare}`)).text;
    expect(other.slice(other.indexOf("Durable steps"))).toContain("No step recorded");
  });

  it("event: attempts, deliveries, the causation chain both ways, replay copies, and a 404", async () => {
    const { env, db } = await setup();
    const [grand] = await insert(db, [{ type: "order.created" }]);
    const [parent] = await insert(db, [{ type: "order.paid", meta: { causation_id: grand } }]);
    const [child] = await insert(db, [
      { type: "mail.sent", meta: { causation_id: parent }, status: "dlq", error: "smtp 554" },
    ]);
    const [copy] = await insert(db, [
      { type: "order.paid", meta: { causation_id: parent, replay: crypto.randomUUID() } },
    ]);
    const [orphan] = await insert(db, [{ type: "x.y", meta: { causation_id: crypto.randomUUID() } }]);
    await db.execute(sql`
      INSERT INTO delivery_attempts (event_id, destination, attempt, status_code, error, duration_ms, response_body, at)
      VALUES (${child}::uuid, 'mailer', 1, 554, 'HTTP 554', 42, 'mailbox unavailable', now())`);
    const c = await signedIn(env);

    const childPage = await c.req("GET", `/dashboard/events/${child}`);
    expect(childPage.status).toBe(200);
    const chain = /<ol class="chain"[^>]*>(.*?)<\/ol>/s.exec(childPage.text)![1]!;
    expect(chain.indexOf(grand!)).toBeLessThan(chain.indexOf(parent!));
    expect(childPage.text).toContain("smtp 554");
    expect(childPage.text).toContain("mailbox unavailable");
    expect(childPage.text).toContain(`action="/dashboard/dlq/${child}/retry"`);

    const parentPage = await c.req("GET", `/dashboard/events/${parent}`);
    const derived = parentPage.text.slice(
      parentPage.text.indexOf("Derived events"),
      parentPage.text.indexOf("Replay copies"),
    );
    expect(derived).toContain(child);
    expect(derived).not.toContain(copy);
    expect(parentPage.text.slice(parentPage.text.indexOf("Replay copies"))).toContain(copy);
    expect(parentPage.text).not.toContain(`/dashboard/dlq/${parent}/retry`);

    expect((await c.req("GET", `/dashboard/events/${orphan}`)).text).toContain("not in history");
    expect((await c.req("GET", `/dashboard/events/${copy}`)).text).not.toContain("Replay this event");
    for (const id of [crypto.randomUUID(), "not-a-uuid"])
      expect((await c.req("GET", `/dashboard/events/${id}`)).status).toBe(404);
  });

  it("dlq: groups, retry-all confirmed with the count, discard with a reason, a retry of what left", async () => {
    const { env, db } = await setup();
    const a = await insert(db, [
      { type: "order.paid", source: "shop", status: "dlq", error: "ledger down" },
      { type: "order.paid", source: "shop", status: "dlq", error: "ledger down" },
      { type: "order.paid", source: "pos", status: "dlq", error: "ledger down" },
    ]);
    const [other] = await insert(db, [{ type: "mail.sent", source: "crm", status: "dlq", error: "smtp 554" }]);
    const c = await signedIn(env);
    const page = await c.req("GET", "/dashboard/dlq");
    expect(page.text).toContain("4 event(s) whose attempts ran out");
    expect(page.text).toMatch(
      /<td class="num">2<\/td><td class="err">ledger down<\/td><td>order.paid<\/td><td>shop<\/td>/,
    );

    const confirm = await c.req("GET", "/dashboard/dlq/retry-all?type=order.paid&source=shop");
    expect(confirm.text).toContain("<strong>2</strong> event(s) in the DLQ match type order.paid and source shop");
    const done = await c.act("/dashboard/dlq/retry-all", { type: "order.paid", source: "shop" });
    expect(done).toMatchObject({
      status: 303,
      location: "/dashboard/dlq?type=order.paid&source=shop&flash=retried-all&n=2",
    });
    expect((await c.req("GET", done.location!)).text).toContain("2 event(s) sent back for processing");
    expect((await Promise.all(a.map((id) => statusOf(db, id)))).map((x) => x!.status)).toEqual([
      "pending",
      "pending",
      "dlq",
    ]);

    const noReason = await c.act(`/dashboard/dlq/${other}/discard`, { reason: "  " });
    expect(noReason.status).toBe(422);
    const discarded = await c.act(`/dashboard/dlq/${other}/discard`, { reason: "poison", back: "/dashboard/dlq" });
    expect(discarded).toMatchObject({ status: 303, location: "/dashboard/dlq?flash=discarded" });
    expect(await statusOf(db, other!)).toEqual({ status: "discarded", discard_reason: "poison" });
    expect((await c.act(`/dashboard/dlq/${other}/retry`)).status).toBe(409);
  });

  it("replays: refused forms keep their input, a started job, cancel, and 'replay this event'", async () => {
    const { env, db } = await setup({
      REPLAY_MAX_RATE: "1000",
      // A replay's target must be a trigger or destination of the deployment.
      DESTINATIONS: JSON.stringify([
        { name: "mailer", url: "https://mailer.example/hook", filter: { types: ["never.*"] } },
      ]),
    });
    const c = await signedIn(env);
    const backwards = await c.act("/dashboard/replays", {
      from: "2026-03-01T10:00",
      to: "2026-03-01T09:00",
      types: "a.b",
    });
    expect(backwards.status).toBe(422);
    expect(backwards.text).toContain("must be after `from`");
    expect(backwards.text).toContain('value="a.b"');
    const fast = await c.act("/dashboard/replays", { from: "2026-03-01T10:00", rate: "5000" });
    expect(fast.status).toBe(422);
    expect(fast.text).toContain("at most 1000 events per second");
    expect((await c.act("/dashboard/replays", { from: "soon" })).status).toBe(422);

    const started = await c.act("/dashboard/replays", {
      from: "2026-03-01T10:00",
      to: "2026-03-01T11:00:30",
      types: "order.paid, order.created",
      sources: "shop",
      dry_run: "on",
      rate: "50",
      target: "mailer",
    });
    expect(started.status).toBe(303);
    const jobId = /#job-([0-9a-f-]{36})$/.exec(started.location!)![1]!;
    const job = (
      await db.execute<Record<string, unknown>>(sql`
      SELECT status, types, sources, dry_run, rate, target, from_ts, to_ts FROM replay_jobs WHERE id = ${jobId}::uuid`)
    ).rows[0]!;
    expect(job).toMatchObject({
      status: "scheduled",
      types: ["order.paid", "order.created"],
      sources: ["shop"],
      dry_run: true,
      rate: 50,
      target: "mailer",
    });
    expect(new Date(job.from_ts as string).toISOString()).toBe("2026-03-01T10:00:00.000Z");
    expect(new Date(job.to_ts as string).toISOString()).toBe("2026-03-01T11:00:30.000Z");
    const list = await c.req("GET", "/dashboard/replays");
    expect(list.text).toContain(`id="job-${jobId}"`);
    expect(list.text).toContain('data-refresh="3"');
    expect((await c.act(`/dashboard/replays/${jobId}/cancel`)).status).toBe(303);
    expect((await c.act(`/dashboard/replays/${jobId}/cancel`)).status).toBe(409);
    expect((await c.req("GET", "/dashboard/replays")).text).not.toContain("data-refresh");

    const [original] = await insert(db, [{ type: "order.paid", source: "shop", ts: "2026-03-01T10:00:00.123Z" }]);
    const again = await c.act(`/dashboard/events/${original}/replay`);
    expect(again.status).toBe(303);
    const one = /#job-([0-9a-f-]{36})$/.exec(again.location!)![1]!;
    const j = (
      await db.execute<Record<string, unknown>>(sql`
      SELECT types, sources, from_ts, to_ts FROM replay_jobs WHERE id = ${one}::uuid`)
    ).rows[0]!;
    expect(j).toMatchObject({ types: ["order.paid"], sources: ["shop"] });
    expect(new Date(j.from_ts as string).toISOString()).toBe("2026-03-01T10:00:00.123Z");
    expect(new Date(j.to_ts as string).toISOString()).toBe("2026-03-01T10:00:00.124Z");
  });

  it("destinations: breaker, success rate and latency over the hour, last errors, no credentials in the URL", async () => {
    const { env, db } = await setup({
      DESTINATIONS: JSON.stringify([
        { name: "crm", url: "https://user:pw@crm.example/hooks?token=s3cret", filter: {} },
      ]),
    });
    const eventId = crypto.randomUUID();
    for (const [i, ms, err] of [
      [1, 10, null],
      [2, 20, null],
      [3, 30, "HTTP 503"],
      [4, 40, null],
    ] as const)
      await db.execute(sql`
        INSERT INTO delivery_attempts (event_id, destination, attempt, status_code, error, duration_ms, at)
        VALUES (${eventId}::uuid, 'crm', ${i}, ${err ? 503 : 200}, ${err}, ${ms}, now() - ${i} * interval '1 minute')`);
    await db.execute(sql`
      INSERT INTO destination_breakers (destination, state, failures, opened_at, next_probe_at, cooldown_ms)
      VALUES ('crm', 'open', 5, now(), now() + interval '30 seconds', 30000)`);
    const c = await signedIn(env);
    const page = await c.req("GET", "/dashboard/destinations");
    expect(page.text).toContain("https://crm.example");
    expect(page.text).not.toContain("/hooks");
    expect(page.text).not.toContain("s3cret");
    expect(page.text).not.toContain("pw@");
    expect(page.text).toContain('<span class="badge open">open</span>');
    expect(page.text).toContain("75.0%");
    expect(page.text).toContain("3 of 4 deliveries");
    expect(page.text).toContain("20 ms");
    expect(page.text).toContain("HTTP 503");
    const overview = await c.req("GET", "/dashboard");
    expect(overview.text).toContain('href="/dashboard/destinations#dest-crm"');
  });

  it("overview works on the Postgres backend too, with its lanes", async () => {
    const { env } = await setup({
      EVENT_BACKEND: "postgres",
      UPSTASH_REDIS_REST_URL: undefined,
      UPSTASH_REDIS_REST_TOKEN: undefined,
    });
    const c = await signedIn(env);
    const page = await c.req("GET", "/dashboard");
    expect(page.status).toBe(200);
    expect(page.text).toContain("pg:events");
    expect(page.text).toContain("pg:replay");
  });
});

describe("dashboard parked scopes", () => {
  const make = rigsClosedAfterEach();
  const TRIGGER = "dash-ordered";
  afterEach(() => {
    defaultTriggers.unregister(TRIGGER);
  });

  /**
   * A scope parked the real way: an ordered trigger (on_dead "hold") whose handler fails the
   * scope's first event until `heal()`, run by the consumer until that head is held in the
   * DLQ with the other `behind` events waiting. The worker's registry has the trigger too, as
   * in a deployment (the page names the trigger from it).
   */
  async function parked(behind = 2) {
    const r = await make("redis", {
      ADMIN_TOKEN: ADMIN,
      METRICS_TOKEN: READ,
      EVENT_MAX_ATTEMPTS: "2",
      ORDERED_RECHECK_MS: "10",
      ORDERED_SLEEP_MS: "3000",
    });
    const scope = `held-${crypto.randomUUID().slice(0, 8)}`;
    const evs = Array.from({ length: behind + 1 }, () => event({ type: "dash.ordered", source: scope }));
    const head = evs[0]!.id;
    let healed = false;
    const spec: TriggerSpec = {
      name: TRIGGER,
      ordered: true,
      onDead: "hold",
      filter: f.type("dash.ordered"),
      handler: (ctx) => {
        if (ctx.event.id === head && !healed) throw new Error("ledger refused the head");
      },
    };
    r.triggers.register(spec);
    defaultTriggers.register(spec);
    await publishInOrder(r, evs);
    await drain(r, 1, async () => (await listParked(r.db.db)).some((p) => p.status === "dlq"));
    return { r, scope, head, evs, heal: () => void (healed = true) };
  }

  const parkedRows = async (r: { env: Env }) =>
    (await call(r.env, "GET", "/scopes/parked", { token: ADMIN })).body as {
      count: number;
      scopes: Array<{ scope: string; head: { id: string; status: string } }>;
    };

  it("shows a parked scope with its head, error and waiting count, needs sign-in, and retries its head", async () => {
    const { r, scope, head, heal } = await parked();

    const anonymous = new Client(r.env);
    expect(await anonymous.req("GET", "/dashboard/scopes")).toMatchObject({
      status: 303,
      location: `/dashboard/login?next=${encodeURIComponent("/dashboard/scopes")}`,
    });
    expect((await anonymous.req("POST", "/dashboard/scopes/retry", { form: { scope } })).status).toBe(401);

    const c = await signedIn(r.env);
    const page = await c.req("GET", "/dashboard/scopes");
    expect(page.status).toBe(200);
    const row = /<tbody>(.*?)<\/tbody>/s.exec(page.text)![1]!;
    expect(row).toContain(`<td class="mono">${scope}</td>`);
    expect(row).toContain(`<span class="mono">${TRIGGER}</span>`);
    expect(row).toContain(`href="/dashboard/events/${head}"`);
    expect(row).toContain('<span class="badge dlq">dlq</span>');
    expect(row).toContain(`<td class="err">${TRIGGER}: ledger refused the head</td>`);
    expect(row).toContain('<td class="num">2</td>');
    expect(row).toContain('action="/dashboard/scopes/retry"');
    expect(row).toContain('action="/dashboard/scopes/discard"');
    const overview = await c.req("GET", "/dashboard");
    expect(overview.text).toMatch(
      /<dt>Parked scopes<\/dt><dd><a href="\/dashboard\/scopes">1<\/a><small>2 waiting, 1 held<\/small>/,
    );
    expect(overview.text).toContain('<div class="tile degraded"><dt>Parked scopes</dt>');

    // A read-only session sees it, and its posts are refused.
    const reader = await signedIn(r.env, READ);
    const seen = await reader.req("GET", "/dashboard/scopes");
    expect(seen.text).toContain(`<td class="mono">${scope}</td>`);
    expect([...seen.text.matchAll(/<form method="post" action="([^"]+)"/g)].map((m) => m[1])).toEqual([
      "/dashboard/logout",
    ]);
    expect((await reader.act("/dashboard/scopes/retry", { scope })).status).toBe(403);

    // Bad requests are clear problems and change nothing.
    const unknown = await c.act("/dashboard/scopes/retry", { scope: `${scope}-nope` });
    expect(unknown.status).toBe(404);
    expect(unknown.text).toContain("Not parked");
    const noScope = await c.act("/dashboard/scopes/retry");
    expect(noScope.status).toBe(422);
    expect(noScope.text).toContain("<code>/scope</code>");
    const noReason = await c.act("/dashboard/scopes/discard", { scope, reason: "  " });
    expect(noReason.status).toBe(422);
    expect(noReason.text).toContain("<code>/reason</code>");
    expect((await parkedRows(r)).scopes).toMatchObject([{ scope, head: { id: head, status: "dlq" } }]);

    const retried = await c.act("/dashboard/scopes/retry", { scope });
    expect(retried).toMatchObject({ status: 303, location: "/dashboard/scopes?flash=head-retried" });
    expect((await c.req("GET", retried.location!)).text).toContain("Head sent back for processing");
    expect(await statusOf(r.db.db, head)).toMatchObject({ status: "pending" });
    heal();
    await drain(r, 1);
    expect(await parkedRows(r)).toEqual({ count: 0, scopes: [] });
    const done = await r.rows<{ status: string }>(
      sql`SELECT status::text AS status FROM events WHERE source = ${scope}`,
    );
    expect(done.map((x) => x.status)).toEqual(["completed", "completed", "completed"]);
    expect((await c.req("GET", "/dashboard/scopes")).text).toContain("No scope is parked.");
  });

  it("discards a parked scope's head with a reason, and the scope resumes with the next event", async () => {
    const { r, scope, head, evs } = await parked(1);
    const c = await signedIn(r.env);
    const discarded = await c.act("/dashboard/scopes/discard", { scope, reason: "poison, dropped" });
    expect(discarded).toMatchObject({ status: 303, location: "/dashboard/scopes?flash=head-discarded" });
    expect(await statusOf(r.db.db, head)).toEqual({ status: "discarded", discard_reason: "poison, dropped" });
    expect(await parkedRows(r)).toEqual({ count: 0, scopes: [] });
    expect((await c.act("/dashboard/scopes/discard", { scope, reason: "again" })).status).toBe(404);
    await drain(r, 1);
    expect(await statusOf(r.db.db, evs[1]!.id)).toMatchObject({ status: "completed" });
  });
});

describe("minuteSeries", () => {
  it("buckets accepted by timestamp, completed by processed_at, DLQ moves by updated_at", async () => {
    const { db } = await setup();
    const now = new Date("2026-03-01T12:00:30Z");
    const at = (m: number, s = 10) =>
      new Date(Date.parse("2026-03-01T12:00:00Z") - m * 60_000 + s * 1000).toISOString();
    await insert(db, [
      { ts: at(5), processed: at(3) },
      { ts: at(5, 50), processed: at(5, 55) },
      { ts: at(5), meta: { causation_id: crypto.randomUUID() }, processed: at(5, 20) },
      { ts: at(2), status: "dlq", error: "x", updated: at(1), processed: at(1) },
      { ts: at(30), processed: at(0) }, // completed in the window, stamped within the slack
      { ts: at(200), processed: at(0) }, // stamped before the slack: not counted
      { ts: at(70) }, // before the window
    ]);
    const s = await minuteSeries(db, now, 60, 60);
    expect(s).toHaveLength(60);
    expect(s[59]!.minute).toBe("2026-03-01T12:00:00.000Z");
    const by = Object.fromEntries(
      s.filter((m) => m.accepted || m.completed || m.dlq).map((m) => [m.minute.slice(11, 16), m]),
    );
    expect(by).toEqual({
      "11:30": { minute: "2026-03-01T11:30:00.000Z", accepted: 1, completed: 0, dlq: 0 },
      "11:55": { minute: "2026-03-01T11:55:00.000Z", accepted: 3, completed: 2, dlq: 0 },
      "11:57": { minute: "2026-03-01T11:57:00.000Z", accepted: 0, completed: 1, dlq: 0 },
      "11:58": { minute: "2026-03-01T11:58:00.000Z", accepted: 1, completed: 0, dlq: 0 },
      "11:59": { minute: "2026-03-01T11:59:00.000Z", accepted: 0, completed: 0, dlq: 1 },
      "12:00": { minute: "2026-03-01T12:00:00.000Z", accepted: 0, completed: 1, dlq: 0 },
    });
  });
});
