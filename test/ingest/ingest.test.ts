import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { openRedis } from "../../src/backends/redis/client";
import { redisKeys, shardOf } from "../../src/backends/redis/keys";
import { loadConfig } from "../../src/config";
import {
  API_KEY,
  authed,
  call,
  ingestEnv,
  OTHER_KEY,
  post,
  recordingQueue,
  streamEvents,
  streamLength,
} from "../support/ingest";

const tick = (n: number, source = "cron:main") => ({ type: "timer.tick", source, timer_name: "main", tick_count: n });

describe("POST /events", () => {
  it("accepts a valid event: 202 with its id, the envelope in the stream as one field", async () => {
    const env = await ingestEnv();
    const r = await call(
      env,
      authed("/events", { type: "ws.message", source: "ws:client1", connection_id: "client1", content: "hello" }),
    );
    expect(r.status).toBe(202);
    expect(r.json).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), status: "accepted" });
    const events = await streamEvents(env);
    expect(events).toHaveLength(1);
    expect(events[0]).toEqual({
      id: r.json.id,
      type: "ws.message",
      source: "ws:client1",
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      // Where it came in is the server's record: the API key's id, never the client's word.
      meta: {
        trace_id: expect.stringMatching(/^[0-9a-f]{32}$/),
        ingress: { kind: "api", key: expect.stringMatching(/^[0-9a-f]{16}$/) },
      },
      connection_id: "client1",
      content: "hello",
    });
  });

  it("keeps a client UUID and timestamp (normalised to UTC), meta ids as client claims, and takes trace_id from traceparent", async () => {
    const env = await ingestEnv();
    const id = "3F2504E0-4F89-41D3-9A0C-0305E82C3301";
    const r = await call(
      env,
      authed(
        "/events",
        {
          id,
          type: "lifecycle",
          source: "svc",
          timestamp: "2026-03-01T12:00:00+02:00",
          meta: { correlation_id: "c-1", causation_id: "e-0" },
          action: "started",
        },
        { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" },
      ),
    );
    expect(r.status).toBe(202);
    expect(r.json.id).toBe(id.toLowerCase());
    const [ev] = await streamEvents(env);
    expect(ev).toMatchObject({
      id: id.toLowerCase(),
      timestamp: "2026-03-01T10:00:00.000Z",
      meta: { trace_id: "4bf92f3577b34da6a3ce929d0e0e4736", client_correlation_id: "c-1", client_causation_id: "e-0" },
      action: "started",
      details: "",
    });
  });

  it("an invalid traceparent is ignored (new trace id), a meta.trace_id in the body wins", async () => {
    const env = await ingestEnv();
    await call(
      env,
      authed("/events", tick(1), { traceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01" }),
    );
    await call(
      env,
      authed(
        "/events",
        { ...tick(2), meta: { trace_id: "mine" } },
        { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" },
      ),
    );
    const [a, b] = await streamEvents(env);
    expect(a!.meta.trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(a!.meta.trace_id).not.toBe("00000000000000000000000000000000");
    expect(b!.meta.trace_id).toBe("mine");
  });

  it("accepts every configured key and application/*+json with charset utf-8", async () => {
    const env = await ingestEnv();
    const r = await call(
      env,
      post("/events", tick(1), {
        authorization: `bearer ${OTHER_KEY}`,
        "content-type": "application/vnd.reflex+json; charset=UTF-8",
      }),
    );
    expect(r.status).toBe(202);
    expect(await streamLength(env)).toBe(1);
  });

  it("an unknown type is a 422 naming the registered types", async () => {
    const env = await ingestEnv();
    const r = await call(env, authed("/events", { type: "order.created", source: "shop" }));
    expect(r.status).toBe(422);
    expect(r.json.registered_types).toEqual([
      "http.request",
      "issue.triaged",
      "lifecycle",
      "timer.tick",
      "webhook.received",
      "ws.message",
    ]);
    expect(r.json.errors).toEqual([
      { path: "/type", message: expect.stringContaining("registered types: http.request, issue.triaged, lifecycle") },
    ]);
  });
});

describe("POST /events/batch", () => {
  it("publishes all events in one request and answers their ids in input order", async () => {
    const env = await ingestEnv();
    const events = [
      tick(1),
      { type: "http.request", source: "api", method: "POST", path: "/x", body: { a: 1 } },
      tick(3),
    ];
    const r = await call(env, authed("/events/batch", { events }));
    expect(r.status).toBe(202);
    expect(r.json.status).toBe("accepted");
    expect(r.json.ids).toHaveLength(3);
    const stored = await streamEvents(env);
    expect(stored.map((e) => e.id)).toEqual(r.json.ids);
    expect(stored.map((e) => e.type)).toEqual(["timer.tick", "http.request", "timer.tick"]);
    expect(stored[1]).toMatchObject({ method: "POST", path: "/x", headers: {}, body: { a: 1 } });
  });

  it("refuses the whole batch when any item is invalid, listing every item's errors", async () => {
    const env = await ingestEnv();
    const r = await call(
      env,
      authed("/events/batch", {
        events: [tick(1), { ...tick(2), tick_count: -1 }, tick(3), { type: "nope", source: "x" }],
      }),
    );
    expect(r.status).toBe(422);
    expect(r.json.detail).toBe("2 of 4 events are invalid; nothing was published");
    expect(r.json.errors).toEqual([
      { path: "/events/1/tick_count", message: expect.any(String) },
      { path: "/events/3/type", message: expect.stringContaining("registered types") },
    ]);
    expect(r.json.registered_types).toBeDefined();
    expect(await streamLength(env)).toBe(0);
  });

  it("refuses more than MAX_BATCH_EVENTS, and two items with one id", async () => {
    const env = await ingestEnv({ MAX_BATCH_EVENTS: "3" });
    const over = await call(env, authed("/events/batch", { events: [tick(1), tick(2), tick(3), tick(4)] }));
    expect(over.status).toBe(422);
    expect(over.json.errors).toEqual([{ path: "/events", message: "at most 3 events per batch (got 4)" }]);
    const id = crypto.randomUUID();
    const dup = await call(
      env,
      authed("/events/batch", {
        events: [
          { ...tick(1), id },
          { ...tick(2), id },
        ],
      }),
    );
    expect(dup.status).toBe(422);
    expect(dup.json.errors).toEqual([{ path: "/events/1/id", message: "same id as /events/0" }]);
    expect(await streamLength(env)).toBe(0);
  });

  it("a full default-size batch (500) goes through", async () => {
    const env = await ingestEnv();
    const events = Array.from({ length: 500 }, (_, i) => tick(i, `src-${i % 7}`));
    const r = await call(env, authed("/events/batch", { events }));
    expect(r.status).toBe(202);
    expect(await streamLength(env)).toBe(500);
  });
});

describe("publishing", () => {
  it("shards by a hash of the source when STREAM_SHARDS > 1; one source keeps its order in one shard", async () => {
    const env = await ingestEnv({ STREAM_SHARDS: "4" });
    const sources = ["a", "b", "c", "d", "e", "f", "g", "h"];
    const events = sources.flatMap((s) => [tick(1, s), tick(2, s)]);
    expect((await call(env, authed("/events/batch", { events }))).status).toBe(202);
    const cfg = loadConfig(env);
    const redis = openRedis(cfg);
    const keys = redisKeys(cfg.REDIS_PREFIX);
    const used = new Set(sources.map((s) => shardOf(s, 4)));
    expect(used.size).toBeGreaterThan(1);
    for (let shard = 0; shard < 4; shard++) {
      const expected = sources.filter((s) => shardOf(s, 4) === shard).length * 2;
      expect(Number(await redis.xlen(keys.stream(shard)))).toBe(expected);
    }
    const stored = await streamEvents(env);
    for (const s of sources) expect(stored.filter((e) => e.source === s).map((e) => e.tick_count)).toEqual([1, 2]);
  });

  it("trims by age with STREAM_RETENTION_S (approximate MINID)", async () => {
    const env = await ingestEnv({ STREAM_RETENTION_S: "60" });
    const cfg = loadConfig(env);
    const redis = openRedis(cfg);
    const stream = redisKeys(cfg.REDIS_PREFIX).stream(0);
    // 300 entries from long ago (explicit ids in 1970): whole radix-tree nodes MINID ~ may drop.
    const p = redis.pipeline();
    for (let i = 1; i <= 300; i++) p.xadd(stream, `${i}-0`, { e: "{}" });
    await p.exec();
    expect((await call(env, authed("/events", tick(1)))).status).toBe(202);
    const left = Number(await redis.xlen(stream));
    expect(left).toBeLessThan(301);
    expect(left).toBeGreaterThanOrEqual(1);
    const last = (await redis.xrevrange(stream, "+", "-", 1)) as Record<string, Record<string, unknown>>;
    expect(Object.keys(last)[0]).not.toMatch(/^\d{1,3}-0$/); // the newest entry is ours, not an old one
  });

  it("Redis unreachable: 503 with Retry-After and a problem body, never 2xx", async () => {
    const env = await ingestEnv({ UPSTASH_REDIS_REST_URL: "http://127.0.0.1:9" });
    const r = await call(env, authed("/events", tick(1)));
    expect(r.status).toBe(503);
    expect(r.res.headers.get("retry-after")).toBe("2");
    expect(r.res.headers.get("content-type")).toBe("application/problem+json");
    expect(r.json).toMatchObject({ status: 503, title: "Event store unavailable" });
  });

  it("Redis answering errors (wrong token): 503, and nothing is stored", async () => {
    const env = await ingestEnv({ UPSTASH_REDIS_REST_TOKEN: "wrong-token", RATE_LIMIT_KEY_EVENTS: "0" });
    const r = await call(env, authed("/events/batch", { events: [tick(1), tick(2)] }));
    expect(r.status).toBe(503);
    expect(r.res.headers.get("retry-after")).toMatch(/^\d+$/);
    const good = await ingestEnv({ REDIS_PREFIX: env.REDIS_PREFIX });
    expect(await streamLength(good)).toBe(0);
  });
});

describe("wake-up", () => {
  it("a burst of events sends one wake-up (now + trailing), not one per event; a new window sends again", async () => {
    // A window far longer than the burst takes, so the count does not depend on speed.
    const { queue, sent } = recordingQueue();
    const env = await ingestEnv({ WAKE_QUEUE: queue, WAKE_DEBOUNCE_MS: "60000" });
    for (let i = 0; i < 20; i++) expect((await call(env, authed("/events", tick(i)))).status).toBe(202);
    expect((await call(env, authed("/events/batch", { events: [tick(20), tick(21)] }))).status).toBe(202);
    expect(await streamLength(env)).toBe(22);
    expect(sent).toEqual([
      { body: { kind: "wake", at: expect.any(Number) } },
      { body: { kind: "wake", at: expect.any(Number) }, delaySeconds: 60 },
    ]);
  });

  it("once the window has passed, the next publish sends a new wake-up", async () => {
    const { queue, sent } = recordingQueue();
    const env = await ingestEnv({ WAKE_QUEUE: queue, WAKE_DEBOUNCE_MS: "100" });
    expect((await call(env, authed("/events", tick(1)))).status).toBe(202);
    expect(sent).toHaveLength(2);
    await new Promise((r) => setTimeout(r, 150)); // longer than the window: it has surely closed
    expect((await call(env, authed("/events", tick(2)))).status).toBe(202);
    expect(sent).toHaveLength(4);
    expect(sent[3]).toEqual({ body: { kind: "wake", at: expect.any(Number) }, delaySeconds: 1 });
  });

  it("no WAKE_QUEUE binding: events are still accepted (cron drains)", async () => {
    const env = await ingestEnv();
    expect(env.WAKE_QUEUE).toBeUndefined();
    expect((await call(env, authed("/events", tick(1)))).status).toBe(202);
  });
});

describe("per-key rate limit", () => {
  it("counts events (a batch of n costs n); 429 with Retry-After; other keys unaffected", async () => {
    const env = await ingestEnv({ RATE_LIMIT_KEY_EVENTS: "5", RATE_LIMIT_WINDOW_S: "60" });
    expect((await call(env, authed("/events/batch", { events: [tick(1), tick(2), tick(3), tick(4)] }))).status).toBe(
      202,
    );
    expect((await call(env, authed("/events", tick(5)))).status).toBe(202);
    const limited = await call(env, authed("/events", tick(6)));
    expect(limited.status).toBe(429);
    expect(Number(limited.res.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(limited.json).toMatchObject({ status: 429, limit: 5, window_s: 60 });
    const other = await call(env, post("/events", tick(7), { authorization: `Bearer ${OTHER_KEY}` }));
    expect(other.status).toBe(202);
    expect(await streamLength(env)).toBe(6);
    // The key itself never appears in Redis; its id (a digest prefix) does.
    const keys = (await openRedis(loadConfig(env)).keys(`${env.REDIS_PREFIX}:*`)) as string[];
    expect(keys.join()).not.toContain(API_KEY);
  });
});

describe("OpenAPI and errors", () => {
  it("/openapi.json describes every ingest route and each registered event type", async () => {
    const res = await exports.default.fetch("http://x/openapi.json");
    expect(res.status).toBe(200);
    const doc = (await res.json()) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/events", "/events/batch", "/webhooks/{source}"]));
    expect(Object.keys(doc.paths["/webhooks/{source}"].post.responses).sort()).toEqual([
      "200",
      "202",
      "400",
      "401",
      "404",
      "413",
      "415",
      "422",
      "429",
      "503",
    ]);
    const titles = doc.components.schemas.EventInput.oneOf.map((v: { title: string }) => v.title);
    expect(titles).toEqual(
      expect.arrayContaining(["ws.message", "http.request", "timer.tick", "lifecycle", "webhook.received"]),
    );
    expect(doc.components.securitySchemes.apiKey).toMatchObject({ type: "http", scheme: "bearer" });
  });

  it("/docs serves the interactive reference", async () => {
    const res = await exports.default.fetch("http://x/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    expect(await res.text()).toContain("/openapi.json");
  });

  it("unknown routes answer a 404 problem", async () => {
    const res = await exports.default.fetch("http://x/nope");
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    expect(await res.json()).toMatchObject({ status: 404, title: "Not Found" });
  });
});
