import { describe, expect, it } from "vitest";
import { openRedis } from "../../src/backends/redis/client";
import { redisKeys } from "../../src/backends/redis/keys";
import { loadConfig } from "../../src/config";
import { webhookSources } from "../../src/ingest/sources";
import type { TestEnv } from "../support/env";
import { call, ingestEnv, keysOf, recordingQueue, streamEvents, streamLength } from "../support/ingest";
import {
  githubHeaders,
  hmacDigest,
  hook,
  SECRETS,
  SOURCES,
  standardHeaders,
  stripeEvent,
  stripeHeaders,
  WEBHOOK_SOURCES,
} from "../support/webhooks";

const env = (extra: Record<string, unknown> = {}) => ingestEnv({ WEBHOOK_SOURCES, ...extra });

async function acceptedOnce(e: TestEnv, req: () => Promise<Request> | Request) {
  const first = await call(e, await req());
  expect(first.status, first.text).toBe(202);
  expect(first.json).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), status: "accepted" });
  return first.json.id as string;
}

describe("POST /webhooks/:source, standard-webhooks (signed by the standardwebhooks library)", () => {
  it("stores a webhook.received event with delivery id, selected headers and the parsed body", async () => {
    const e = await env();
    const body = JSON.stringify({ type: "user.created", data: { id: 7, name: "Ada" } });
    const signed = standardHeaders(body, "msg_abc123");
    const headers: Record<string, string> = {
      ...signed,
      "user-agent": "Svix-Webhooks/1.0",
      authorization: "Bearer leak-me-not",
    };
    const id = await acceptedOnce(e, () => hook("svix", body, headers));
    const [ev, ...rest] = await streamEvents(e);
    expect(rest).toHaveLength(0);
    expect(ev).toMatchObject({
      id,
      type: "webhook.received",
      source: "svix",
      delivery_id: "msg_abc123",
      body: { type: "user.created", data: { id: 7, name: "Ada" } },
      headers: { "content-type": "application/json", "user-agent": "Svix-Webhooks/1.0" },
    });
    // Credentials and signatures never reach the stream.
    expect(Object.keys(ev!.headers as object).sort()).toEqual(["content-type", "user-agent"]);
    expect(JSON.stringify(ev)).not.toContain("leak-me-not");
    expect(JSON.stringify(ev)).not.toContain(signed["webhook-signature"]!.slice(3));
  });

  it("answers a redelivery (same webhook-id) 200 duplicate with the first event's id, publishing nothing", async () => {
    const e = await env();
    const body = JSON.stringify({ n: 1 });
    const headers = standardHeaders(body, "msg_dup_1");
    const id = await acceptedOnce(e, () => hook("svix", body, headers));
    // The provider retries with a fresh signature (new timestamp) but the same message id.
    const again = await call(e, hook("svix", body, standardHeaders(body, "msg_dup_1", new Date(Date.now() - 5000))));
    expect(again.status).toBe(200);
    expect(again.json).toEqual({ id, status: "duplicate" });
    expect(await streamLength(e)).toBe(1);
  });

  it("keeps the same delivery id apart across sources", async () => {
    const e = await env({
      WEBHOOK_SOURCES: JSON.stringify({
        a: { scheme: "standard-webhooks", secret: SECRETS.standard },
        b: { scheme: "standard-webhooks", secret: SECRETS.standard },
      }),
    });
    const body = "{}";
    const a = await acceptedOnce(e, () => hook("a", body, standardHeaders(body, "msg_same")));
    const b = await acceptedOnce(e, () => hook("b", body, standardHeaders(body, "msg_same")));
    expect(a).not.toBe(b);
    expect(await streamLength(e)).toBe(2);
  });

  it("honours a tolerance shorter than the library's 5 minutes", async () => {
    const e = await env();
    const body = "{}";
    const old = standardHeaders(body, "msg_old", new Date(Date.now() - 120_000));
    const strict = await call(e, hook("strict", body, old));
    expect(strict.status).toBe(401);
    expect(strict.json.errors).toEqual([
      { header: "webhook-timestamp", message: expect.stringContaining("tolerance") },
    ]);
    // The same delivery is fine for a source with the default 300 s.
    expect((await call(e, hook("svix", body, old))).status).toBe(202);
  });

  it("forgets a delivery id after DEDUPE_WINDOW_S", async () => {
    // The window may not be shorter than a source's signature tolerance: a 1 s source.
    const e = await env({
      DEDUPE_WINDOW_S: "1",
      WEBHOOK_SOURCES: JSON.stringify({ svix: { ...SOURCES.svix, tolerance_s: 1 } }),
    });
    const body = "{}";
    const first = await acceptedOnce(e, () => hook("svix", body, standardHeaders(body, "msg_window")));
    await new Promise((r) => setTimeout(r, 1200));
    const second = await acceptedOnce(e, () => hook("svix", body, standardHeaders(body, "msg_window")));
    expect(second).not.toBe(first);
    expect(await streamLength(e)).toBe(2);
  });
});

describe("POST /webhooks/:source, github (signed by @octokit/webhooks-methods)", () => {
  it("accepts, keeps X-GitHub-Event, drops X-Hub-Signature-256, dedupes on X-GitHub-Delivery", async () => {
    const e = await env();
    const body = JSON.stringify({ ref: "refs/heads/main", commits: [{ id: "abc" }] });
    const delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    const headers = await githubHeaders(body, delivery, "push");
    const id = await acceptedOnce(e, () => hook("gh", body, headers));
    const [ev] = await streamEvents(e);
    expect(ev).toMatchObject({ id, source: "gh", delivery_id: delivery, body: { ref: "refs/heads/main" } });
    expect(ev!.headers).toMatchObject({
      "x-github-event": "push",
      "x-github-delivery": delivery,
      "user-agent": "GitHub-Hookshot/abc123",
    });
    expect(ev!.headers).not.toHaveProperty("x-hub-signature-256");
    const again = await call(e, hook("gh", body, headers));
    expect(again.status).toBe(200);
    expect(again.json).toEqual({ id, status: "duplicate" });
    expect(await streamLength(e)).toBe(1);
  });
});

describe("POST /webhooks/:source, stripe (signed by stripe.webhooks.generateTestHeaderStringAsync)", () => {
  it("accepts, uses the Stripe event id as delivery id, dedupes redeliveries", async () => {
    const e = await env();
    const body = stripeEvent("evt_1NG8Du2eZvKYlo2CUI79vXWy");
    const id = await acceptedOnce(e, async () => hook("billing", body, await stripeHeaders(body)));
    const [ev] = await streamEvents(e);
    expect(ev).toMatchObject({
      id,
      source: "billing",
      delivery_id: "evt_1NG8Du2eZvKYlo2CUI79vXWy",
      body: { type: "invoice.paid" },
    });
    // Stripe retries sign again with a new timestamp.
    const again = await call(e, hook("billing", body, await stripeHeaders(body, Math.floor(Date.now() / 1000) - 60)));
    expect(again.json).toEqual({ id, status: "duplicate" });
    expect(again.status).toBe(200);
  });

  it("accepts when any v1 signature matches (secret roll: old and new secret both sign)", async () => {
    const e = await env();
    const body = stripeEvent();
    const t = Math.floor(Date.now() / 1000);
    const good = (await stripeHeaders(body, t))["stripe-signature"]!;
    const other = (await stripeHeaders(body, t, "whsec_some_other_secret"))["stripe-signature"]!;
    const v1 = (h: string) => h.split(",").find((p) => p.startsWith("v1="))!;
    const header = `t=${t},${v1(other)},${v1(good)}`;
    expect((await call(e, hook("billing", body, { "stripe-signature": header }))).status).toBe(202);
  });

  it("refuses a stale timestamp even with a valid signature", async () => {
    const e = await env();
    const body = stripeEvent();
    const r = await call(e, hook("billing", body, await stripeHeaders(body, Math.floor(Date.now() / 1000) - 600)));
    expect(r.status).toBe(401);
    expect(r.json.errors[0]).toMatchObject({
      header: "stripe-signature",
      message: expect.stringContaining("tolerance"),
    });
    expect(await streamLength(e)).toBe(0);
  });
});

describe("POST /webhooks/:source, hmac-sha256 and none", () => {
  it("accepts base64 HMAC in the configured header, keeps listed extra headers, dedupes on id_header", async () => {
    const e = await env();
    const body = JSON.stringify({ order: 1 });
    const headers = {
      "x-shop-hmac": hmacDigest(body, "base64"),
      "x-shop-delivery": "d-1",
      "x-shop-topic": "orders/create",
    };
    const id = await acceptedOnce(e, () => hook("shop", body, headers));
    const [ev] = await streamEvents(e);
    expect(ev).toMatchObject({ delivery_id: "d-1", headers: { "x-shop-topic": "orders/create" } });
    expect(ev!.headers).not.toHaveProperty("x-shop-hmac");
    expect((await call(e, hook("shop", body, headers))).json).toEqual({ id, status: "duplicate" });
  });

  it("accepts hex HMAC after a prefix; without an id header, deliveries are told apart by their signed body", async () => {
    const e = await env();
    const sign = (body: string) => ({ "x-signature": `sha256=${hmacDigest(body, "hex")}` });
    const one = JSON.stringify({ x: 1 });
    const two = JSON.stringify({ x: 2 });
    const a = await acceptedOnce(e, () => hook("plain", one, sign(one)));
    const b = await acceptedOnce(e, () => hook("plain", two, sign(two)));
    expect(a).not.toBe(b);
    // The same signed bytes again: a replay of the capture, not a new delivery.
    const again = await call(e, hook("plain", one, sign(one)));
    expect(again.status).toBe(200);
    expect(again.json).toEqual({ id: a, status: "duplicate" });
    const evs = await streamEvents(e);
    expect(evs.map((x) => x.delivery_id)).toEqual([null, null]);
    expect(evs.map((x) => x.meta.ingress)).toEqual([
      { kind: "webhook", source: "plain", scheme: "hmac-sha256" },
      { kind: "webhook", source: "plain", scheme: "hmac-sha256" },
    ]);
  });

  it("verifies over the raw bytes: a body with a BOM and odd whitespace signed as sent is accepted", async () => {
    const e = await env();
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode('  {"a" : "é" }\n')]);
    const headers = { "x-signature": `sha256=${hmacDigest(bytes, "hex")}` };
    const r = await call(e, hook("plain", bytes, headers));
    // A BOM is not JSON (RFC 8259 forbids emitting it; JSON.parse refuses it): authentic, but malformed.
    expect(r.status).toBe(400);
    const noBom = bytes.slice(3);
    const ok = await call(e, hook("plain", noBom, { "x-signature": `sha256=${hmacDigest(noBom, "hex")}` }));
    expect(ok.status).toBe(202);
    expect((await streamEvents(e))[0]!.body).toEqual({ a: "é" });
  });

  it("accepts unsigned deliveries only for a source marked unsigned", async () => {
    const e = await env();
    const id = await acceptedOnce(e, () => hook("lab", JSON.stringify({ t: 1 }), { "x-request-id": "r1" }));
    expect((await call(e, hook("lab", JSON.stringify({ t: 1 }), { "x-request-id": "r1" }))).json).toEqual({
      id,
      status: "duplicate",
    });
    const bad = await ingestEnv({ WEBHOOK_SOURCES: JSON.stringify({ lab: { scheme: "none" } }) });
    const r = await call(bad, hook("lab", "{}", {}));
    // Refused on its own route, naming the setting (never a value).
    expect(r.status).toBe(503);
    expect(r.json.title).toBe("Webhook source misconfigured");
    expect(r.json.errors[0].message).toMatch(/^WEBHOOK_SOURCES\.lab\.unsigned: /);
    expect(() => webhookSources(loadConfig(bad))).toThrow(/WEBHOOK_SOURCES\.lab\.unsigned/);
  });
});

describe("webhook dedupe is atomic with the publish", () => {
  it("a failed publish leaves no dedupe key: the provider's retry is stored, not called a duplicate", async () => {
    const e = await env();
    const cfg = loadConfig(e);
    const redis = openRedis(cfg);
    const stream = redisKeys(cfg.REDIS_PREFIX).stream(0);
    // Make XADD fail inside the script: the stream key holds a string.
    await redis.set(stream, "not a stream");
    const body = JSON.stringify({ attempt: 1 });
    const headers = standardHeaders(body, "msg_retry_after_failure");
    const failed = await call(e, hook("svix", body, headers));
    expect(failed.status).toBe(503);
    expect(failed.res.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(await redis.exists(redisKeys(cfg.REDIS_PREFIX).dedupe("svix:msg_retry_after_failure"))).toBe(0);
    await redis.del(stream);
    const retried = await call(e, hook("svix", body, headers));
    expect(retried.status).toBe(202);
    expect(retried.json.status).toBe("accepted");
    expect(await streamLength(e)).toBe(1);
  });

  it("Redis unreachable: 503 with Retry-After, never 2xx", async () => {
    const e = await env({ UPSTASH_REDIS_REST_URL: "http://127.0.0.1:9" });
    const body = "{}";
    const r = await call(e, hook("svix", body, standardHeaders(body)));
    expect(r.status).toBe(503);
    expect(r.res.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(r.res.headers.get("content-type")).toBe("application/problem+json");
  });
});

describe("wake-up", () => {
  it("an accepted delivery wakes the consumer: one message now, one delayed by the window", async () => {
    const { queue, sent } = recordingQueue();
    const e = await env({ WAKE_QUEUE: queue, WAKE_DEBOUNCE_MS: "100" });
    await acceptedOnce(e, () => hook("lab", "{}", { "x-request-id": "w1" }));
    expect(sent).toEqual([
      { body: { kind: "wake", at: expect.any(Number) } },
      { body: { kind: "wake", at: expect.any(Number) }, delaySeconds: 1 },
    ]);
    // After the window, a duplicate still publishes nothing and so wakes nobody.
    await new Promise((r) => setTimeout(r, 150));
    expect((await call(e, hook("lab", "{}", { "x-request-id": "w1" }))).json.status).toBe("duplicate");
    expect(sent).toHaveLength(2);
    await acceptedOnce(e, () => hook("lab", "{}", { "x-request-id": "w2" }));
    expect(sent).toHaveLength(4);
  });
});

describe("per-source rate limit (@upstash/ratelimit)", () => {
  it("429 with Retry-After past the limit; other sources unaffected", async () => {
    const e = await env({ RATE_LIMIT_SOURCE_REQUESTS: "2", RATE_LIMIT_WINDOW_S: "60" });
    const body = "{}";
    for (let i = 0; i < 2; i++) expect((await call(e, hook("lab", body, {}))).status).toBe(202);
    const limited = await call(e, hook("lab", body, {}));
    expect(limited.status).toBe(429);
    expect(Number(limited.res.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(limited.json).toMatchObject({ status: 429, title: "Too many requests" });
    expect((await call(e, hook("svix", body, standardHeaders(body)))).status).toBe(202);
    expect(await streamLength(e)).toBe(3);
    // Rate-limit state lives under the env's prefix.
    expect((await keysOf(e)).some((k) => k.startsWith(`${e.REDIS_PREFIX}:ratelimit:source`))).toBe(true);
  });

  it("an unsigned request cannot spend a signed source's quota", async () => {
    const e = await env({ RATE_LIMIT_SOURCE_REQUESTS: "1", RATE_LIMIT_WINDOW_S: "60" });
    for (let i = 0; i < 3; i++)
      expect(
        (
          await call(
            e,
            hook("svix", "{}", { "webhook-id": "x", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA" }),
          )
        ).status,
      ).toBe(401);
    expect((await call(e, hook("svix", "{}", standardHeaders("{}")))).status).toBe(202);
  });
});
