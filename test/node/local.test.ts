/**
 * Node-side tooling: the .dev.vars handling of `npm run dev`, and the stand-ins' fault
 * switches (used by the reliability suite) seen from a plain HTTP / WebSocket client.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { ensureDevVars, readDevVars } from "../../local/dev-vars";
import { startNeonProxy } from "../../local/neon-proxy";
import { type Gateway, startUpstashGateway } from "../../local/upstash-gateway";

describe(".dev.vars", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devvars-"));
  const file = path.join(dir, ".dev.vars");
  const example = path.join(dir, ".dev.vars.example");

  it("is created from the example, then only gains new variables, never losing user values", () => {
    fs.writeFileSync(example, "# c\nA=1\nB=two\n");
    expect(ensureDevVars(file, example)).toEqual(["A", "B"]);
    fs.writeFileSync(file, "A=mine\nB=\n");
    fs.writeFileSync(example, "A=1\nB=two\nC=3\n");
    expect(ensureDevVars(file, example)).toEqual(["C"]);
    expect(readDevVars(file)).toEqual({ A: "mine", B: "", C: "3" });
    expect(ensureDevVars(file, example)).toEqual([]);
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
    gw = await startUpstashGateway({ token });
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

describe("Neon proxy", () => {
  it("refuses new connections while down and accepts them again after", async () => {
    const proxy = await startNeonProxy();
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
