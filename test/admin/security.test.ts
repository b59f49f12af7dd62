/**
 * Issue 9, security half: hostile callers against the real worker (fetch handler, real Redis
 * and Postgres through the stand-ins).
 *
 *  - every admin route, read from the app's own OpenAPI document (so a new route cannot be
 *    forgotten), refuses a missing token (401) and a wrong one (403);
 *  - webhook signature attacks: tampered body, another source's signature, replayed delivery
 *    id, stale and future timestamps, header case and whitespace tricks - refused, nothing
 *    stored, and the delivery id not used up by the attempt;
 *  - deeply nested and very wide JSON within the size limit: answered (4xx or 2xx) without
 *    crashing the worker, which still serves /health afterwards; what is accepted is stored;
 *  - payloads carrying SQL and Redis command text: stored verbatim and harmless.
 * No timing assertions: "promptly" means the request returns at all.
 */

import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import type { Env } from "../../src/config";
import { loadConfig } from "../../src/config";
import { openDb } from "../../src/db/client";
import { openDestinations } from "../../src/destinations";
import { filters as f } from "../../src/triggers";
import { globMatcher } from "../../src/triggers/filters";
import { TriggerRegistry } from "../../src/triggers/registry";
import { ADMIN_TOKEN, call as adminCall } from "../support/admin";
import { freshEnv } from "../support/env";
import { fetchThrough } from "../support/fetch";
import { post, streamEvents, streamLength } from "../support/ingest";
import { AS_CONFIGURED, type Rig, rig } from "../support/rig";
import {
  githubHeaders,
  hmacDigest,
  SECRETS,
  SOURCES,
  standardHeaders,
  stripeEvent,
  stripeHeaders,
} from "../support/webhooks";

const API_KEY = "security-test-key-0123456789";

interface Reply {
  status: number;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  headers: Headers;
}

/** One request through the worker's fetch handler. */
async function send(env: Env, req: Request): Promise<Reply> {
  const { res, text, json } = await fetchThrough(env, req);
  return { status: res.status, json: json === undefined ? text : json, headers: res.headers };
}

// ---------------------------------------------------------------------------------------
describe("admin routes need the admin token (every route in /openapi.json that declares it)", () => {
  const KNOWN = [
    "GET /events",
    "GET /events/{id}",
    "GET /events/dlq",
    "POST /events/dlq/{id}/retry",
    "POST /events/dlq/retry",
    "DELETE /events/dlq/{id}",
    "POST /replays",
    "GET /replays",
    "GET /replays/{id}",
    "POST /replays/{id}/cancel",
    "GET /metrics",
  ];

  async function adminRoutes(env: Env): Promise<Array<{ method: string; path: string }>> {
    const doc = (await send(env, new Request("http://reflex.test/openapi.json"))).json as {
      paths: Record<string, Record<string, { security?: Array<Record<string, unknown>> }>>;
    };
    const out: Array<{ method: string; path: string }> = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        if (op.security?.some((s) => "adminToken" in s)) out.push({ method: method.toUpperCase(), path });
      }
    }
    return out;
  }
  const concrete = (path: string) => path.replace(/\{[^}]+\}/g, crypto.randomUUID());

  it("401 without a token, 403 with a wrong one, for each route; the right token gets in", async () => {
    // Dozens of wrong tokens from one address: the throttle (test/admin/ops-trust.test.ts) stays out of it.
    const env = await freshEnv({ ADMIN_TOKEN, API_KEYS: API_KEY, WAKE_QUEUE: undefined, AUTH_FAILURE_LIMIT: "0" });
    const routes = await adminRoutes(env);
    expect(routes.map((r) => `${r.method} ${r.path}`)).toEqual(expect.arrayContaining(KNOWN));
    const wrong: Array<[string, string]> = [
      ["a wrong token", "Bearer wrong-token-0123456789abcdef"],
      ["the token with a character more", `Bearer ${ADMIN_TOKEN}x`],
      ["a prefix of the token", `Bearer ${ADMIN_TOKEN.slice(0, -1)}`],
      ["an ingest API key", `Bearer ${API_KEY}`],
    ];
    const missing: Array<[string, string | null]> = [
      ["no Authorization header", null],
      ["Basic credentials", `Basic ${btoa(`admin:${ADMIN_TOKEN}`)}`],
      ["the bare token", ADMIN_TOKEN],
      ["an empty Bearer", "Bearer "],
      ["two tokens", `Bearer ${ADMIN_TOKEN} ${ADMIN_TOKEN}`],
    ];
    for (const r of routes) {
      const path = concrete(r.path);
      const body = r.method === "POST" ? {} : undefined;
      for (const [what, header] of missing) {
        const a = await adminCall(env, r.method, path, {
          token: null,
          body,
          headers: header === null ? {} : { authorization: header },
        });
        expect(a.status, `${r.method} ${r.path} with ${what}`).toBe(401);
        expect(a.headers.get("www-authenticate"), `${r.method} ${r.path}`).toMatch(/^Bearer /);
        expect(a.body.status).toBe(401);
      }
      for (const [what, header] of wrong) {
        const a = await adminCall(env, r.method, path, { token: null, body, headers: { authorization: header } });
        expect(a.status, `${r.method} ${r.path} with ${what}`).toBe(403);
        expect(JSON.stringify(a.body)).not.toContain(ADMIN_TOKEN);
      }
    }
    // The right token is let through (the routes then answer for themselves).
    expect((await adminCall(env, "GET", "/events")).status).toBe(200);
    expect((await adminCall(env, "GET", `/events/${crypto.randomUUID()}`)).status).toBe(404);
  });

  it("the read-only METRICS_TOKEN reads every GET route and is refused (403) by every action, which stores nothing", async () => {
    const METRICS_TOKEN = "read-only-metrics-token-0123456789";
    const env = await freshEnv({ ADMIN_TOKEN, METRICS_TOKEN, API_KEYS: API_KEY, WAKE_QUEUE: undefined });
    const routes = await adminRoutes(env);
    expect(routes.some((r) => r.method !== "GET")).toBe(true);
    for (const r of routes) {
      const a = await adminCall(env, r.method, concrete(r.path), {
        token: METRICS_TOKEN,
        body: r.method === "POST" ? {} : undefined,
      });
      if (r.method === "GET") expect([200, 404], `${r.method} ${r.path}`).toContain(a.status);
      else {
        expect(a.status, `${r.method} ${r.path}`).toBe(403);
        expect(a.body.detail).toMatch(/read-only/);
      }
    }
    const replays = await adminCall(env, "GET", "/replays");
    expect(replays.body.replays).toEqual([]);
  });

  it("every admin route answers 503 when ADMIN_TOKEN is not configured: never open by default", async () => {
    const env = await freshEnv({ WAKE_QUEUE: undefined });
    for (const r of await adminRoutes(env)) {
      const a = await adminCall(env, r.method, concrete(r.path), { body: r.method === "POST" ? {} : undefined });
      expect(a.status, `${r.method} ${r.path}`).toBe(503);
    }
  });
});

// ---------------------------------------------------------------------------------------
describe("webhook signature attacks are refused, store nothing, and do not use up the delivery id", () => {
  const sources = {
    ...SOURCES,
    "gh-other": { scheme: "github", secret: "another-github-secret-0123" },
    "svix-other": { scheme: "standard-webhooks", secret: SECRETS.standardOther },
  };
  const env = () =>
    freshEnv({ WEBHOOK_SOURCES: JSON.stringify(sources), WAKE_QUEUE: undefined, RATE_LIMIT_SOURCE_REQUESTS: "0" });
  const now = () => Math.floor(Date.now() / 1000);
  const hook = (source: string, body: string, headers: Record<string, string>) =>
    post(`/webhooks/${source}`, body, headers);

  async function refused(e: Env, what: string, req: Request | Promise<Request>) {
    const a = await send(e, await req);
    expect(a.status, `${what}: ${JSON.stringify(a.json)}`).toBe(401);
    expect(a.json.status).toBe(401);
  }

  it("standard-webhooks: tampered body, another source's secret, altered id, stale, future, short tolerance", async () => {
    const e = await env();
    const body = JSON.stringify({ type: "payment.succeeded", amount: 100 });
    const id = "msg_attack_1";
    await refused(e, "tampered body", hook("svix", body.replace("100", "100000"), standardHeaders(body, id)));
    await refused(e, "signed for another source", hook("svix-other", body, standardHeaders(body, id)));
    await refused(
      e,
      "other source's secret",
      hook("svix", body, standardHeaders(body, id, new Date(), SECRETS.standardOther)),
    );
    await refused(
      e,
      "id changed after signing",
      hook("svix", body, { ...standardHeaders(body, "msg_other"), "webhook-id": id }),
    );
    await refused(
      e,
      "stale timestamp (10 min)",
      hook("svix", body, standardHeaders(body, id, new Date(Date.now() - 600_000))),
    );
    await refused(
      e,
      "future timestamp (10 min)",
      hook("svix", body, standardHeaders(body, id, new Date(Date.now() + 600_000))),
    );
    await refused(
      e,
      "older than the source's 60 s",
      hook("strict", body, standardHeaders(body, id, new Date(Date.now() - 120_000))),
    );
    const signed = standardHeaders(body, id);
    await refused(
      e,
      "timestamp changed after signing",
      hook("svix", body, { ...signed, "webhook-timestamp": String(now() - 1) }),
    );
    await refused(e, "no signature", hook("svix", body, { "webhook-id": id, "webhook-timestamp": String(now()) }));
    expect(await streamLength(e)).toBe(0);
    // The genuine delivery with that id still gets in: the attacks did not burn it.
    const ok = await send(e, hook("svix", body, standardHeaders(body, id)));
    expect(ok.status).toBe(202);
    expect(await streamLength(e)).toBe(1);
  });

  it("github, stripe, hmac: tampered body, another source's secret, timestamp tricks", async () => {
    const e = await env();
    const body = JSON.stringify({ ref: "refs/heads/main", after: "abc" });
    const delivery = crypto.randomUUID();
    await refused(
      e,
      "github tampered",
      githubHeaders(body, delivery).then((h) => hook("gh", body.replace("main", "evil"), h)),
    );
    await refused(
      e,
      "github signed for gh, sent to gh-other",
      githubHeaders(body, delivery).then((h) => hook("gh-other", body, h)),
    );
    await refused(
      e,
      "github sha1 header only",
      hook("gh", body, {
        "x-github-delivery": delivery,
        "x-github-event": "push",
        "x-hub-signature": `sha1=${"0".repeat(40)}`,
      }),
    );

    const evt = stripeEvent();
    const t = now();
    await refused(
      e,
      "stripe tampered",
      stripeHeaders(evt, t).then((h) => hook("billing", evt.replace("4200", "1"), h)),
    );
    await refused(
      e,
      "stripe stale (10 min)",
      stripeHeaders(evt, t - 600).then((h) => hook("billing", evt, h)),
    );
    await refused(
      e,
      "stripe future (10 min)",
      stripeHeaders(evt, t + 600).then((h) => hook("billing", evt, h)),
    );
    const stale = (await stripeHeaders(evt, t - 600))["stripe-signature"]!;
    // A fresh t= put in front of an old signature: the signature covers t, so it fails.
    await refused(
      e,
      "stripe fresh t on an old signature",
      hook("billing", evt, { "stripe-signature": stale.replace(/t=\d+/, `t=${t}`) }),
    );
    // Two t= parameters, the old one signed and a fresh one added after it.
    await refused(e, "stripe two timestamps", hook("billing", evt, { "stripe-signature": `${stale},t=${t}` }));
    await refused(
      e,
      "stripe signed with another secret",
      stripeHeaders(evt, t, "whsec_not_the_secret").then((h) => hook("billing", evt, h)),
    );

    const hbody = JSON.stringify({ order: 1 });
    await refused(
      e,
      "hmac tampered",
      hook("shop", JSON.stringify({ order: 2 }), {
        "x-shop-hmac": hmacDigest(hbody, "base64"),
        "x-shop-delivery": "d-1",
      }),
    );
    await refused(
      e,
      "hmac another secret",
      hook("shop", hbody, { "x-shop-hmac": hmacDigest(hbody, "base64", "not-the-secret"), "x-shop-delivery": "d-1" }),
    );
    expect(await streamLength(e)).toBe(0);

    expect((await send(e, hook("gh", body, await githubHeaders(body, delivery)))).status).toBe(202);
    expect((await send(e, hook("billing", evt, await stripeHeaders(evt)))).status).toBe(202);
    expect(
      (await send(e, hook("shop", hbody, { "x-shop-hmac": hmacDigest(hbody, "base64"), "x-shop-delivery": "d-1" })))
        .status,
    ).toBe(202);
    expect(await streamLength(e)).toBe(3);
  });

  it("a replayed delivery (same id, even re-signed or with another body) is a duplicate naming the first event; nothing more is stored", async () => {
    const e = await env();
    const body = JSON.stringify({ n: 1 });
    const captured = standardHeaders(body, "msg_replayed");
    const first = await send(e, hook("svix", body, captured));
    expect(first.status).toBe(202);
    // Byte-for-byte replay of the captured request, three times.
    for (let i = 0; i < 3; i++)
      expect((await send(e, hook("svix", body, captured))).json).toEqual({ id: first.json.id, status: "duplicate" });
    // The same delivery id with another body, validly signed: still the first event.
    const other = JSON.stringify({ n: 2, amount: 1e9 });
    expect((await send(e, hook("svix", other, standardHeaders(other, "msg_replayed")))).json).toEqual({
      id: first.json.id,
      status: "duplicate",
    });
    const evt = stripeEvent();
    const s1 = await send(e, hook("billing", evt, await stripeHeaders(evt)));
    expect((await send(e, hook("billing", evt, await stripeHeaders(evt)))).json).toEqual({
      id: s1.json.id,
      status: "duplicate",
    });
    const stored = await streamEvents(e);
    expect(stored).toHaveLength(2);
    expect(stored.find((x) => x.source === "svix")!.body).toEqual({ n: 1 });
  });

  it("header case and whitespace: names are case-insensitive, but the signed bytes and values are not", async () => {
    const e = await env();
    const compact = JSON.stringify({ a: 1, b: [1, 2] });
    // The genuine signature over the compact body, the same JSON sent pretty-printed / with a newline / a BOM.
    for (const [what, variant] of [
      ["pretty-printed", JSON.stringify({ a: 1, b: [1, 2] }, null, 2)],
      ["trailing newline", `${compact}\n`],
      ["leading space", ` ${compact}`],
      ["BOM", `\uFEFF${compact}`],
    ] as const) {
      await refused(e, `standard-webhooks, ${what}`, hook("svix", variant, standardHeaders(compact, `msg_ws_${what}`)));
      await refused(
        e,
        `github, ${what}`,
        githubHeaders(compact).then((h) => hook("gh", variant, h)),
      );
    }
    const gh = await githubHeaders(compact);
    const sig = gh["x-hub-signature-256"]!;
    await refused(
      e,
      "github signature with inner space",
      hook("gh", compact, { ...gh, "x-hub-signature-256": sig.replace("=", "= ") }),
    );
    await refused(
      e,
      "github two signatures in one header",
      hook("gh", compact, { ...gh, "x-hub-signature-256": `sha256=${"a".repeat(64)}, ${sig}` }),
    );
    await refused(
      e,
      "hmac prefix then space",
      hook("plain", compact, { "x-signature": `sha256= ${hmacDigest(compact, "hex")}` }),
    );
    const sw = standardHeaders(compact, "msg_tab");
    await refused(
      e,
      "standard-webhooks tab inside the signature",
      hook("svix", compact, { ...sw, "webhook-signature": sw["webhook-signature"]!.replace(",", ",\t") }),
    );
    expect(await streamLength(e)).toBe(0);

    // Header NAMES in any case are the same header (HTTP): a genuine delivery in odd case is accepted.
    const odd = standardHeaders(compact, "msg_case");
    const upper = Object.fromEntries(Object.entries(odd).map(([k, v]) => [k.toUpperCase(), v]));
    expect((await send(e, hook("svix", compact, upper))).status).toBe(202);
    const gh2 = await githubHeaders(compact);
    expect(
      (
        await send(
          e,
          hook("gh", compact, {
            "X-GitHub-Delivery": gh2["x-github-delivery"]!,
            "X-Hub-Signature-256": gh2["x-hub-signature-256"]!,
            "X-GitHub-Event": "push",
          }),
        )
      ).status,
    ).toBe(202);
    // Optional whitespace around a header value is not part of it (fetch trims it).
    const sp = standardHeaders(compact, "msg_ows");
    expect(
      (await send(e, hook("svix", compact, { ...sp, "webhook-signature": `  ${sp["webhook-signature"]}\t` }))).status,
    ).toBe(202);
    expect(await streamLength(e)).toBe(3);
  });
});

// ---------------------------------------------------------------------------------------
describe("hostile input", () => {
  async function ingestRig(): Promise<Rig<"redis">> {
    return rig("redis", {
      ...AS_CONFIGURED,
      API_KEYS: API_KEY,
      WEBHOOK_SOURCES: JSON.stringify(SOURCES),
      RATE_LIMIT_KEY_EVENTS: "0",
      RATE_LIMIT_SOURCE_REQUESTS: "0",
    });
  }
  const authed = { authorization: `Bearer ${API_KEY}` };
  const httpEvent = (body: unknown, extra: Record<string, unknown> = {}) => ({
    id: crypto.randomUUID(),
    type: "http.request",
    source: "hostile",
    method: "POST",
    path: "/x",
    headers: {},
    body,
    ...extra,
  });
  const health = async (env: Env) => (await send(env, new Request("http://reflex.test/health"))).status;

  it("deeply nested and very wide JSON within the size limit: answered, the worker keeps serving, and what was accepted is stored", async () => {
    const r = await ingestRig();
    try {
      const env = r.env;
      const limit = r.cfg.MAX_BODY_BYTES;
      const cases: Array<{ what: string; body: string; path?: string; headers?: Record<string, string> }> = [];
      const arrays = (d: number) => "[".repeat(d) + "]".repeat(d);
      const objects = (d: number) => `${'{"a":'.repeat(d)}1${"}".repeat(d)}`;
      const wrap = (inner: string) =>
        `{"id":"${crypto.randomUUID()}","type":"http.request","source":"hostile","method":"POST","path":"/x","headers":{},"body":${inner}}`;
      cases.push({ what: "arrays nested 400,000 deep", body: wrap(arrays(400_000)) });
      cases.push({ what: "objects nested 150,000 deep", body: wrap(objects(150_000)) });
      cases.push({ what: "unclosed nesting", body: wrap("[".repeat(500_000)) });
      cases.push({ what: "nested just under the depth limit", body: wrap(arrays(r.cfg.MAX_JSON_DEPTH - 2)) });
      const wideObject = `{${Array.from({ length: 60_000 }, (_, i) => `"k${i}":${i}`).join(",")}}`;
      cases.push({ what: "an object with 60,000 keys", body: wrap(wideObject) });
      cases.push({ what: "an array of 300,000 numbers", body: wrap(`[${"0,".repeat(299_999)}0]`) });
      cases.push({ what: "a string of 150,000 escapes", body: wrap(`"${"\\u00e9".repeat(150_000)}"`) });
      cases.push({
        what: "prototype keys",
        body: wrap(`{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}}}`),
      });
      const batch = JSON.stringify({
        events: Array.from({ length: 500 }, (_, i) => httpEvent({ i, pad: "x".repeat(1500) })),
      });
      cases.push({ what: "a batch of 500 events near the size limit", body: batch, path: "/events/batch" });
      cases.push({ what: "over the size limit", body: wrap(`"${"x".repeat(limit)}"`) });
      const deepHook = JSON.stringify({ d: 1 }).replace("1", arrays(300_000));
      cases.push({
        what: "a signed webhook nested 300,000 deep",
        body: deepHook,
        path: "/webhooks/svix",
        headers: standardHeaders(deepHook, "msg_deep"),
      });

      const accepted: string[] = [];
      for (const c of cases) {
        if (c.what !== "over the size limit") expect(c.body.length, c.what).toBeLessThanOrEqual(limit);
        const a = await send(env, post(c.path ?? "/events", c.body, c.headers ?? authed));
        expect(a.status, `${c.what}: ${JSON.stringify(a.json).slice(0, 300)}`).toBeLessThan(500);
        expect(a.status, c.what).not.toBe(200);
        if (a.status === 202) accepted.push(...(a.json.ids ?? [a.json.id]));
        else expect(a.json.status, c.what).toBe(a.status); // a problem document saying what is wrong
        expect(await health(env), `after ${c.what}`).toBe(200);
      }
      // What had to be refused was (prototype keys included: 422 at any depth); what is legal was taken.
      expect(accepted.length).toBe(1 + 1 + 1 + 1 + 500);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();

      // And the consumer stores it all, byte for byte where it matters.
      await r.run();
      const rows = await r.rows<{ id: string; status: string; body: unknown }>(
        sql`select id::text, status::text, payload->'body' as body from events`,
      );
      expect(rows.filter((x) => x.status === "completed")).toHaveLength(accepted.length);
      expect(rows.find((x) => JSON.stringify(x.body).includes("__proto__"))).toBeUndefined();
      const wide = rows.find((x) => typeof x.body === "object" && x.body !== null && "k59999" in (x.body as object))!;
      expect(Object.keys(wide.body as object)).toHaveLength(60_000);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    } finally {
      await r.close();
    }
  });

  it("SQL and Redis command text in every field is stored verbatim and does nothing", async () => {
    const r = await ingestRig();
    try {
      const env = r.env;
      const texts = [
        "'; DROP TABLE events; --",
        "Robert'); DROP TABLE events;--",
        "' OR '1'='1",
        "1; SELECT pg_sleep(30); --",
        "$$; TRUNCATE events; $$",
        "\\'; COPY events TO PROGRAM 'id'; --",
        "*3\r\n$3\r\nDEL\r\n$6\r\nevents\r\n",
        "*1\r\n$8\r\nFLUSHALL\r\n",
        "EVAL \"return redis.call('FLUSHALL')\" 0",
        "FLUSHDB\r\nCONFIG SET dir /tmp\r\n",
        "KEYS *",
        "t:*:stream:0",
        "\\x00\\u0000 %00 %s%n ${jndi:ldap://x} {{7*7}} <script>alert(1)</script>",
      ];
      // A sentinel in Redis and a count in Postgres, to see that nothing was dropped or flushed.
      const sentinel = `${r.cfg.REDIS_PREFIX}:sentinel`;
      await r.redis.set(sentinel, "still here");

      const sent: Array<{ id: string; source: string; path: string; header: string; body: unknown }> = [];
      for (const [i, t] of texts.entries()) {
        const e = {
          id: crypto.randomUUID(),
          type: "http.request",
          source: t.slice(0, 256),
          method: "POST",
          path: `/${t}`,
          headers: { "x-payload": t },
          body: { text: t, [t]: t, list: [t, { nested: t }], i },
        };
        sent.push({ id: e.id, source: e.source, path: e.path, header: t, body: e.body });
      }
      const a = await send(
        env,
        post(
          "/events/batch",
          JSON.stringify({
            events: sent.map((s, i) => ({
              id: s.id,
              type: "http.request",
              source: s.source,
              method: "POST",
              path: s.path,
              headers: { "x-payload": s.header },
              body: s.body,
              meta: { note: texts[i] },
            })),
          }),
          authed,
        ),
      );
      expect(a.status, JSON.stringify(a.json)).toBe(202);
      // Through a webhook too, with the text in the delivery id (it becomes part of a Redis key).
      const hookBody = JSON.stringify({ text: texts[0], redis: texts[6] });
      // (Delivery ids are 1-256 printable ASCII characters without spaces.)
      const deliveryId = "';DROP/**/TABLE/**/events;--*1\\r\\n$8\\r\\nFLUSHALL";
      const w = await send(env, post("/webhooks/lab", hookBody, { "x-request-id": deliveryId }));
      expect(w.status, JSON.stringify(w.json)).toBe(202);
      expect((await send(env, post("/webhooks/lab", hookBody, { "x-request-id": deliveryId }))).json).toEqual({
        id: w.json.id,
        status: "duplicate",
      });

      const seen: string[] = [];
      r.triggers.register({
        name: "echo",
        filter: f.type("http.request"),
        handler: (ctx) => void seen.push(String(ctx.event.path)),
      });
      await r.run();

      const rows = await r.rows<{
        id: string;
        source: string;
        status: string;
        payload: { path: string; headers: Record<string, string>; body: unknown };
        meta: { note?: string };
      }>(sql`select id::text, source, status::text, payload, meta from events`);
      expect(rows).toHaveLength(texts.length + 1);
      for (const s of sent) {
        const row = rows.find((x) => x.id === s.id)!;
        expect(row.status).toBe("completed");
        expect(row.source).toBe(s.source); // byte-equal strings
        expect(row.payload.path).toBe(s.path);
        expect(row.payload.headers["x-payload"]).toBe(s.header);
        expect(row.payload.body).toEqual(s.body);
      }
      expect(
        rows
          .map((x) => x.meta.note)
          .filter(Boolean)
          .sort(),
      ).toEqual([...texts].sort());
      const hookRow = rows.find((x) => x.id === w.json.id)!;
      expect(hookRow.payload.body).toEqual({ text: texts[0], redis: texts[6] });
      expect((hookRow.payload as unknown as { delivery_id: string }).delivery_id).toBe(deliveryId);
      expect(seen.sort()).toEqual(sent.map((s) => s.path).sort());

      // Read back through the admin API as well.
      const detail = await adminCall({ ...env, ADMIN_TOKEN } as Env, "GET", `/events/${sent[0]!.id}`);
      expect(detail.status).toBe(200);
      expect(JSON.stringify(detail.body)).toContain(JSON.stringify(texts[0]).slice(1, -1));

      // Harmless: the tables are there, Redis was neither flushed nor had keys deleted.
      const [t] = await r.rows<{ events: string | null; deliveries: string | null; n: number }>(
        sql`select to_regclass('public.events')::text as events, to_regclass('public.webhook_deliveries')::text as deliveries, (select count(*)::int from events) as n`,
      );
      expect(t).toEqual({ events: "events", deliveries: "webhook_deliveries", n: texts.length + 1 });
      expect(await r.redis.get(sentinel)).toBe("still here");
      expect(Number(await r.redis.xlen(r.store.lanes()[0]!))).toBeGreaterThan(0);
    } finally {
      await r.close();
    }
  });
});

describe("globs match in linear time (destinations and type filters)", () => {
  // 24 stars between "a"s, against a long run of "a"s that never ends in "b": a regex with
  // `.*` per star would backtrack through ~10^40 splits and never return.
  const manyStars = `${"*a".repeat(24)}*b`;
  const nearMiss = "a".repeat(256);

  it("a many-star glob against a long adversarial type answers, and answers right", () => {
    const e = (type: string) => ({ ...eventOf(type), source: nearMiss });
    const flt = f.type(manyStars);
    expect(flt.test(e(nearMiss.slice(0, 128)), filterCtx, "f")).toBe(false);
    expect(flt.test(e(`${"a".repeat(100)}b`), filterCtx, "f")).toBe(true);
    expect(flt.test(e(`${"a".repeat(23)}b`), filterCtx, "f")).toBe(false);
  });

  it("glob semantics: * is any run, everything else literal (regex characters included)", () => {
    const cases: Array<[string, string, boolean]> = [
      ["order.*", "order.created", true],
      ["order.*", "order.", true],
      ["order.*", "orderXcreated", false],
      ["*", "", true],
      ["a*b*c", "abc", true],
      ["a*b*c", "aXbYc", true],
      ["a*b*c", "acb", false],
      ["a*a", "a", false],
      ["a*a", "aa", true],
      ["**x**", "yxy", true],
      ["(a|b)+", "(a|b)+", true],
      ["(a|b)+", "a", false],
      ["exact", "exact", true],
      ["exact", "exactly", false],
      ["*.push", "github.push", true],
      ["*ab*ab", "abab", true],
      ["*ab*ab", "aab", false],
    ];
    for (const [glob, s, want] of cases) expect(globMatcher(glob)(s), `${glob} ~ ${s}`).toBe(want);
  });

  it("a destination whose source glob has many stars: a client's adversarial source is matched (not delivered) and the run goes on", async () => {
    const env = await freshEnv({
      DESTINATIONS: JSON.stringify([
        {
          name: "greedy",
          url: "https://dest.example/hook",
          filter: { sources: [manyStars], types: ["*.*.*.*.*.*.*.*.*.*x"] },
        },
      ]),
    });
    const cfg = loadConfig(env);
    const h = openDb(cfg);
    try {
      const rt = openDestinations({ config: cfg, db: h.db, base: new TriggerRegistry() });
      const matches = await rt.triggers.match(
        [
          { ...eventOf("a.".repeat(60)), source: nearMiss },
          { ...eventOf("a.b.c.d.e.f.g.h.i.jx"), source: `${nearMiss}b` },
        ],
        { now: Date.now(), state: filterCtx.state },
      );
      expect(matches[0]).toEqual([]);
      expect((matches[1] as Array<{ trigger: { name: string } }>).map((m) => m.trigger.name)).toEqual([
        "destination greedy",
      ]);
    } finally {
      await h.close();
    }
  });
});

const filterCtx = {
  trigger: "t",
  now: 0,
  state: {
    rateLimit: () => Promise.reject(new Error("not used")),
    dedupe: () => Promise.reject(new Error("not used")),
  },
};

function eventOf(type: string) {
  return { id: crypto.randomUUID(), type, source: "s", timestamp: new Date().toISOString(), meta: { trace_id: "t" } };
}
