/**
 * The operator dashboard in a real browser: headless Chromium (Debian's `chromium`, driven
 * by playwright-core) against the real worker under `wrangler dev`, which talks to the real
 * local Redis and Postgres through the stand-ins (local/), on a throwaway migrated database
 * and a unique Redis prefix, with two destinations (one ordered) pointed at a controllable
 * receiver.
 *
 * Sign in (a wrong token refused), an event posted through the API appears and its page
 * shows its attempts, a DLQ event retried from the page ends completed, a scope of an ordered
 * destination parked by its held head resumes after "Retry head" on the Parked scopes page,
 * a replay started from the page reaches done with its progress bar (updated by the page's own script),
 * actions without the anti-forgery token or from another site are refused, a read-only
 * session has no actions, sign out. Screenshots of every page go to DASHBOARD_SCREENSHOTS
 * (docs/dashboard refreshes the README's and docs/operations.md's), else a temporary folder.
 *
 * Skipped only when Chromium is missing outside CI (`npm test` installs it when it can, by
 * .ci/install-chromium; the run then ends with a line saying what was skipped).
 */
import { randomBytes, randomUUID } from "node:crypto";
import fs from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { migrateDatabase } from "../../local/migrate";
import { type NeonProxy, startNeonProxy } from "../../local/neon-proxy";
import { CHROMIUM, skipsWithout, withDatabase } from "../../local/services";
import { type Gateway, startUpstashGateway } from "../../local/upstash-gateway";
import { startWranglerDev, type WranglerDev } from "../../local/wrangler-dev";
import { type Receiver, startReceiver } from "../support/receiver";

const ADMIN_TOKEN = `dash-admin-${randomBytes(12).toString("hex")}`;
const METRICS_TOKEN = `dash-read-${randomBytes(12).toString("hex")}`;
const API_KEY = `dash-key-${randomBytes(8).toString("hex")}`;
const DB_NAME = `reflex_dash_${randomBytes(4).toString("hex")}`;
const PREFIX = `dash:${randomBytes(4).toString("hex")}`;
const HOOK = "dash"; // the receiver id of the destination
const LEDGER = "dash-ledger"; // the receiver id of the ordered destination (on_dead "hold")
const SHOTS = path.resolve(
  process.env.DASHBOARD_SCREENSHOTS ?? fs.mkdtempSync(path.join(os.tmpdir(), "reflex-dash-shots-")),
);

const services: {
  gateway?: Gateway;
  proxy?: NeonProxy;
  admin?: pg.Client;
  db?: pg.Client;
  receiver?: Receiver;
  wrangler?: WranglerDev;
  attacker?: Server;
  browser?: BrowserContext;
  profile?: string;
} = {};
let base = "";
let page: Page;
let redisToken = "";
/** Content-Security-Policy violations and script errors seen by the page, over the whole run. */
const broken: string[] = [];

async function runCron(cron: string): Promise<void> {
  const res = await fetch(`${base}/__scheduled?cron=${encodeURIComponent(cron).replace(/%20/g, "+")}`);
  expect(res.status, await res.text()).toBe(200);
}

/** Runs the consumer cron until `check` holds (retries are due a second after a failure). */
async function drainUntil(check: () => Promise<boolean>, cron = "* * * * *", timeoutMs = 45_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error(`condition not reached within ${timeoutMs} ms`);
    await runCron(cron);
    await new Promise((r) => setTimeout(r, 700));
  }
}

const statusOf = async (id: string) =>
  (await services.db!.query<{ status: string }>("SELECT status FROM events WHERE id = $1", [id])).rows[0]?.status;

async function receiverMode(mode: "ok" | "always-500", hook = HOOK) {
  await fetch(`${services.receiver!.url}/__control/${hook}`, { method: "POST", body: JSON.stringify({ mode }) });
}

/** Long lists are shown as far as the window goes; the other pages whole. */
async function shot(name: string, fullPage = true) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage });
}

/**
 * History for the pictures: an hour of completed traffic of a few types and sources (a
 * gentle wave per minute), some of it dead with an error, so the charts and the DLQ groups
 * have something to show. Written straight into Postgres: the pages read history.
 */
async function seedHistory() {
  await services.db!.query(`
    INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts, last_error, errors,
                        created_at, updated_at, processed_at)
    SELECT gen_random_uuid(), t.type, t.source, ts, jsonb_build_object('order_id', 'o-' || n, 'total_cents', n * 7),
           jsonb_build_object('trace_id', md5(n::text)), t.source,
           CASE WHEN n % 241 = 0 THEN 'dlq' ELSE 'completed' END::event_status,
           CASE WHEN n % 241 = 0 THEN 3 ELSE 1 END,
           CASE WHEN n % 241 = 0 THEN t.err END,
           CASE WHEN n % 241 = 0 THEN jsonb_build_array(jsonb_build_object('attempt', 3, 'error', t.err, 'at', ts)) ELSE '[]' END,
           ts, ts + interval '2 seconds', ts + interval '2 seconds'
      FROM generate_series(1, 4000) AS n,
           LATERAL (SELECT now() - (n / 4000.0) * interval '59 minutes' - interval '20 seconds' AS ts) s,
           LATERAL (SELECT (ARRAY['order.created', 'order.paid', 'github.push', 'invoice.sent'])[1 + n % 4] AS type,
                           (ARRAY['shopify', 'shopify', 'github', 'billing'])[1 + n % 4] AS source,
                           (ARRAY['handler crm-sync: timeout after 5000 ms', 'handler ledger: duplicate key order_id',
                                  'handler ci-notify: HTTP 502 from chat webhook',
                                  'handler mailer: template invoice_v2 not found'])[1 + n % 4] AS err) t
     WHERE n % 100 < 55 + 40 * sin(n / 420.0)`);
}

describe.skipIf(skipsWithout(CHROMIUM))("dashboard in headless Chromium against wrangler dev", () => {
  beforeAll(async () => {
    fs.mkdirSync(SHOTS, { recursive: true });
    redisToken = randomBytes(16).toString("hex");
    const [redisHost, redisPort] = inject("redisAddress").split(":");
    services.gateway = await startUpstashGateway({ token: redisToken, redisHost, redisPort: Number(redisPort) });
    const adminUrl = inject("pgAdminUrl");
    const server = new URL(adminUrl);
    services.proxy = await startNeonProxy({ pgHost: server.hostname, pgPort: Number(server.port || 5432) });
    services.admin = new pg.Client({ connectionString: adminUrl });
    await services.admin.connect();
    await services.admin.query(`CREATE DATABASE ${DB_NAME}`);
    const dbUrl = withDatabase(adminUrl, DB_NAME);
    await migrateDatabase(dbUrl, services.proxy.address);
    services.db = new pg.Client({ connectionString: dbUrl });
    await services.db.connect();
    await seedHistory();
    services.receiver = await startReceiver();
    services.wrangler = await startWranglerDev({
      testScheduled: true,
      ready: "/health",
      vars: {
        UPSTASH_REDIS_REST_URL: services.gateway.url,
        UPSTASH_REDIS_REST_TOKEN: redisToken,
        DATABASE_URL: dbUrl,
        NEON_WS_PROXY: services.proxy.address,
        ADMIN_TOKEN,
        METRICS_TOKEN,
        API_KEYS: API_KEY,
        REDIS_PREFIX: PREFIX,
        EVENT_MAX_ATTEMPTS: "2",
        EVENT_RETRY_BASE_DELAY: "1",
        DESTINATIONS: JSON.stringify([
          { name: "fulfilment", url: `${services.receiver.url}/r/${HOOK}`, filter: { types: ["timer.*"] } },
          {
            name: "ledger",
            url: `${services.receiver.url}/r/${LEDGER}`,
            filter: { types: ["lifecycle"], sources: ["books"] },
            ordered: true,
            on_dead: "hold",
          },
        ]),
        LOG_LEVEL: "error",
      },
    });
    base = services.wrangler.url;

    // Another site ("localhost" is not "127.0.0.1"), serving a form aimed at the dashboard.
    services.attacker = createServer((req, res) => {
      const target = new URL(req.url ?? "/", "http://x").searchParams.get("target") ?? "";
      res.writeHead(200, { "content-type": "text/html" });
      res.end(
        `<!doctype html><form method="post" action="${target}"><input name="reason" value="forged">` +
          `<input name="back" value="/dashboard/dlq"><button id="go">go</button></form>`,
      );
    });
    await new Promise<void>((r) => services.attacker!.listen(0, "127.0.0.1", r));

    services.profile = fs.mkdtempSync(path.join(os.tmpdir(), "reflex-dash-chromium-"));
    services.browser = await chromium.launchPersistentContext(services.profile, {
      executablePath: CHROMIUM.find() ?? "/usr/bin/chromium",
      headless: true,
      viewport: { width: 1280, height: 860 },
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    page = services.browser.pages()[0] ?? (await services.browser.newPage());
    page.setDefaultTimeout(20_000);
    page.on("console", (m) => {
      if (/content security policy/i.test(m.text())) broken.push(m.text());
    });
    page.on("pageerror", (e) => broken.push(`${page.url()}: ${e.message}`));
  }, 180_000);

  afterAll(async () => {
    const steps: Array<() => unknown> = [
      () => services.browser?.close(),
      () => services.wrangler?.stop(),
      () => services.attacker && new Promise((r) => services.attacker!.close(r)),
      () => services.receiver?.close(),
      () => services.db?.end(),
      () =>
        services.gateway &&
        fetch(services.gateway.url, {
          method: "POST",
          headers: { authorization: `Bearer ${redisToken}` },
          body: JSON.stringify([
            "EVAL",
            "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 0",
            0,
            `${PREFIX}:*`,
          ]),
        }),
      () => services.gateway?.close(),
      () => services.proxy?.close(),
      () => services.admin?.query(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`),
      () => services.admin?.end(),
      () => services.profile && fs.rmSync(services.profile, { recursive: true, force: true }),
    ];
    for (const step of steps)
      await Promise.resolve()
        .then(step)
        .catch(() => {});
  }, 60_000);

  it("sends a browser at / to the sign-in page, and refuses a wrong token", async () => {
    await page.goto(`${base}/`);
    expect(new URL(page.url()).pathname).toBe("/dashboard/login");
    await shot("login");
    await page.fill("input[name=token]", `${ADMIN_TOKEN}-wrong`);
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === "POST"),
      page.click("button"),
    ]);
    expect(res.status()).toBe(403);
    await expect.poll(() => page.textContent("[role=alert]")).toContain("That token is not valid here.");
    expect(await services.browser!.cookies()).toEqual([]);
  });

  it("signs in with the admin token: a signed HttpOnly, Secure, SameSite=Strict session cookie", async () => {
    await page.fill("input[name=token]", ADMIN_TOKEN);
    await page.click("button");
    await page.waitForURL(`${base}/dashboard`);
    expect(await page.textContent("h1")).toBe("Overview");
    const [cookie] = await services.browser!.cookies();
    expect(cookie).toMatchObject({
      name: "__Host-reflex_session",
      httpOnly: true,
      secure: true,
      sameSite: "Strict",
      path: "/",
    });
    const hours = (cookie!.expires * 1000 - Date.now()) / 3_600_000;
    expect(hours).toBeGreaterThan(7.9);
    expect(hours).toBeLessThanOrEqual(8);
    // The seeded hour of traffic is on the charts.
    expect(Number((await page.textContent(".tile dd"))?.replace(/\D/g, ""))).toBeGreaterThan(1500);
    expect(await page.locator("svg.chart rect.bar:not(.empty)").count()).toBeGreaterThan(50);
    await shot("overview");
  });

  let eventId = "";

  it("shows an event posted through the API, and its page lists its failed attempts", async () => {
    await receiverMode("always-500");
    const res = await fetch(`${base}/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ type: "timer.tick", source: "scheduler", timer_name: "nightly-export", tick_count: 7 }),
    });
    expect(res.status).toBe(202);
    eventId = ((await res.json()) as { id: string }).id;
    await drainUntil(async () => (await statusOf(eventId)) === "dlq");

    await page.goto(`${base}/dashboard/events?type=timer.tick`);
    const link = page.locator(`a[href="/dashboard/events/${eventId}"]`);
    await expect.poll(() => link.count()).toBe(1);
    await page.goto(`${base}/dashboard/events`);
    await shot("events", false);

    await page.goto(`${base}/dashboard/events?type=timer.tick`);
    await link.click();
    await page.waitForURL(`${base}/dashboard/events/${eventId}`);
    expect(await page.textContent("h1")).toContain("timer.tick");
    const attempts = page.locator("section[aria-labelledby=attempts-h] tbody tr");
    expect(await attempts.count()).toBe(2);
    for (const row of await attempts.all()) {
      expect(await row.textContent()).toContain("failed");
      expect(await row.textContent()).toContain("destination fulfilment: HTTP 500");
    }
    expect(await page.locator("section[aria-labelledby=deliveries-h] tbody tr").count()).toBe(2);
    expect(await page.textContent("pre.json")).toContain('"timer_name": "nightly-export"');
    await shot("event");
  });

  it("retries a DLQ event from the DLQ page, and the event ends completed", async () => {
    await receiverMode("ok");
    await page.goto(`${base}/dashboard/dlq`);
    const row = page.locator(`#dlq-${eventId}`);
    expect(await row.count()).toBe(1);
    expect(await page.locator("section[aria-labelledby=groups-h] tbody tr").count()).toBeGreaterThan(3);
    await shot("dlq", false);
    await row.getByRole("button", { name: "Retry" }).click();
    await page.waitForURL(/\/dashboard\/dlq\?flash=retried$/);
    expect(await page.textContent("[role=status]")).toContain("Sent back for processing");
    expect(await page.locator(`#dlq-${eventId}`).count()).toBe(0);

    await drainUntil(async () => (await statusOf(eventId)) === "completed");
    await page.goto(`${base}/dashboard/events/${eventId}`);
    expect(await page.textContent("h1 .badge")).toBe("completed");
    const outcomes = await page
      .locator("section[aria-labelledby=attempts-h] tbody tr td:nth-child(2)")
      .allTextContents();
    expect(outcomes).toEqual(["failed", "failed", "completed"]);
  });

  it("shows a scope parked by its held head, and Retry head resumes it", async () => {
    await receiverMode("always-500", LEDGER);
    const post = async (n: number) => {
      const res = await fetch(`${base}/events`, {
        method: "POST",
        headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ type: "lifecycle", source: "books", action: "started", details: { n } }),
      });
      expect(res.status).toBe(202);
      return ((await res.json()) as { id: string }).id;
    };
    // One after the other: the first is the scope's head, the second waits behind it.
    const head = await post(1);
    const next = await post(2);
    const parked = async () =>
      (
        await services.db!.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM ordered_events WHERE scope = 'books' AND parked_at IS NOT NULL",
        )
      ).rows[0]!.n;
    await drainUntil(async () => (await statusOf(head)) === "dlq" && (await parked()) === 1);
    expect(await statusOf(next)).toBe("pending");

    await page.goto(`${base}/dashboard`);
    await page.click("nav.main >> text=Parked scopes");
    await page.waitForURL(`${base}/dashboard/scopes`);
    const row = page.locator("tbody tr", { hasText: "books" });
    expect(await row.count()).toBe(1);
    expect(await row.locator('a[href="/dashboard/destinations#dest-ledger"]').textContent()).toBe("destination ledger");
    expect(await row.locator(`a[href="/dashboard/events/${head}"]`).count()).toBe(1);
    expect(await row.locator(".err").textContent()).toContain("destination ledger: HTTP 500");
    expect(await row.locator("td.num").textContent()).toBe("1");
    await shot("scopes");

    await receiverMode("ok", LEDGER);
    await row.getByRole("button", { name: "Retry head" }).click();
    await page.waitForURL(/\/dashboard\/scopes\?flash=head-retried$/);
    expect(await page.textContent("[role=status]")).toContain("Head sent back for processing");
    await drainUntil(async () => (await statusOf(head)) === "completed" && (await statusOf(next)) === "completed");
    const api = await fetch(`${base}/scopes/parked`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(await api.json()).toEqual({ count: 0, scopes: [] });
    await page.reload();
    expect(await page.textContent("tbody")).toContain("No scope is parked.");
  });

  it("starts a replay from the page, whose progress bar follows it to done", async () => {
    await page.goto(`${base}/dashboard/replays`);
    await page.fill("input[name=types]", "timer.tick");
    await page.click("text=Start replay");
    await page.waitForURL(/\/dashboard\/replays\?flash=replay-started#job-/);
    const jobId = new URL(page.url()).hash.slice("#job-".length);
    const row = page.locator(`#job-${jobId}`);
    expect(await row.locator(".badge").textContent()).toBe("scheduled");

    // The runner cron advances the job and drains its lane; the page is not reloaded: its
    // script refreshes the list while a job is live.
    await drainUntil(async () => {
      const r = await services.db!.query("SELECT status FROM replay_jobs WHERE id = $1", [jobId]);
      return r.rows[0]?.status === "done";
    }, "*/2 * * * *");
    await expect.poll(() => row.locator(".badge").textContent(), { timeout: 15_000 }).toBe("done");
    expect(await row.locator("progress").getAttribute("value")).toBe("1");
    expect(await row.textContent()).toContain("1 of 1 scanned · 1 republished");
    await shot("replays");

    const copy = await services.db!.query<{ id: string }>("SELECT id FROM events WHERE meta ->> 'replay' = $1", [
      jobId,
    ]);
    expect(copy.rows).toHaveLength(1);
    await page.goto(`${base}/dashboard/events/${eventId}`);
    expect(await page.locator(`a[href="/dashboard/events/${copy.rows[0]!.id}"]`).count()).toBe(1);
  });

  it("shows each destination's breaker, success rate and last errors", async () => {
    await page.goto(`${base}/dashboard/destinations`);
    const section = page.locator("#dest-fulfilment");
    expect(await section.locator("h2 .badge").textContent()).toBe("closed");
    expect(await section.textContent()).toMatch(/2 of 4 deliveries/);
    expect(await section.locator("tbody tr").count()).toBe(2);
    await shot("destinations");
  });

  it("refuses an action without the anti-forgery token, and one sent from another site", async () => {
    const id = randomUUID();
    await services.db!.query(
      `INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts, last_error)
       VALUES ($1, 'order.created', 'shopify', now(), '{}', '{"trace_id":"t"}', 'shopify', 'dlq', 3, 'boom')`,
      [id],
    );
    await page.goto(`${base}/dashboard/dlq`);
    const status = await page.evaluate(async (eid) => {
      const r = await fetch(`/dashboard/dlq/${eid}/retry`, {
        method: "POST",
        body: new URLSearchParams({ back: "/dashboard/dlq" }),
      });
      return r.status;
    }, id);
    expect(status).toBe(403);

    // The right token, but from another origin: the origin check refuses it.
    const csrf = await page.getAttribute("form[action='/dashboard/logout'] input[name=_csrf]", "value");
    const cookie = (await services.browser!.cookies()).map((c) => `${c.name}=${c.value}`).join("; ");
    const forged = await fetch(`${base}/dashboard/dlq/${id}/retry`, {
      method: "POST",
      redirect: "manual",
      headers: { cookie, origin: "http://evil.example", "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _csrf: csrf!, back: "/dashboard/dlq" }),
    });
    expect(forged.status).toBe(403);

    // A form on another site, submitted in this browser (signed in here).
    const port = (services.attacker!.address() as AddressInfo).port;
    await page.goto(`http://localhost:${port}/?target=${encodeURIComponent(`${base}/dashboard/dlq/${id}/discard`)}`);
    const [res] = await Promise.all([page.waitForResponse((r) => r.request().method() === "POST"), page.click("#go")]);
    expect([401, 403]).toContain(res.status());
    expect(await statusOf(id)).toBe("dlq");
  });

  it("gives a read-only session the views and no actions, and refuses its posts", async () => {
    await page.goto(`${base}/dashboard`);
    await page.click("text=Sign out");
    await page.fill("input[name=token]", METRICS_TOKEN);
    await page.click("button");
    await page.waitForURL(`${base}/dashboard`);
    expect(await page.textContent(".who .badge")).toBe("read-only");
    for (const p of ["/dashboard/dlq", "/dashboard/replays", `/dashboard/events/${eventId}`]) {
      await page.goto(`${base}${p}`);
      expect(await page.locator("form[method=post]:not([action='/dashboard/logout'])").count(), p).toBe(0);
    }
    const csrf = await page.getAttribute("form[action='/dashboard/logout'] input[name=_csrf]", "value");
    const status = await page.evaluate(
      async ([token]) =>
        (await fetch("/dashboard/dlq/retry-all", { method: "POST", body: new URLSearchParams({ _csrf: token! }) }))
          .status,
      [csrf],
    );
    expect(status).toBe(403);
  });

  it("signs out: the cookie is gone and the pages ask to sign in again", async () => {
    await page.click("text=Sign out");
    await page.waitForURL(`${base}/dashboard/login?flash=signed-out`);
    expect(await page.textContent("[role=status]")).toBe("Signed out.");
    expect(await services.browser!.cookies()).toEqual([]);
    await page.goto(`${base}/dashboard/dlq`);
    expect(new URL(page.url()).pathname).toBe("/dashboard/login");
  });

  it("broke no Content-Security-Policy rule and threw no script error on any page", () => {
    expect(broken).toEqual([]);
  });
});
