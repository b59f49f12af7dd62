/**
 * Node-side tooling: the .dev.vars handling of `npm run dev`, the stand-ins' fault
 * switches (used by the reliability suite), and what keeps the stand-ins to their one
 * client on a laptop (token, Origin, Host), seen from plain HTTP / WebSocket clients.
 */
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import { ensureDevVars, readDevVars } from "../../local/dev-vars";
import { type NeonProxy, startNeonProxy } from "../../local/neon-proxy";
import { type Gateway, startUpstashGateway } from "../../local/upstash-gateway";

const redisAt = () => {
  const [redisHost, port] = inject("redisAddress").split(":");
  return { redisHost, redisPort: Number(port) };
};
const pgAt = () => {
  const u = new URL(inject("pgAdminUrl"));
  return { pgHost: u.hostname, pgPort: Number(u.port || 5432) };
};

/** A raw request, so that Host and Origin can be set (fetch treats both as its own). */
function raw(
  url: string,
  o: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: o.method ?? "POST", headers: o.headers }, (res) => {
      let body = "";
      res.on("data", (d) => {
        body += d;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end(o.body);
  });
}

/** The status a WebSocket handshake gets (101 when it is accepted). */
function handshake(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.on("open", () => {
      ws.close();
      resolve(101);
    });
    ws.on("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on("error", () => resolve(0));
  });
}

describe(".dev.vars", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devvars-"));
  const file = path.join(dir, ".dev.vars");
  const example = path.join(dir, ".dev.vars.example");

  it("is created from the example, then only gains new variables, never losing user values", () => {
    fs.rmSync(file, { force: true });
    fs.writeFileSync(example, "# c\nA=1\nB=two\n");
    expect(ensureDevVars(file, example)).toEqual(["A", "B"]);
    fs.writeFileSync(file, "A=mine\nB=\n");
    fs.writeFileSync(example, "A=1\nB=two\nC=3\n");
    expect(ensureDevVars(file, example)).toEqual(["C"]);
    expect(readDevVars(file)).toEqual({ A: "mine", B: "", C: "3" });
    expect(ensureDevVars(file, example)).toEqual([]);
  });

  it("gets a random token of its own wherever the example says <random>, and replaces the old fixed one", () => {
    fs.rmSync(file, { force: true });
    fs.writeFileSync(example, "UPSTASH_REDIS_REST_TOKEN=<random>\nNEON_WS_PROXY=127.0.0.1:8078/<random>\n");
    ensureDevVars(file, example);
    const first = readDevVars(file);
    expect(first.UPSTASH_REDIS_REST_TOKEN).toMatch(/^[0-9a-f]{48}$/);
    expect(first.NEON_WS_PROXY).toBe(`127.0.0.1:8078/${first.UPSTASH_REDIS_REST_TOKEN}`);
    expect(fs.statSync(file).mode & 0o077).toBe(0);
    fs.rmSync(file);
    ensureDevVars(file, example);
    expect(readDevVars(file).UPSTASH_REDIS_REST_TOKEN).not.toBe(first.UPSTASH_REDIS_REST_TOKEN);

    fs.writeFileSync(file, "UPSTASH_REDIS_REST_TOKEN=local-dev-token-change-me\nNEON_WS_PROXY=127.0.0.1:8078\nX=1\n");
    expect(ensureDevVars(file, example).sort()).toEqual(["NEON_WS_PROXY", "UPSTASH_REDIS_REST_TOKEN"]);
    const upgraded = readDevVars(file);
    expect(upgraded.UPSTASH_REDIS_REST_TOKEN).toMatch(/^[0-9a-f]{48}$/);
    expect(upgraded.NEON_WS_PROXY).toMatch(/^127\.0\.0\.1:8078\/[0-9a-f]{48}$/);
    expect(upgraded.X).toBe("1");
    fs.writeFileSync(file, "UPSTASH_REDIS_REST_TOKEN=my-own\nNEON_WS_PROXY=127.0.0.1:9000/mine\n");
    expect(ensureDevVars(file, example)).toEqual([]);
    expect(readDevVars(file)).toEqual({ UPSTASH_REDIS_REST_TOKEN: "my-own", NEON_WS_PROXY: "127.0.0.1:9000/mine" });
  });
});

describe("Upstash gateway protocol edges", () => {
  let gw: Gateway;
  const token = "node-test-token";
  const call = (body: unknown, p = "/", headers: Record<string, string> = {}) =>
    fetch(gw.url + p, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, ...headers },
      body: JSON.stringify(body),
    });

  beforeAll(async () => {
    gw = await startUpstashGateway({ token, ...redisAt() });
  });
  afterAll(() => gw.close());

  it("encodes every string at any depth in base64 mode, status replies included", async () => {
    const key = `t:node:${Date.now()}`;
    expect(await (await call(["SET", key, "v"], "/", { "upstash-encoding": "base64" })).json()).toEqual({
      result: Buffer.from("OK").toString("base64"),
    });
    const r = await (
      await call(
        [
          ["GET", key],
          ["INCR", `${key}:n`],
          ["GET", `${key}:none`],
          ["MGET", key, `${key}:none`],
        ],
        "/pipeline",
        { "upstash-encoding": "base64" },
      )
    ).json();
    expect(r).toEqual([{ result: "dg==" }, { result: 1 }, { result: null }, { result: ["dg==", null] }]);
    expect(await (await call(["GET", key])).json()).toEqual({ result: "v" });
    expect(await (await call(["SET", key, 12, "EX", 100])).json()).toEqual({ result: "OK" });
    expect(await (await call(["GET", key])).json()).toEqual({ result: "12" });
  });

  it("answers 401 without the token, 400 with the Redis error text, and injected faults", async () => {
    expect((await fetch(gw.url, { method: "POST", body: "[]" })).status).toBe(401);
    const bad = await call(["NOPE"]);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/^ERR unknown command 'NOPE'/);
    gw.setFault(503);
    expect((await call(["PING"])).status).toBe(503);
    gw.setFault("hang");
    const hung = await Promise.race([
      call(["PING"]).then(() => "answered"),
      new Promise((r) => setTimeout(() => r("held"), 300)),
    ]);
    expect(hung).toBe("held");
    gw.setFault(null);
    expect(await (await call(["PING"])).json()).toEqual({ result: "PONG" });
  });
});

describe("the stand-ins on a laptop", () => {
  let gw: Gateway;
  let proxy: NeonProxy;
  const token = "laptop-test-token-0123456789";
  beforeAll(async () => {
    gw = await startUpstashGateway({ token, ...redisAt() });
    proxy = await startNeonProxy(pgAt());
  });
  afterAll(async () => {
    await gw.close();
    await proxy.close();
  });

  it("the gateway answers only its token, and never a web page or a foreign Host", async () => {
    const ping = JSON.stringify(["PING"]);
    const ok = { authorization: `Bearer ${token}` };
    expect(await raw(gw.url, { headers: ok, body: ping })).toEqual({ status: 200, body: '{"result":"PONG"}' });
    const wrongAuth: Record<string, string>[] = [{}, { authorization: `Bearer ${token}x` }, { authorization: token }];
    for (const headers of wrongAuth) {
      expect((await raw(gw.url, { headers, body: ping })).status).toBe(401);
    }
    const fromPage = await raw(gw.url, { headers: { ...ok, origin: "https://evil.example" }, body: ping });
    expect(fromPage.status).toBe(403);
    expect(fromPage.body).toMatch(/Origin/);
    const preflight = await raw(gw.url, { method: "OPTIONS", headers: { origin: "http://127.0.0.1:3000" } });
    expect(preflight.status).toBe(403);
    const rebound = await raw(gw.url, { headers: { ...ok, host: `evil.example:${gw.port}` }, body: ping });
    expect(rebound.status).toBe(403);
    expect(rebound.body).toMatch(/not a loopback/);
    for (const host of [`localhost:${gw.port}`, `[::1]:${gw.port}`])
      expect((await raw(gw.url, { headers: { ...ok, host }, body: ping })).status).toBe(200);
  });

  it("the gateway refuses commands that reach the server's files, modules or role", async () => {
    const refused = [
      ["CONFIG", "SET", "dir", "/tmp"],
      ["config", "get", "dir"],
      ["SAVE"],
      ["BGSAVE"],
      ["BGREWRITEAOF"],
      ["MODULE", "LIST"],
      ["REPLICAOF", "127.0.0.1", "1"],
      ["SLAVEOF", "NO", "ONE"],
      ["MIGRATE", "127.0.0.1", "1", "k", "0", "100"],
    ];
    const headers = { authorization: `Bearer ${token}` };
    for (const cmd of refused) {
      const r = await raw(gw.url, { headers, body: JSON.stringify(cmd) });
      expect(r.status, cmd.join(" ")).toBe(400);
      expect(r.body).toContain(`'${cmd[0].toUpperCase()}' is not supported`);
      // inside a pipeline the whole request is refused: nothing of it reaches Redis
      const p = await raw(`${gw.url}/pipeline`, { headers, body: JSON.stringify([["PING"], cmd]) });
      expect(p.status).toBe(400);
    }
  });

  it("the proxy takes only handshakes with its token, from no web page, for a loopback Host", async () => {
    const [hostPort, proxyToken] = proxy.address.split("/");
    expect(proxyToken).toMatch(/^[0-9a-f]{48}$/);
    expect(await handshake(`ws://${proxy.address}/v1?address=x:5432`)).toBe(101);
    expect(await handshake(`ws://${hostPort}/v1?address=x:5432`)).toBe(401);
    const wrong = `${proxyToken.slice(0, -1)}${proxyToken.endsWith("0") ? "1" : "0"}`;
    expect(await handshake(`ws://${hostPort}/${wrong}/v1`)).toBe(401);
    expect(await handshake(`ws://${proxy.address}/v1`, { origin: "https://evil.example" })).toBe(403);
    expect(await handshake(`ws://${proxy.address}/v1`, { host: `evil.example:${proxy.port}` })).toBe(403);
  });
});

describe("Neon proxy", () => {
  it("refuses new connections while down and accepts them again after", async () => {
    const proxy = await startNeonProxy(pgAt());
    const open = () =>
      new Promise<string>((resolve) => {
        const ws = new WebSocket(`ws://${proxy.address}/v1`);
        ws.on("open", () => {
          ws.close();
          resolve("open");
        });
        ws.on("error", () => resolve("refused"));
      });
    expect(await open()).toBe("open");
    proxy.setDown(true);
    expect(await open()).toBe("refused");
    proxy.setDown(false);
    expect(await open()).toBe("open");
    await proxy.close();
  });
});
