/**
 * GET /ws against the worker's app inside workerd: the upgrade returns a real WebSocket
 * (WebSocketPair), the test holds its client end and talks to the server end the worker
 * accepted, with the real Redis and Postgres behind. Every frame is answered after the
 * append, or with a problem frame and nothing stored; limits close with their codes.
 */
import { createExecutionContext } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { app } from "../../src/app";
import { openRedis } from "../../src/backends/redis/client";
import { redisKeys } from "../../src/backends/redis/keys";
import { loadConfig } from "../../src/config";
import { openDb } from "../../src/db/client";
import { closedAfterEach } from "../support/closing";
import type { TestEnv } from "../support/env";
import { API_KEY, ingestEnv, ingestKeysOf, streamEvents, streamLength } from "../support/ingest";

const tick = (n: number, extra: Record<string, unknown> = {}) => ({
  type: "timer.tick",
  source: "ws-test",
  timer_name: "t",
  tick_count: n,
  ...extra,
});

interface Client {
  ws: WebSocket;
  /** The next frame the server sends, parsed. */
  next(): Promise<any>;
  closed: Promise<{ code: number; reason: string }>;
  send(v: unknown): void;
}

const open = closedAfterEach();

async function upgrade(env: TestEnv, headers: Record<string, string> = { authorization: `Bearer ${API_KEY}` }) {
  const req = new Request("http://reflex.test/ws", { headers: { upgrade: "websocket", ...headers } });
  return app.fetch(req, env, createExecutionContext());
}

async function connect(env: TestEnv, headers?: Record<string, string>): Promise<Client> {
  const res = await upgrade(env, headers);
  if (res.status !== 101) throw new Error(`no upgrade: ${res.status} ${await res.text()}`);
  const ws = res.webSocket!;
  open.socket(ws);
  const inbox: string[] = [];
  const waiting: Array<(s: string) => void> = [];
  ws.addEventListener("message", (m) => {
    const w = waiting.shift();
    if (w) w(m.data as string);
    else inbox.push(m.data as string);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason })),
  );
  ws.accept();
  return {
    ws,
    closed,
    send: (v) => ws.send(typeof v === "string" ? v : JSON.stringify(v)),
    next: async () => JSON.parse(inbox.shift() ?? (await new Promise<string>((r) => waiting.push(r)))),
  };
}

describe("GET /ws: the upgrade", () => {
  it("is refused before any socket without a valid key, or when it is not an upgrade; nothing stored", async () => {
    const env = await ingestEnv();
    const refusals: Array<[string, Record<string, string>, number, string]> = [
      ["no key", {}, 401, "authorization"],
      ["a wrong key", { authorization: "Bearer not-a-key-0123456789" }, 401, "authorization"],
      [
        "a key in the subprotocols without reflex.v1",
        { "sec-websocket-protocol": `bearer.${API_KEY}` },
        401,
        "sec-websocket-protocol",
      ],
      [
        "a wrong key in the subprotocols",
        { "sec-websocket-protocol": "reflex.v1, bearer.nope-nope-nope-nope" },
        401,
        "authorization",
      ],
    ];
    for (const [what, headers, status, header] of refusals) {
      const res = await upgrade(env, headers);
      expect(res.status, what).toBe(status);
      expect(res.webSocket, what).toBeNull();
      expect(res.headers.get("content-type")).toBe("application/problem+json");
      expect(((await res.json()) as { errors: Array<{ header: string }> }).errors[0]!.header, what).toBe(header);
    }
    const plain = await app.fetch(
      new Request("http://reflex.test/ws", { headers: { authorization: `Bearer ${API_KEY}` } }),
      env,
      createExecutionContext(),
    );
    expect(plain.status).toBe(426);
    expect(plain.webSocket).toBeNull();
    expect(await ingestKeysOf(env)).toEqual([]);
  });

  it("a browser's key in Sec-WebSocket-Protocol: the server selects reflex.v1 and never echoes the key", async () => {
    const env = await ingestEnv();
    const res = await upgrade(env, { "sec-websocket-protocol": `reflex.v1, bearer.${API_KEY}` });
    expect(res.status).toBe(101);
    expect(res.headers.get("sec-websocket-protocol")).toBe("reflex.v1");
    res.webSocket!.accept();
    open.socket(res.webSocket!);
  });
});

describe("GET /ws: frames", () => {
  it("one event per frame, answered after the append, in order; stored once with meta.ingress ws", async () => {
    const env = await ingestEnv();
    const c = await connect(env);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      c.send(tick(i));
      const ack = await c.next();
      expect(ack).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), status: "accepted" });
      ids.push(ack.id);
      // Answered only after the append: the event is already in the stream.
      expect((await streamEvents(env)).map((e) => e.id)).toEqual(ids);
    }
    const stored = await streamEvents(env);
    expect(stored.map((e) => e.tick_count)).toEqual([0, 1, 2]);
    expect(stored[0]!.meta.ingress).toEqual({ kind: "ws", key: expect.stringMatching(/^[0-9a-f]{16}$/) });
  });

  it('{"events": [...]} in a frame: ids in order; a retried frame with client ids is a duplicate', async () => {
    const env = await ingestEnv();
    const c = await connect(env);
    const mine = [crypto.randomUUID(), crypto.randomUUID()];
    const frame = { events: [tick(1, { id: mine[0] }), tick(2, { id: mine[1] })] };
    c.send(frame);
    expect(await c.next()).toEqual({ ids: mine, status: "accepted" });
    c.send(frame);
    expect(await c.next()).toEqual({ ids: mine, status: "duplicate" });
    expect(await streamLength(env)).toBe(2);
  });

  it("a bad frame gets a problem frame naming what is wrong, stores nothing, and the socket goes on", async () => {
    // Refused frames in a row close the socket (test/ingest/ws-limits.test.ts): an accepted frame after each bad one.
    const env = await ingestEnv();
    const c = await connect(env);
    const id = crypto.randomUUID();
    const bad: Array<[unknown, number, string]> = [
      ['{"type": "timer.tick",', 400, ""],
      [{ ...tick(1), tick_count: "x" }, 422, "/tick_count"],
      [{ type: "webhook.received", source: "gh", delivery_id: "d", headers: {}, body: {} }, 422, "/type"],
      [tick(1, { meta: { ingress: { kind: "webhook", source: "gh", scheme: "github" } } }), 422, "/meta/ingress"],
      [tick(1, { meta: { replay_target: "none" } }), 422, "/meta/replay_target"],
      ['{"type":"timer.tick","source":"s","__proto__":{"timer_name":"t","tick_count":1}}', 422, "/__proto__"],
      [{ events: [tick(1), { ...tick(2), source: 7 }] }, 422, "/events/1/source"],
      [{ events: [] }, 422, "/events"],
    ];
    for (const [frame, status, path] of bad) {
      c.send(frame);
      const p = await c.next();
      expect(p, JSON.stringify(frame)).toMatchObject({ status, type: expect.stringMatching(/^urn:reflex:problem:/) });
      expect(
        p.errors.map((e: { path: string }) => e.path),
        JSON.stringify(frame),
      ).toContain(path);
      c.send(tick(100));
      expect((await c.next()).status).toBe("accepted");
    }
    expect((await streamEvents(env)).map((e) => e.tick_count)).toEqual(bad.map(() => 100));
    // The same id with another body: 409, the first one kept.
    c.send(tick(1, { id }));
    expect(await c.next()).toEqual({ id, status: "accepted" });
    c.send(tick(2, { id }));
    expect(await c.next()).toMatchObject({ status: 409, errors: [{ path: "/id" }] });
    expect((await streamEvents(env)).map((e) => e.tick_count)).toEqual([...bad.map(() => 100), 1]);
  });
});

describe("GET /ws: limits close the socket with their code", () => {
  it("a binary frame: 1003", async () => {
    const c = await connect(await ingestEnv());
    c.ws.send(new Uint8Array([123, 125]));
    expect((await c.closed).code).toBe(1003);
  });

  it("a frame over MAX_BODY_BYTES: 1009, nothing stored", async () => {
    const env = await ingestEnv({ MAX_BODY_BYTES: "2048" });
    const c = await connect(env);
    c.send(tick(1, { timer_name: "x".repeat(3000) }));
    expect((await c.closed).code).toBe(1009);
    expect(await streamLength(env)).toBe(0);
  });

  it("more than WS_EVENTS_PER_S events: 1008; what was acknowledged is stored, the rest is not", async () => {
    const env = await ingestEnv({ WS_EVENTS_PER_S: "3" });
    const c = await connect(env);
    c.send({ events: [tick(1), tick(2)] });
    expect((await c.next()).status).toBe("accepted");
    c.send({ events: [tick(3), tick(4)] });
    const closed = await c.closed;
    expect(closed.code).toBe(1008);
    expect(closed.reason).toMatch(/3 events per second/);
    expect(await streamLength(env)).toBe(2);
  });

  it("silence for WS_IDLE_TIMEOUT_S: 1000", async () => {
    const c = await connect(await ingestEnv({ WS_IDLE_TIMEOUT_S: "1" }));
    const closed = await c.closed;
    expect(closed).toMatchObject({ code: 1000, reason: expect.stringMatching(/idle/) });
  });

  it("WS_MAX_FRAMES frames: answered, then 1000 asking to reconnect", async () => {
    const env = await ingestEnv({ WS_MAX_FRAMES: "2" });
    const c = await connect(env);
    c.send(tick(1));
    expect((await c.next()).status).toBe("accepted");
    c.send(tick(2));
    expect((await c.next()).status).toBe("accepted");
    expect(await c.closed).toMatchObject({ code: 1000, reason: expect.stringMatching(/reconnect/) });
    expect(await streamLength(env)).toBe(2);
  });

  it("the store failing: 1011 and no acknowledgement; earlier acknowledged frames are stored", async () => {
    const env = await ingestEnv();
    const c = await connect(env);
    c.send(tick(1));
    expect((await c.next()).status).toBe("accepted");
    const cfg = loadConfig(env);
    // The stream key becomes a string: the next XADD fails (WRONGTYPE), as a broken store would.
    const stream = redisKeys(cfg.REDIS_PREFIX).stream(0);
    const redis = openRedis(cfg);
    const kept = await streamEvents(env);
    await redis.del(stream);
    await redis.set(stream, "not a stream");
    c.send(tick(2));
    expect((await c.closed).code).toBe(1011);
    expect(kept.map((e) => e.tick_count)).toEqual([1]);
  });
});

describe("GET /ws with EVENT_BACKEND=postgres", () => {
  it("frames are stored as pending rows, acknowledged after the insert; 8 sockets at once", async () => {
    const env = await ingestEnv({ EVENT_BACKEND: "postgres", LOCK_BACKEND: "postgres" });
    delete env.UPSTASH_REDIS_REST_URL;
    delete env.UPSTASH_REDIS_REST_TOKEN;
    const clients = await Promise.all(Array.from({ length: 8 }, () => connect(env)));
    const acks = await Promise.all(
      clients.map(async (c, i) => {
        c.send({ events: [tick(i), tick(i + 100)] });
        return c.next();
      }),
    );
    expect(acks.every((a) => a.status === "accepted" && a.ids.length === 2)).toBe(true);
    const h = openDb(loadConfig(env));
    open.handle(h);
    const rows = (
      await h.db.execute<{ id: string; status: string; ingress: string }>(
        sql`SELECT id::text, status::text, meta->'ingress'->>'kind' AS ingress FROM events`,
      )
    ).rows;
    expect(rows).toHaveLength(16);
    expect(new Set(rows.map((r) => r.id))).toEqual(new Set(acks.flatMap((a) => a.ids)));
    expect(rows.every((r) => r.status === "pending" && r.ingress === "ws")).toBe(true);
  });
});
