/**
 * The worker tests see their bindings from the test setup only. In a copy of the checkout
 * with a `.dev.vars` and a `.env` full of values that break tests (an ADMIN_TOKEN, one
 * attempt before the DLQ, destinations, API keys, other services), a workers test run by
 * Vitest as `npm test` runs it checks that none of them reaches the worker.
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, inject, it } from "vitest";
import { projectCopy } from "../support/project";

const HOSTILE = [
  "ADMIN_TOKEN=hostile-admin-token-0123456789",
  "API_KEYS=hostile-key-1,hostile-key-2",
  "EVENT_MAX_ATTEMPTS=1",
  "EVENT_BACKEND=postgres",
  'DESTINATIONS=[{"name":"hostile","url":"http://127.0.0.1:9/x","filter":{}}]',
  'WEBHOOK_SOURCES={"hostile":{"scheme":"none","unsigned":true}}',
  "UPSTASH_REDIS_REST_URL=http://127.0.0.1:9",
  "UPSTASH_REDIS_REST_TOKEN=hostile",
  "DATABASE_URL=postgresql://hostile@127.0.0.1:9/hostile",
  "REDIS_PREFIX=hostile",
  "RATE_LIMIT_KEY_EVENTS=1",
  "HOSTILE_EXTRA=1",
].join("\n");

const PROBE = `
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import { loadConfig } from "../src/config";
import { call } from "./support/admin";
import { freshEnv } from "./support/env";

it("sees nothing of .dev.vars or .env", async () => {
  const bindings = env as unknown as Record<string, unknown>;
  const hostile = ${JSON.stringify(HOSTILE.split("\n").map((l) => l.split("=")[0]))};
  const wranglerVars = ["EVENT_BACKEND", "EVENT_MAX_ATTEMPTS"];
  for (const k of hostile.filter((k) => !wranglerVars.includes(k))) expect(bindings[k], k).toBeUndefined();
  expect(bindings.EVENT_BACKEND).toBe("redis");
  expect(bindings.EVENT_MAX_ATTEMPTS).toBe("3");
  const e = await freshEnv();
  const cfg = loadConfig(e);
  expect(cfg.ADMIN_TOKEN).toBeUndefined();
  expect(cfg.EVENT_MAX_ATTEMPTS).toBe(3);
  expect(cfg.DESTINATIONS).toEqual([]);
  expect(cfg.RATE_LIMIT_KEY_EVENTS).toBe(10000);
  expect(cfg.API_KEYS).toEqual([]);
  expect((await call(e, "GET", "/events/dlq", { token: "hostile-admin-token-0123456789" })).status).toBe(503);
});
`;

const copy = projectCopy();
afterAll(() => copy.remove());

describe("test isolation from a developer's local variables", () => {
  it("a workers test run with a hostile .dev.vars and .env in place sees none of it", async () => {
    fs.writeFileSync(path.join(copy.dir, ".dev.vars"), `${HOSTILE}\n`);
    fs.writeFileSync(path.join(copy.dir, ".env"), `${HOSTILE}\n`);
    fs.writeFileSync(path.join(copy.dir, "test", "hermetic-probe.test.ts"), PROBE);
    const run = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(
        process.execPath,
        [
          path.join(copy.dir, "node_modules", "vitest", "vitest.mjs"),
          "run",
          "--project",
          "workers",
          "test/hermetic-probe.test.ts",
        ],
        {
          cwd: copy.dir,
          // The run reuses this run's services instead of finding or starting its own.
          env: {
            ...process.env,
            REFLEX_LOCAL_REDIS: inject("redisAddress"),
            REFLEX_LOCAL_POSTGRES: inject("pgAdminUrl"),
            NO_COLOR: "1",
          },
          timeout: 240_000,
          maxBuffer: 16 * 1024 * 1024,
        },
        (err, stdout, stderr) =>
          resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, out: stdout + stderr }),
      );
    });
    expect(run.code, run.out).toBe(0);
    expect(run.out).toMatch(/Tests\s+1 passed \(1\)/);
  }, 300_000);
});
