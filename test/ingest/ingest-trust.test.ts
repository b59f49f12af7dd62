/**
 * What a sender may not claim, on both backends, through the worker's app against the real
 * local Redis and Postgres: an event timestamp further than EVENT_MAX_FUTURE_SKEW_S in the
 * future (POST /events, /events/batch, GET /ws: a 422 naming `timestamp`, nothing stored), and
 * a webhook delivery id that one source shares with another (dedupe keys are per source, even
 * when source names contain ":").
 */
import { createExecutionContext } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { app } from "../../src/app";
import { openRedis } from "../../src/backends/redis/client";
import { redisKeys } from "../../src/backends/redis/keys";
import { loadConfig } from "../../src/config";
import { type DbHandle, openDb } from "../../src/db/client";
import type { EventEnvelope } from "../../src/events/envelope";
import { closedAfterEach } from "../support/closing";
import type { TestEnv } from "../support/env";
import { API_KEY, authed, call, ingestEnv, pgIngestEnv, streamEvents, tableEvents, tick } from "../support/ingest";
import { hook } from "../support/webhooks";

const open = closedAfterEach();

/** Unsigned sources whose names, joined to a delivery id with ":", could read alike. */
const SOURCES = JSON.stringify({
  "a:b": { scheme: "none", unsigned: true, id_header: "x-request-id" },
  a: { scheme: "none", unsigned: true, id_header: "x-request-id" },
  lab: { scheme: "none", unsigned: true, id_header: "x-request-id" },
});

function db(env: TestEnv): DbHandle {
  const h = openDb(loadConfig(env));
  open.handle(h);
  return h;
}

interface Backend {
  name: "redis" | "postgres";
  env(overrides?: Record<string, unknown>): Promise<TestEnv>;
  /** Every stored event, in arrival order. */
  stored(env: TestEnv): Promise<EventEnvelope[]>;
  /** The dedupe keys recorded, as ingest named them. */
  dedupeKeys(env: TestEnv): Promise<string[]>;
}

const backends: Backend[] = [
  {
    name: "redis",
    env: (o = {}) => ingestEnv({ WEBHOOK_SOURCES: SOURCES, ...o }),
    stored: streamEvents,
    async dedupeKeys(env) {
      const cfg = loadConfig(env);
      const prefix = redisKeys(cfg.REDIS_PREFIX).dedupe("");
      const keys = (await openRedis(cfg).keys(`${prefix}*`)) as string[];
      return keys.map((k) => k.slice(prefix.length)).sort();
    },
  },
  {
    name: "postgres",
    env: (o = {}) => pgIngestEnv({ WEBHOOK_SOURCES: SOURCES, ...o }),
    stored: tableEvents,
    async dedupeKeys(env) {
      const r = await db(env).db.execute<{ key: string }>(sql`SELECT key FROM webhook_deliveries ORDER BY key`);
      return r.rows.map((x) => x.key);
    },
  },
];

const inSeconds = (s: number) => new Date(Date.now() + s * 1000).toISOString();

/** The first frame the server answers on a fresh /ws connection after `frame`. */
async function wsAnswer(env: TestEnv, frame: unknown): Promise<any> {
  const res = await app.fetch(
    new Request("http://reflex.test/ws", { headers: { upgrade: "websocket", authorization: `Bearer ${API_KEY}` } }),
    env,
    createExecutionContext(),
  );
  expect(res.status).toBe(101);
  const ws = res.webSocket!;
  open.socket(ws);
  const answer = new Promise<string>((resolve) => ws.addEventListener("message", (m) => resolve(m.data as string)));
  ws.accept();
  ws.send(JSON.stringify(frame));
  return JSON.parse(await answer);
}

describe.each(backends)("event timestamps in the future ($name)", (b) => {
  it("further than EVENT_MAX_FUTURE_SKEW_S (300 s): 422 naming timestamp, nothing stored", async () => {
    const env = await b.env();
    const one = await call(env, authed("/events", tick(1, { timestamp: inSeconds(3600) })));
    expect(one.status, one.text).toBe(422);
    expect(one.json.errors).toEqual([
      { path: "/timestamp", message: expect.stringMatching(/more than 300 s ahead of the server's clock/) },
    ]);
    const batch = await call(
      env,
      authed("/events/batch", { events: [tick(1), tick(2, { timestamp: "9999-12-31T23:59:59.999Z" })] }),
    );
    expect(batch.status, batch.text).toBe(422);
    expect(batch.json.errors.map((e: { path: string }) => e.path)).toEqual(["/events/1/timestamp"]);
    const frame = await wsAnswer(env, tick(3, { timestamp: inSeconds(3600) }));
    expect(frame).toMatchObject({ status: 422, errors: [{ path: "/timestamp" }] });
    expect(await b.stored(env)).toEqual([]);
  });

  it("within the skew, and the past, are kept as sent; the instant counts, not the written offset", async () => {
    const env = await b.env();
    const soon = inSeconds(60);
    // An hour ahead on the clock face, written at +01:00: the same instant as now.
    const now = new Date();
    const local = new Date(now.getTime() + 3_600_000).toISOString().replace("Z", "+01:00");
    for (const timestamp of [soon, "2020-01-01T00:00:00.000Z", local]) {
      const r = await call(env, authed("/events", tick(1, { timestamp })));
      expect(r.status, `${timestamp}: ${r.text}`).toBe(202);
    }
    const frame = await wsAnswer(env, tick(2, { timestamp: soon }));
    expect(frame.status).toBe("accepted");
    expect((await b.stored(env)).length).toBe(4);
  });

  it("EVENT_MAX_FUTURE_SKEW_S sets the bound", async () => {
    const env = await b.env({ EVENT_MAX_FUTURE_SKEW_S: "7200" });
    expect((await call(env, authed("/events", tick(1, { timestamp: inSeconds(3600) })))).status).toBe(202);
    const far = await call(env, authed("/events", tick(2, { timestamp: inSeconds(3 * 3600) })));
    expect(far.status).toBe(422);
    expect(far.json.errors[0].message).toMatch(/more than 7200 s ahead/);
    expect((await b.stored(env)).map((e) => e.tick_count)).toEqual([1]);
  });
});

describe.each(backends)("webhook dedupe keys per source ($name)", (b) => {
  it('"a:b" with delivery "c" and "a" with delivery "b:c" are two deliveries; each redelivery is its own duplicate', async () => {
    const env = await b.env();
    const first = await call(env, hook("a:b", '{"n":1}', { "x-request-id": "c" }));
    expect(first.status, first.text).toBe(202);
    const second = await call(env, hook("a", '{"n":1}', { "x-request-id": "b:c" }));
    expect(second.status, second.text).toBe(202);
    expect(second.json.id).not.toBe(first.json.id);
    const again1 = await call(env, hook("a:b", '{"n":1}', { "x-request-id": "c" }));
    expect(again1.json).toEqual({ id: first.json.id, status: "duplicate" });
    const again2 = await call(env, hook("a", '{"n":1}', { "x-request-id": "b:c" }));
    expect(again2.json).toEqual({ id: second.json.id, status: "duplicate" });
    const stored = await b.stored(env);
    expect(stored.map((e) => [e.source, e.delivery_id])).toEqual([
      ["a:b", "c"],
      ["a", "b:c"],
    ]);
  });

  it('a source without ":" keeps the key it always had, so keys stored before still dedupe', async () => {
    const env = await b.env();
    expect((await call(env, hook("lab", "{}", { "x-request-id": "r-1" }))).status).toBe(202);
    expect((await call(env, hook("a:b", "{}", { "x-request-id": "r-2" }))).status).toBe(202);
    expect(await b.dedupeKeys(env)).toEqual(["a%3Ab:r-2", "lab:r-1"]);
  });
});
