/**
 * The bad-request corpus: each request gets the right status, an RFC 9457 problem body
 * naming the field or header at fault, and leaves Redis exactly as it was - no stream
 * entry, no dedupe key, no rate-limit or wake-up key.
 */
import { describe, expect, it } from "vitest";
import type { TestEnv } from "../support/env";
import { API_KEY, authed, call, ingestEnv, ingestKeysOf, post, streamLength } from "../support/ingest";
import {
  githubHeaders,
  hmacDigest,
  hook,
  SECRETS,
  standardHeaders,
  stripeEvent,
  stripeHeaders,
  WEBHOOK_SOURCES,
} from "../support/webhooks";

const enc = new TextEncoder();
const bytes = (...parts: Array<string | number[]>) =>
  new Uint8Array(parts.flatMap((p) => (typeof p === "string" ? [...enc.encode(p)] : p)));
const tick = { type: "timer.tick", source: "cron", timer_name: "t", tick_count: 1 };
const json = (v: unknown) => JSON.stringify(v);
const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);
const MAX_BODY = 8192;

interface Case {
  name: string;
  req: () => Request | Promise<Request>;
  status: number;
  /** Where the problem must point: a JSON Pointer, a header, or a path parameter. */
  at?: { path?: string; header?: string; param?: string };
}

const ev = (body: BodyInit | object, headers: Record<string, string> = {}) => authed("/events", body, headers);
const batch = (body: BodyInit | object) => authed("/events/batch", body);

const cases: Case[] = [
  // --- malformed bodies (400) ---
  { name: "malformed JSON", req: () => ev('{"type": "timer.tick",'), status: 400, at: { path: "" } },
  { name: "truncated JSON", req: () => ev(json(tick).slice(0, 25)), status: 400, at: { path: "" } },
  { name: "empty body", req: () => ev(""), status: 400, at: { path: "" } },
  { name: "trailing garbage after JSON", req: () => ev(`${json(tick)} x`), status: 400, at: { path: "" } },
  {
    name: "raw NUL byte inside a string",
    req: () => ev(bytes('{"type":"ws.message","source":"s","connection_id":"c","content":"a', [0], 'b"}')),
    status: 400,
    at: { path: "" },
  },
  {
    name: "invalid UTF-8",
    req: () => ev(bytes('{"type":"ws.message","source":"s","connection_id":"c","content":"', [0xff, 0xfe, 0xc3], '"}')),
    status: 400,
    at: { path: "" },
  },
  {
    name: "overlong UTF-8 encoding",
    req: () => ev(bytes('{"a":"', [0xc0, 0xaf], '"}')),
    status: 400,
    at: { path: "" },
  },
  {
    name: "deep nesting",
    req: () => ev(`{"type":"http.request","source":"s","method":"GET","path":"/","body":${nested(100)}}`),
    status: 400,
    at: { path: "" },
  },
  { name: "deep nesting, batch", req: () => batch(`{"events":[${nested(70)}]}`), status: 400, at: { path: "" } },
  // --- wrong types, missing and oversized fields (422) ---
  { name: "body is an array", req: () => ev([tick]), status: 422, at: { path: "" } },
  { name: "body is a string", req: () => ev('"timer.tick"'), status: 422, at: { path: "" } },
  {
    name: "wrong type: tick_count is a string",
    req: () => ev({ ...tick, tick_count: "five" }),
    status: 422,
    at: { path: "/tick_count" },
  },
  {
    name: "wrong type: tick_count is fractional",
    req: () => ev({ ...tick, tick_count: 1.5 }),
    status: 422,
    at: { path: "/tick_count" },
  },
  {
    name: "wrong type: source is a number",
    req: () => ev({ ...tick, source: 42 }),
    status: 422,
    at: { path: "/source" },
  },
  { name: "wrong type: meta is a string", req: () => ev({ ...tick, meta: "x" }), status: 422, at: { path: "/meta" } },
  {
    name: "missing type",
    req: () => ev({ source: "s", timer_name: "t", tick_count: 1 }),
    status: 422,
    at: { path: "/type" },
  },
  {
    name: "missing source",
    req: () => ev({ type: "timer.tick", timer_name: "t", tick_count: 1 }),
    status: 422,
    at: { path: "/source" },
  },
  {
    name: "missing typed field",
    req: () => ev({ type: "ws.message", source: "s", content: "x" }),
    status: 422,
    at: { path: "/connection_id" },
  },
  {
    name: "oversized source",
    req: () => ev({ ...tick, source: "s".repeat(300) }),
    status: 422,
    at: { path: "/source" },
  },
  {
    name: "oversized trace id",
    req: () => ev({ ...tick, meta: { trace_id: "t".repeat(200) } }),
    status: 422,
    at: { path: "/meta/trace_id" },
  },
  {
    name: "unknown field (strict types)",
    req: () => ev({ ...tick, tick_cuont: 2 }),
    status: 422,
    at: { path: "/tick_cuont" },
  },
  {
    name: "bad enum value",
    req: () => ev({ type: "lifecycle", source: "s", action: "exploded" }),
    status: 422,
    at: { path: "/action" },
  },
  { name: "client id that is not a UUID", req: () => ev({ ...tick, id: "evt-1" }), status: 422, at: { path: "/id" } },
  {
    name: "timestamp that is not a date",
    req: () => ev({ ...tick, timestamp: "yesterday" }),
    status: 422,
    at: { path: "/timestamp" },
  },
  {
    name: "timestamp without a time zone",
    req: () => ev({ ...tick, timestamp: "2026-01-01T00:00:00" }),
    status: 422,
    at: { path: "/timestamp" },
  },
  {
    name: "timestamp an hour in the future",
    req: () => ev({ ...tick, timestamp: new Date(Date.now() + 3_600_000).toISOString() }),
    status: 422,
    at: { path: "/timestamp" },
  },
  {
    name: "timestamp in the year 9999, batch",
    req: () => batch({ events: [tick, { ...tick, timestamp: "9999-12-31T23:59:59Z" }] }),
    status: 422,
    at: { path: "/events/1/timestamp" },
  },
  {
    name: "escaped NUL in a string",
    req: () => ev('{"type":"ws.message","source":"s","connection_id":"c","content":"a\\u0000b"}'),
    status: 422,
    at: { path: "/content" },
  },
  {
    name: "lone surrogate in a string",
    req: () => ev('{"type":"ws.message","source":"s","connection_id":"c","content":"\\ud800"}'),
    status: 422,
    at: { path: "/content" },
  },
  {
    name: "unknown event type",
    req: () => ev({ type: "order.created", source: "s" }),
    status: 422,
    at: { path: "/type" },
  },
  { name: "batch without events", req: () => batch({ items: [tick] }), status: 422, at: { path: "/events" } },
  { name: "batch with events not an array", req: () => batch({ events: tick }), status: 422, at: { path: "/events" } },
  { name: "empty batch", req: () => batch({ events: [] }), status: 422, at: { path: "/events" } },
  {
    name: "batch over the maximum",
    req: () => batch({ events: Array(6).fill(tick) }),
    status: 422,
    at: { path: "/events" },
  },
  {
    name: "batch with one bad item",
    req: () => batch({ events: [tick, { ...tick, tick_count: -1 }] }),
    status: 422,
    at: { path: "/events/1/tick_count" },
  },
  // --- size and content type ---
  {
    name: "oversize body (Content-Length)",
    req: () => ev(json({ ...tick, timer_name: "x".repeat(MAX_BODY) })),
    status: 413,
  },
  {
    name: "oversize body (streamed, no Content-Length)",
    req: () =>
      new Request("http://reflex.test/events", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
        body: new ReadableStream({
          start(c) {
            for (let i = 0; i < 4; i++) c.enqueue(enc.encode("x".repeat(4096)));
            c.close();
          },
        }),
        duplex: "half",
      } as RequestInit),
    status: 413,
  },
  {
    name: "wrong content type",
    req: () => ev(json(tick), { "content-type": "text/plain" }),
    status: 415,
    at: { header: "content-type" },
  },
  {
    name: "form content type",
    req: () => ev("a=1", { "content-type": "application/x-www-form-urlencoded" }),
    status: 415,
    at: { header: "content-type" },
  },
  {
    name: "JSON in another charset",
    req: () => ev(json(tick), { "content-type": "application/json; charset=iso-8859-1" }),
    status: 415,
    at: { header: "content-type" },
  },
  {
    name: "missing content type",
    req: () =>
      new Request("http://reflex.test/events", {
        method: "POST",
        headers: { authorization: `Bearer ${API_KEY}` },
        body: new Uint8Array(enc.encode(json(tick))),
      }),
    status: 415,
    at: { header: "content-type" },
  },
  // --- keys ---
  { name: "missing API key", req: () => post("/events", tick), status: 401, at: { header: "authorization" } },
  {
    name: "wrong API key",
    req: () => post("/events", tick, { authorization: "Bearer not-a-key" }),
    status: 401,
    at: { header: "authorization" },
  },
  {
    name: "API key with a wrong last character",
    req: () => post("/events", tick, { authorization: `Bearer ${API_KEY.slice(0, -1)}X` }),
    status: 401,
    at: { header: "authorization" },
  },
  {
    name: "not a Bearer credential",
    req: () => post("/events", tick, { authorization: `Basic ${btoa(`u:${API_KEY}`)}` }),
    status: 401,
    at: { header: "authorization" },
  },
  {
    name: "wrong key on a batch",
    req: () => post("/events/batch", { events: [tick] }, { authorization: "Bearer nope" }),
    status: 401,
    at: { header: "authorization" },
  },
  // --- webhooks ---
  { name: "unknown webhook source", req: () => hook("nosuch", "{}", {}), status: 404, at: { param: "source" } },
  {
    name: "standard-webhooks: tampered body",
    req: () => hook("svix", '{"amount":1000}', standardHeaders('{"amount":10}')),
    status: 401,
    at: { header: "webhook-signature" },
  },
  {
    name: "standard-webhooks: truncated signature",
    req: () => {
      const h = standardHeaders("{}");
      return hook("svix", "{}", { ...h, "webhook-signature": h["webhook-signature"]!.slice(0, 20) });
    },
    status: 401,
    at: { header: "webhook-signature" },
  },
  {
    name: "standard-webhooks: stale timestamp",
    req: () => hook("svix", "{}", standardHeaders("{}", "msg_stale", new Date(Date.now() - 10 * 60_000))),
    status: 401,
    at: { header: "webhook-timestamp" },
  },
  {
    name: "standard-webhooks: timestamp in the future",
    req: () => hook("svix", "{}", standardHeaders("{}", "msg_future", new Date(Date.now() + 10 * 60_000))),
    status: 401,
    at: { header: "webhook-timestamp" },
  },
  {
    name: "standard-webhooks: reused signature under another message id",
    req: () => hook("svix", "{}", { ...standardHeaders("{}", "msg_original"), "webhook-id": "msg_replayed" }),
    status: 401,
    at: { header: "webhook-signature" },
  },
  {
    name: "standard-webhooks: signed with another secret",
    req: () => hook("svix", "{}", standardHeaders("{}", "msg_other", new Date(), SECRETS.standardOther)),
    status: 401,
    at: { header: "webhook-signature" },
  },
  {
    name: "standard-webhooks: missing signature headers",
    req: () => hook("svix", "{}", {}),
    status: 401,
    at: { header: "webhook-id" },
  },
  {
    name: "github: tampered body",
    req: async () => hook("gh", '{"ref":"refs/heads/evil"}', await githubHeaders('{"ref":"refs/heads/main"}')),
    status: 401,
    at: { header: "x-hub-signature-256" },
  },
  {
    name: "github: wrong secret",
    req: async () => hook("gh", "{}", await githubHeaders("{}", undefined, "push", "not-the-secret")),
    status: 401,
    at: { header: "x-hub-signature-256" },
  },
  {
    name: "github: missing signature",
    req: async () => {
      const { "x-hub-signature-256": _s, ...rest } = await githubHeaders("{}");
      void _s;
      return hook("gh", "{}", rest);
    },
    status: 401,
    at: { header: "x-hub-signature-256" },
  },
  {
    name: "github: SHA-1 signature only",
    req: () =>
      hook("gh", "{}", {
        "x-hub-signature": "sha1=0000000000000000000000000000000000000000",
        "x-github-delivery": "d",
      }),
    status: 401,
    at: { header: "x-hub-signature-256" },
  },
  {
    name: "github: signed, but without X-GitHub-Delivery",
    req: async () => {
      const { "x-github-delivery": _d, ...rest } = await githubHeaders("{}");
      void _d;
      return hook("gh", "{}", rest);
    },
    status: 422,
    at: { header: "x-github-delivery" },
  },
  {
    name: "stripe: stale timestamp",
    req: async () => {
      const body = stripeEvent();
      return hook("billing", body, await stripeHeaders(body, Math.floor(Date.now() / 1000) - 3600));
    },
    status: 401,
    at: { header: "stripe-signature" },
  },
  {
    name: "stripe: tampered body",
    req: async () => hook("billing", stripeEvent("evt_b"), await stripeHeaders(stripeEvent("evt_a"))),
    status: 401,
    at: { header: "stripe-signature" },
  },
  {
    name: "stripe: signature re-used with a new timestamp",
    req: async () => {
      const body = stripeEvent();
      const h = (await stripeHeaders(body, Math.floor(Date.now() / 1000) - 100))["stripe-signature"]!;
      return hook("billing", body, { "stripe-signature": h.replace(/t=\d+/, `t=${Math.floor(Date.now() / 1000)}`) });
    },
    status: 401,
    at: { header: "stripe-signature" },
  },
  {
    name: "stripe: signed, but the event has no id",
    req: async () => {
      const body = json({ object: "event", type: "invoice.paid" });
      return hook("billing", body, await stripeHeaders(body));
    },
    status: 422,
    at: { path: "/id" },
  },
  {
    name: "hmac-sha256: hex digest where base64 is configured",
    req: () => hook("shop", "{}", { "x-shop-hmac": `${hmacDigest("{}", "hex").slice(0, 10)}!` }),
    status: 401,
    at: { header: "x-shop-hmac" },
  },
  {
    name: "hmac-sha256: signature of another body",
    req: () => hook("plain", '{"a":2}', { "x-signature": `sha256=${hmacDigest('{"a":1}', "hex")}` }),
    status: 401,
    at: { header: "x-signature" },
  },
  {
    name: "webhook: correctly signed, malformed JSON",
    req: () => hook("plain", '{"a":', { "x-signature": `sha256=${hmacDigest('{"a":', "hex")}` }),
    status: 400,
    at: { path: "" },
  },
  {
    name: "webhook: correctly signed, escaped NUL in the payload",
    req: () => hook("plain", '{"a":"\\u0000"}', { "x-signature": `sha256=${hmacDigest('{"a":"\\u0000"}', "hex")}` }),
    status: 422,
    at: { path: "/a" },
  },
  {
    name: "webhook: wrong content type",
    req: () => hook("lab", "a=1", {}, "application/x-www-form-urlencoded"),
    status: 415,
    at: { header: "content-type" },
  },
  {
    name: "webhook: invalid UTF-8",
    req: () => hook("lab", bytes('{"a":"', [0xff], '"}'), {}),
    status: 400,
    at: { path: "" },
  },
  { name: "webhook: oversize body", req: () => hook("lab", json({ a: "x".repeat(MAX_BODY) }), {}), status: 413 },
];

/** A body that fails the request if anything reads it: the refusal must come from the headers alone. */
const unreadable = () =>
  new ReadableStream<Uint8Array>({
    pull() {
      throw new Error("the body was read");
    },
  });
const streamed = (path: string, headers: Record<string, string>) =>
  new Request(`http://reflex.test${path}`, {
    method: "POST",
    headers,
    body: unreadable(),
    duplex: "half",
  } as RequestInit);
const ghBody = '{"ref":"refs/heads/main"}';

/** Trust boundaries: what a client may not claim, and the work it may not cause. */
const trustCases: Case[] = [
  // --- forged ingress: a client's event posing as a verified webhook delivery ---
  {
    name: "webhook.received posted as an API event",
    req: () => ev({ type: "webhook.received", source: "gh", delivery_id: "d-1", headers: {}, body: {} }),
    status: 422,
    at: { path: "/type" },
  },
  {
    name: "webhook.received inside a batch",
    req: () =>
      batch({
        events: [tick, { type: "webhook.received", source: "billing", delivery_id: null, headers: {}, body: {} }],
      }),
    status: 422,
    at: { path: "/events/1/type" },
  },
  {
    name: "client-set meta.ingress claiming a webhook",
    req: () => ev({ ...tick, meta: { ingress: { kind: "webhook", source: "gh", scheme: "github" } } }),
    status: 422,
    at: { path: "/meta/ingress" },
  },
  {
    name: "client-set meta.ingress claiming another key",
    req: () => ev({ ...tick, meta: { ingress: { kind: "api", key: "admin" } } }),
    status: 422,
    at: { path: "/meta/ingress" },
  },
  {
    name: "client-set meta.ingress in a batch",
    req: () => batch({ events: [{ ...tick, meta: { ingress: "ws" } }] }),
    status: 422,
    at: { path: "/events/0/meta/ingress" },
  },
  // --- names a bare API key may not claim ---
  {
    name: "API event under a webhook source's name",
    req: () => ev({ ...tick, source: "gh" }),
    status: 403,
    at: { path: "/source" },
  },
  {
    name: "webhook source's name in the second item of a batch",
    req: () => batch({ events: [tick, { ...tick, source: "billing" }] }),
    status: 403,
    at: { path: "/events/1/source" },
  },
  {
    name: "both meta.causation_id and meta.client_causation_id",
    req: () => ev({ ...tick, meta: { causation_id: "a", client_causation_id: "b" } }),
    status: 422,
    at: { path: "/meta/client_causation_id" },
  },
  {
    name: "a trigger's declared output type (issue.triaged)",
    req: () =>
      ev({ type: "issue.triaged", source: "s", repository: "a/b", issue_number: 1, labels: ["bug"], summary: "x" }),
    status: 403,
    at: { path: "/type" },
  },
  // --- internal meta keys that decide what runs ---
  {
    name: "client-set meta.replay",
    req: () => ev({ ...tick, meta: { replay: "job-1" } }),
    status: 422,
    at: { path: "/meta/replay" },
  },
  {
    name: "client-set meta.replay_target (silencing triggers)",
    req: () => ev({ ...tick, meta: { replay_target: "nobody" } }),
    status: 422,
    at: { path: "/meta/replay_target" },
  },
  {
    name: "client-set meta.replay_of",
    req: () => ev({ ...tick, meta: { replay_of: crypto.randomUUID() } }),
    status: 422,
    at: { path: "/meta/replay_of" },
  },
  {
    name: "reserved meta key in the second item of a batch",
    req: () => batch({ events: [tick, { ...tick, meta: { replay_target: "x" } }] }),
    status: 422,
    at: { path: "/events/1/meta/replay_target" },
  },
  // --- prototype keys ---
  {
    name: "top-level __proto__ supplying the required fields",
    req: () => ev('{"type":"timer.tick","source":"s","__proto__":{"timer_name":"t","tick_count":1}}'),
    status: 422,
    at: { path: "/__proto__" },
  },
  {
    name: "__proto__ nested in a payload",
    req: () =>
      ev('{"type":"http.request","source":"s","method":"GET","path":"/","body":{"a":[{"__proto__":{"x":1}}]}}'),
    status: 422,
    at: { path: "/body/a/0/__proto__" },
  },
  {
    name: "__proto__ spelt with escapes",
    req: () =>
      ev('{"type":"timer.tick","source":"s","\\u005f\\u005fproto\\u005f\\u005f":{"timer_name":"t","tick_count":1}}'),
    status: 422,
    at: { path: "/__proto__" },
  },
  {
    name: "constructor key in meta",
    req: () =>
      ev('{"type":"timer.tick","source":"s","timer_name":"t","tick_count":1,"meta":{"constructor":{"prototype":1}}}'),
    status: 422,
    at: { path: "/meta/constructor" },
  },
  {
    name: "prototype key in a payload",
    req: () => ev('{"type":"http.request","source":"s","method":"GET","path":"/","body":{"prototype":{}}}'),
    status: 422,
    at: { path: "/body/prototype" },
  },
  {
    name: "__proto__ beside the events of a batch",
    req: () => batch(`{"events":[${json(tick)}],"__proto__":{"events":[]}}`),
    status: 422,
    at: { path: "/__proto__" },
  },
  {
    name: "__proto__ in a webhook body",
    req: () => hook("lab", '{"__proto__":{"admin":true}}', {}),
    status: 422,
    at: { path: "/__proto__" },
  },
  // --- compressed bodies ---
  {
    name: "Content-Encoding: gzip",
    req: () => ev(json(tick), { "content-encoding": "gzip" }),
    status: 415,
    at: { header: "content-encoding" },
  },
  {
    name: "Content-Encoding: identity, br",
    req: () => ev(json(tick), { "content-encoding": "identity, br" }),
    status: 415,
    at: { header: "content-encoding" },
  },
  {
    name: "Content-Encoding on a batch",
    req: () => authed("/events/batch", json({ events: [tick] }), { "content-encoding": "deflate" }),
    status: 415,
    at: { header: "content-encoding" },
  },
  {
    name: "Content-Encoding on a webhook",
    req: () => hook("lab", "{}", { "content-encoding": "gzip" }),
    status: 415,
    at: { header: "content-encoding" },
  },
  // --- bounded signature work ---
  {
    name: "github: signature header far over its size",
    req: async () =>
      hook("gh", ghBody, { ...(await githubHeaders(ghBody)), "x-hub-signature-256": `sha256=${"a".repeat(4000)}` }),
    status: 401,
    at: { header: "x-hub-signature-256" },
  },
  {
    name: "stripe: more v1 signatures than allowed",
    req: async () => {
      const body = stripeEvent();
      const h = (await stripeHeaders(body))["stripe-signature"]!;
      return hook("billing", body, { "stripe-signature": `${h}${",v1=00".repeat(8)}` });
    },
    status: 401,
    at: { header: "stripe-signature" },
  },
  {
    name: "standard-webhooks: more signatures than allowed",
    req: () => {
      const h = standardHeaders("{}");
      const extra = Array(8)
        .fill(`v1,${btoa("x".repeat(32))}`)
        .join(" ");
      return hook("svix", "{}", { ...h, "webhook-signature": `${extra} ${h["webhook-signature"]}` });
    },
    status: 401,
    at: { header: "webhook-signature" },
  },
  {
    name: "hmac-sha256: signature header over its size",
    req: () => hook("plain", "{}", { "x-signature": `sha256=${"0".repeat(2048)}` }),
    status: 401,
    at: { header: "x-signature" },
  },
  // --- cheap refusals, before the body is read ---
  {
    name: "unknown source, body never read",
    req: () => streamed("/webhooks/nosuch", { "content-type": "application/json" }),
    status: 404,
    at: { param: "source" },
  },
  {
    name: "missing signature, body never read",
    req: () => streamed("/webhooks/gh", { "content-type": "application/json", "x-github-delivery": "d-2" }),
    status: 401,
    at: { header: "x-hub-signature-256" },
  },
  {
    name: "stale standard-webhooks timestamp, body never read",
    req: () => {
      const h = standardHeaders("{}", "msg_old", new Date(Date.now() - 3600_000));
      return streamed("/webhooks/svix", { "content-type": "application/json", ...h });
    },
    status: 401,
    at: { header: "webhook-timestamp" },
  },
  {
    name: "webhook with a wrong content type, body never read",
    req: () => streamed("/webhooks/lab", { "content-type": "text/plain" }),
    status: 415,
    at: { header: "content-type" },
  },
  {
    name: "webhook declaring an oversize body, body never read",
    req: () => streamed("/webhooks/gh", { "content-type": "application/json", "content-length": String(MAX_BODY * 4) }),
    status: 413,
  },
  {
    name: "missing API key, body never read",
    req: () => streamed("/events", { "content-type": "application/json" }),
    status: 401,
    at: { header: "authorization" },
  },
  {
    name: "compressed event body, body never read",
    req: () =>
      streamed("/events", {
        "content-type": "application/json",
        "content-encoding": "gzip",
        authorization: `Bearer ${API_KEY}`,
      }),
    status: 415,
    at: { header: "content-encoding" },
  },
];
cases.push(...trustCases);

describe("bad-request corpus", () => {
  it(`has at least 95 cases, ${trustCases.length} of them on trust boundaries (${cases.length})`, () => {
    expect(cases.length).toBeGreaterThanOrEqual(95);
    expect(trustCases.length).toBeGreaterThanOrEqual(30);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
  });

  let env: TestEnv;
  it.each(cases)("$name -> $status", async (c) => {
    env ??= await ingestEnv({ WEBHOOK_SOURCES, MAX_BODY_BYTES: String(MAX_BODY), MAX_BATCH_EVENTS: "5" });
    const r = await call(env, await c.req());
    expect(r.status, r.text).toBe(c.status);
    expect(r.res.headers.get("content-type")).toBe("application/problem+json");
    expect(r.json).toMatchObject({
      type: expect.stringMatching(/^urn:reflex:problem:/),
      title: expect.any(String),
      status: c.status,
      detail: expect.any(String),
    });
    if (c.at) {
      expect(r.json.errors, r.text).toEqual(expect.arrayContaining([expect.objectContaining(c.at)]));
      for (const e of r.json.errors) expect(typeof e.message).toBe("string");
    }
    if (c.status === 401) expect(r.json.errors?.[0]?.header).toBeTruthy();
    // Nothing reached Redis: no stream entry, no dedupe, rate-limit or wake-up key.
    expect(await streamLength(env)).toBe(0);
    expect(await ingestKeysOf(env)).toEqual([]);
  });
});
