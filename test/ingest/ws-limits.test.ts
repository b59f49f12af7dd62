/**
 * GET /ws limits hold for every frame, not only the frames that are stored: a refused frame
 * counts toward WS_MAX_FRAMES and WS_EVENTS_PER_S, WS_MAX_REFUSED_FRAMES problem frames in a
 * row close the socket, only accepted frames keep an idle socket open, and frames piling up
 * behind the one being appended are refused past a bound instead of buffered.
 */
import { createExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { app } from "../../src/app";
import { WS_MAX_WAITING_FRAMES } from "../../src/ingest/ws-route";
import { closedAfterEach } from "../support/closing";
import type { TestEnv } from "../support/env";
import { API_KEY, ingestEnv, streamLength } from "../support/ingest";

const tick = (n: number) => ({ type: "timer.tick", source: "ws-limits", timer_name: "t", tick_count: n });
const BAD = '{"type": "timer.tick",';

interface Client {
  /** The next frame the server sends, parsed; null once the socket closed. */
  next(): Promise<any>;
  closed: Promise<{ code: number; reason: string }>;
  /** Whether the close has arrived. */
  isClosed(): boolean;
  send(v: unknown): void;
}

const open = closedAfterEach();

async function connect(env: TestEnv): Promise<Client> {
  const req = new Request("http://reflex.test/ws", {
    headers: { upgrade: "websocket", authorization: `Bearer ${API_KEY}` },
  });
  const res = await app.fetch(req, env, createExecutionContext());
  if (res.status !== 101) throw new Error(`no upgrade: ${res.status} ${await res.text()}`);
  const ws = res.webSocket!;
  open.socket(ws);
  const inbox: Array<string | null> = [];
  const waiting: Array<(s: string | null) => void> = [];
  let isClosed = false;
  const deliver = (s: string | null) => {
    const w = waiting.shift();
    if (w) w(s);
    else inbox.push(s);
  };
  ws.addEventListener("message", (m) => deliver(m.data as string));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.addEventListener("close", (e) => {
      isClosed = true;
      resolve({ code: e.code, reason: e.reason });
      // Anyone still waiting for a frame learns there will be none.
      for (const w of waiting.splice(0)) w(null);
      inbox.push(null);
    }),
  );
  ws.accept();
  return {
    closed,
    isClosed: () => isClosed,
    send: (v) => ws.send(typeof v === "string" ? v : JSON.stringify(v)),
    next: async () => {
      const s = inbox.length ? inbox.shift()! : await new Promise<string | null>((r) => waiting.push(r));
      if (s === null) inbox.unshift(null);
      return s === null ? null : JSON.parse(s);
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("GET /ws: refused frames are charged like any other", () => {
  it("they count toward WS_MAX_FRAMES: answered, then 1000 asking to reconnect", async () => {
    const env = await ingestEnv({ WS_MAX_FRAMES: "3" });
    const c = await connect(env);
    c.send(tick(1));
    expect((await c.next()).status).toBe("accepted");
    c.send(BAD);
    expect((await c.next()).status).toBe(400);
    c.send({ ...tick(2), tick_count: "x" });
    expect((await c.next()).status).toBe(422);
    expect(await c.closed).toMatchObject({ code: 1000, reason: expect.stringMatching(/3 frames.*reconnect/) });
    expect(await streamLength(env)).toBe(1);
  });

  it("they count toward WS_EVENTS_PER_S: a burst of refused frames is closed with 1008 before it is all parsed", async () => {
    const env = await ingestEnv({ WS_EVENTS_PER_S: "2", WS_MAX_REFUSED_FRAMES: "100" });
    const c = await connect(env);
    for (let i = 0; i < 20; i++) c.send(BAD);
    const closed = await c.closed;
    expect(closed).toMatchObject({ code: 1008, reason: expect.stringMatching(/2 events per second/) });
    const answers: unknown[] = [];
    for (let a = await c.next(); a !== null; a = await c.next()) answers.push(a);
    // The frames taken before the limit are answered; the rest were never parsed.
    expect(answers.length).toBeLessThan(20);
    expect(answers.every((a) => (a as { status: number }).status === 400)).toBe(true);
    expect(await streamLength(env)).toBe(0);
  });
});

describe("GET /ws: refused frames in a row", () => {
  it("WS_MAX_REFUSED_FRAMES problem frames in a row close with 1008; an accepted frame starts the count again", async () => {
    const env = await ingestEnv({ WS_MAX_REFUSED_FRAMES: "3" });
    const c = await connect(env);
    for (let i = 0; i < 2; i++) {
      c.send(BAD);
      expect((await c.next()).status).toBe(400);
    }
    c.send(tick(1));
    expect((await c.next()).status).toBe("accepted");
    for (let i = 0; i < 3; i++) {
      expect(c.isClosed()).toBe(false);
      c.send({ ...tick(2), tick_count: "x" });
      expect((await c.next()).status).toBe(422);
    }
    expect(await c.closed).toMatchObject({ code: 1008, reason: expect.stringMatching(/3 refused frames in a row/) });
    expect(await streamLength(env)).toBe(1);
  });

  it("the default closes after 5", async () => {
    const c = await connect(await ingestEnv());
    for (let i = 0; i < 5; i++) {
      c.send(BAD);
      expect((await c.next()).status).toBe(400);
    }
    expect((await c.closed).code).toBe(1008);
  });
});

describe("GET /ws: the idle timer", () => {
  it("refused frames do not keep an idle socket open", async () => {
    const c = await connect(await ingestEnv({ WS_IDLE_TIMEOUT_S: "1", WS_MAX_REFUSED_FRAMES: "1000" }));
    // Refused frames for up to 8 s: the 1 s idle timeout must close the socket meanwhile.
    for (let i = 0; i < 80 && !c.isClosed(); i++) {
      c.send(BAD);
      await c.next();
      await sleep(100);
    }
    expect(c.isClosed()).toBe(true);
    expect(await c.closed).toMatchObject({ code: 1000, reason: expect.stringMatching(/idle/) });
  });
});

describe("GET /ws: frames waiting behind an append", () => {
  it(`past ${WS_MAX_WAITING_FRAMES} waiting: 1008; the frames taken are answered and stored, the rest are not`, async () => {
    const env = await ingestEnv();
    const c = await connect(env);
    const sent = WS_MAX_WAITING_FRAMES * 3;
    for (let i = 0; i < sent; i++) c.send(tick(i));
    const closed = await c.closed;
    expect(closed).toMatchObject({ code: 1008, reason: expect.stringMatching(/frames waiting/) });
    const acks: Array<{ status: string }> = [];
    for (let a = await c.next(); a !== null; a = await c.next()) acks.push(a);
    expect(acks.length).toBeLessThan(sent);
    expect(acks.every((a) => a.status === "accepted")).toBe(true);
    expect(await streamLength(env)).toBe(acks.length);
  });
});
