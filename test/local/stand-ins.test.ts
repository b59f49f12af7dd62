/**
 * The local stand-ins, exercised through the real production clients inside workerd:
 * @upstash/redis against local/upstash-gateway.ts, and @neondatabase/serverless + Drizzle
 * against local/neon-proxy.ts. Every Redis command family the project uses is covered.
 */

import { Redis } from "@upstash/redis/cloudflare";
import { eq, sql } from "drizzle-orm";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { loadConfig } from "../../src/config";
import { openDb } from "../../src/db/client";
import { events } from "../../src/db/schema";
import { freshEnv, type TestEnv } from "../support/env";

const url = () => inject("upstashUrl");
const token = () => inject("upstashToken");

/** Production settings: base64 responses, raw values. */
const raw = () => new Redis({ url: url(), token: token(), automaticDeserialization: false, retry: false });
/** The client's defaults: base64 responses and automatic JSON deserialisation. */
const defaults = () => new Redis({ url: url(), token: token(), retry: false });
/** No response encoding: plain JSON strings. */
const plain = () =>
  new Redis({ url: url(), token: token(), responseEncoding: false, automaticDeserialization: false, retry: false });

let p = "";
const k = (name: string) => `${p}:${name}`;

beforeAll(() => {
  p = `t:stand-ins:${crypto.randomUUID()}`;
});

describe("Upstash REST gateway", () => {
  it("strings: set/get/incr/mget/del, status replies, nil, numbers as arguments", async () => {
    const r = raw();
    expect(await r.set(k("a"), "hello")).toBe("OK");
    expect(await r.get(k("a"))).toBe("hello");
    expect(await r.get(k("missing"))).toBeNull();
    expect(await r.incrby(k("n"), 5)).toBe(5);
    expect(await r.set(k("b"), 42, { nx: true, ex: 60 })).toBe("OK");
    expect(await r.set(k("b"), 43, { nx: true })).toBeNull();
    expect(await r.mget(k("a"), k("b"), k("missing"))).toEqual(["hello", "42", null]);
    expect(await r.ttl(k("b"))).toBeGreaterThan(0);
    expect(await r.del(k("a"), k("b"), k("n"))).toBe(3);
  });

  it("values are binary-safe through base64 encoding: NUL, control characters, all of Unicode", async () => {
    const odd = `\u0000nul\r\n\t\u0001é漢字🙂\uffff${Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).join("")}`;
    for (const c of [raw(), plain()]) {
      await c.set(k("bin"), odd);
      expect(await c.get(k("bin"))).toBe(odd);
    }
    // a value that *looks* like base64 or JSON comes back unchanged
    await raw().set(k("b64"), "T0s=");
    expect(await raw().get(k("b64"))).toBe("T0s=");
  });

  it("values of several MiB", async () => {
    const big = `${"x".repeat(6 * 1024 * 1024)}end`;
    await raw().set(k("big"), big);
    const back = await raw().get<string>(k("big"));
    expect(back?.length).toBe(big.length);
    expect(back?.endsWith("end")).toBe(true);
    await raw().del(k("big"));
  });

  it("hashes and sorted sets", async () => {
    const r = raw();
    expect(await r.hset(k("h"), { f1: "v1", f2: "2" })).toBe(2);
    expect(await r.hget(k("h"), "f1")).toBe("v1");
    expect(await r.hincrby(k("h"), "f2", 3)).toBe(5);
    // raw mode hands the reply through as Redis sent it; the default client builds an object
    expect(await r.hgetall(k("h"))).toEqual(["f1", "v1", "f2", "5"]);
    expect(await defaults().hgetall(k("h"))).toEqual({ f1: "v1", f2: 5 });
    expect(await r.hdel(k("h"), "f1")).toBe(1);
    expect(await r.zadd(k("z"), { score: 2, member: "b" }, { score: 1, member: "a" })).toBe(2);
    expect(await r.zrange(k("z"), 0, -1, { withScores: true })).toEqual(["a", "1", "b", "2"]);
    expect(await r.zrange(k("z"), 0, 1, { byScore: true })).toEqual(["a"]);
    expect(await r.zscore(k("z"), "b")).toBe("2");
    expect(await r.zrem(k("z"), "a")).toBe(1);
    expect(await r.zcard(k("z"))).toBe(1);
  });

  it("the client's automatic deserialisation sees JSON values, as the warning in DESIGN.md says", async () => {
    await raw().set(k("j"), JSON.stringify({ a: 1 }));
    expect(await defaults().get(k("j"))).toEqual({ a: 1 });
    await raw().set(k("one"), "1");
    expect(await defaults().get(k("one"))).toBe(1);
  });

  it("EVAL and EVALSHA, with the client's NOSCRIPT fallback", async () => {
    const r = raw();
    const script = `return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1, redis.call('SET', KEYS[1], ARGV[1])}`;
    expect(await r.eval(script, [k("ev")], ["val", 41])).toEqual([k("ev"), "val", 42, "OK"]);
    // A fresh script: EVALSHA answers NOSCRIPT verbatim, the client falls back to EVAL.
    const s = r.createScript<number>(`return ${Math.floor(Math.random() * 1e9)}`);
    expect(typeof (await s.exec([], []))).not.toBe("undefined");
    await r.scriptFlush();
    await expect(r.evalsha("0".repeat(40), [], [])).rejects.toThrow(/NOSCRIPT/);
  });

  it("streams: XADD, XLEN, XRANGE, XGROUP, XREADGROUP, XPENDING, XAUTOCLAIM, XACK, XDEL, XTRIM, XINFO", async () => {
    const r = raw();
    const s = k("stream");
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await r.xadd(s, "*", { e: JSON.stringify({ i }) }));
    expect(await r.xlen(s)).toBe(5);
    const range = (await r.xrange(s, "-", "+")) as unknown as [string, string[]][];
    expect(range.map(([id]) => id)).toEqual(ids);
    expect(range[0][1]).toEqual(["e", '{"i":0}']);
    const parsed = (await defaults().xrange(s, "-", "+")) as Record<string, Record<string, unknown>>;
    expect(Object.keys(parsed)).toEqual(ids);

    expect(await r.xgroup(s, { type: "CREATE", group: "g", id: "0" })).toBe("OK");
    await expect(r.xgroup(s, { type: "CREATE", group: "g", id: "0" })).rejects.toThrow(/BUSYGROUP/);
    const read = (await r.xreadgroup("g", "c1", s, ">", { count: 3 })) as [string, [string, string[]][]][];
    expect(read[0][0]).toBe(s);
    expect(read[0][1].map(([id]) => id)).toEqual(ids.slice(0, 3));
    expect(read[0][1][0][1]).toEqual(["e", '{"i":0}']);

    const pending = (await r.xpending(s, "g", "-", "+", 10)) as [string, string, number, number][];
    expect(pending.map((p) => p[0])).toEqual(ids.slice(0, 3));
    expect(pending[0][1]).toBe("c1");

    const claimed = (await r.xautoclaim(s, "g", "c2", 0, "0-0", { count: 2 })) as [
      string,
      [string, string[]][],
      string[],
    ];
    expect(claimed[1].map(([id]) => id)).toEqual(ids.slice(0, 2));

    expect(await r.xack(s, "g", [ids[0], ids[1], ids[2]])).toBe(3);
    expect(await r.xdel(s, ids[4])).toBe(1);
    expect(await r.xtrim(s, { strategy: "MAXLEN", threshold: 2, exactness: "=" })).toBe(2);
    expect(await r.xlen(s)).toBe(2);
    const groups = (await r.xinfo(s, { type: "GROUPS" })) as unknown[][];
    expect(groups[0]).toContain("g");
    const consumers = (await r.xinfo(s, { type: "CONSUMERS", group: "g" })) as unknown[][];
    expect(consumers.length).toBe(2);
    // MINID trimming and XGROUP DELCONSUMER
    expect(await r.xtrim(s, { strategy: "MINID", threshold: ids[4], exactness: "=" })).toBe(2);
    expect(await r.xgroup(s, { type: "DELCONSUMER", group: "g", consumer: "c1" })).toBe(0);
  });

  it("pipelines keep per-command errors in place; auto-pipelined calls arrive together", async () => {
    const r = raw();
    await r.set(k("str"), "x");
    const res = await r.pipeline().set(k("p1"), "1").hget(k("str"), "f").get(k("p1")).exec({ keepErrors: true });
    expect(res[0]).toEqual({ result: "OK", error: undefined });
    expect(res[1].error).toMatch(/WRONGTYPE/);
    expect(res[2].result).toBe("1");
    await expect(r.pipeline().set(k("p2"), "1").hget(k("str"), "f").exec()).rejects.toThrow(
      /Command 2 \[ hget \] failed: WRONGTYPE/,
    );

    const auto = new Redis({ url: url(), token: token(), automaticDeserialization: false, enableAutoPipelining: true });
    const got = await Promise.all([auto.set(k("ap"), "v"), auto.get(k("p1")), auto.incr(k("apn"))]);
    expect(got).toEqual(["OK", "1", 1]);
  });

  it("transactions are atomic and report per-command results", async () => {
    const r = raw();
    const res = await r.multi().set(k("m1"), "a").incr(k("m2")).get(k("m1")).exec();
    expect(res).toEqual(["OK", 1, "a"]);
    // A command refused at queue time aborts the whole transaction: nothing is applied.
    await expect(r.multi().set(k("m3"), "never").eval("this is not lua", [], []).exec()).rejects.toThrow();
    // A runtime error inside EXEC fails only that command (Redis semantics).
    await r.set(k("str2"), "x");
    const mixed = await r.multi().incr(k("m4")).hget(k("str2"), "f").exec({ keepErrors: true });
    expect(mixed[0].result).toBe(1);
    expect(mixed[1].error).toMatch(/WRONGTYPE/);
  });

  it("many concurrent requests", async () => {
    const r = raw();
    const n = 300;
    await Promise.all(Array.from({ length: n }, (_, i) => r.incr(k("conc")).then(() => r.set(k(`c${i}`), String(i)))));
    expect(await r.get(k("conc"))).toBe(String(n));
    expect(await r.get(k("c299"))).toBe("299");
  });

  it("errors: Redis error text passes verbatim; bad token is refused", async () => {
    await expect(raw().eval("return redis.call('NOPE')", [], [])).rejects.toThrow(/Unknown Redis command/);
    const bad = new Redis({ url: url(), token: "wrong", retry: false });
    await expect(bad.get(k("a"))).rejects.toThrow(/Unauthorized/);
    const res = await fetch(url(), { method: "POST", body: JSON.stringify(["PING"]) });
    expect(res.status).toBe(401);
    const blocking = await fetch(url(), {
      method: "POST",
      headers: { authorization: `Bearer ${token()}` },
      body: JSON.stringify(["BLPOP", k("l"), "1"]),
    });
    expect(blocking.status).toBe(400);
    expect(((await blocking.json()) as { error: string }).error).toMatch(/not supported/);
  });

  it("refuses what a web page could send, and commands that reach the server's files or role", async () => {
    const headers = { authorization: `Bearer ${token()}` };
    const fromPage = await fetch(url(), {
      method: "POST",
      headers: { ...headers, origin: "https://evil.example" },
      body: JSON.stringify(["PING"]),
    });
    expect(fromPage.status).toBe(403);
    for (const cmd of [
      ["CONFIG", "SET", "dir", "/tmp"],
      ["SAVE"],
      ["MODULE", "LOAD", "/tmp/x.so"],
      ["SLAVEOF", "h", "1"],
    ]) {
      const r = await fetch(url(), { method: "POST", headers, body: JSON.stringify(cmd) });
      expect(r.status, cmd[0]).toBe(400);
      expect(((await r.json()) as { error: string }).error).toMatch(/not supported/);
    }
    expect(await raw().get(k("still-here"))).toBeNull();
  });
});

describe("Neon WebSocket proxy", () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await freshEnv();
  });

  it("runs Drizzle queries, transactions and concurrent pools through @neondatabase/serverless", async () => {
    const h = openDb(loadConfig(env));
    try {
      const id = crypto.randomUUID();
      await h.db.insert(events).values({
        id,
        type: "t",
        source: "s",
        timestamp: new Date("2026-01-01T00:00:00Z"),
        payload: { text: "ünï\u2028code", big: "y".repeat(200_000) },
        meta: { trace_id: "abc" },
        scope: "s",
      });
      const [row] = await h.db.select().from(events).where(eq(events.id, id));
      expect(row.payload.text).toBe("ünï\u2028code");
      expect((row.payload.big as string).length).toBe(200_000);
      expect(row.status).toBe("pending");

      await expect(
        h.db.transaction(async (tx) => {
          await tx.update(events).set({ status: "completed" }).where(eq(events.id, id));
          throw new Error("rollback");
        }),
      ).rejects.toThrow("rollback");
      const [after] = await h.db.select({ s: events.status }).from(events).where(eq(events.id, id));
      expect(after.s).toBe("pending");

      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => h.db.execute(sql`select ${i}::int as i, pg_sleep(0.01)`)),
      );
      expect(results.map((r) => r.rows[0].i)).toEqual(Array.from({ length: 20 }, (_, i) => i));
      await expect(h.db.execute(sql`select * from no_such_table`)).rejects.toThrow(/no_such_table/);
    } finally {
      await h.close();
    }
  });

  it("takes the driver only with the proxy's token, and no handshake from a web page", async () => {
    const [hostPort, proxyToken] = String(env.NEON_WS_PROXY).split("/");
    const wrong = openDb(loadConfig({ ...env, NEON_WS_PROXY: `${hostPort}/not-the-token` }));
    try {
      await expect(wrong.db.execute(sql`select 1`)).rejects.toThrow();
    } finally {
      await wrong.close();
    }
    const upgrade = { upgrade: "websocket" };
    expect((await fetch(`http://${hostPort}/v1`, { headers: upgrade })).status).toBe(401);
    const page = await fetch(`http://${hostPort}/${proxyToken}/v1`, {
      headers: { ...upgrade, origin: "https://evil.example" },
    });
    expect(page.status).toBe(403);
    const ok = await fetch(`http://${hostPort}/${proxyToken}/v1`, { headers: upgrade });
    expect(ok.status).toBe(101);
    ok.webSocket?.accept();
    ok.webSocket?.close();
  });
});
