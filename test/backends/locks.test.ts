/**
 * RedisScopeLocks against the real local Redis (through the Upstash stand-in), with two
 * lock owners as two consumer invocations: one holder per scope, token-owned (nobody else's
 * release frees it), expiring unless renewed.
 */
import { describe, expect, it } from "vitest";
import { openRedis } from "../../src/backends/redis/client";
import { redisKeys } from "../../src/backends/redis/keys";
import { RedisScopeLocks } from "../../src/backends/redis/locks";
import { loadConfig } from "../../src/config";
import { freshEnv } from "../support/env";

async function owners(leaseMs = 30_000) {
  const cfg = loadConfig(await freshEnv());
  const redis = openRedis(cfg);
  const keys = redisKeys(cfg.REDIS_PREFIX);
  const make = () => new RedisScopeLocks(redis, keys, leaseMs);
  return { a: make(), b: make() };
}

const sorted = (s: Set<string>) => [...s].sort();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("RedisScopeLocks", () => {
  it("a scope has one holder at a time, and only its holder's release frees it", async () => {
    const { a, b } = await owners();
    expect(sorted(await a.tryAcquire(["s1", "s2"]))).toEqual(["s1", "s2"]);
    expect(sorted(await b.tryAcquire(["s1", "s2", "s3"]))).toEqual(["s3"]);
    await b.release(["s1", "s2"]); // not b's: nothing happens
    expect(sorted(await b.tryAcquire(["s1", "s2"]))).toEqual([]);
    await a.release(["s1"]);
    expect(sorted(await b.tryAcquire(["s1", "s2"]))).toEqual(["s1"]);
  });

  it("a lease runs out unless renewed", async () => {
    const { a, b } = await owners(1_000);
    await a.tryAcquire(["kept", "lapsed"]);
    await sleep(600);
    await a.renew(["kept"]);
    await sleep(600); // past the first lease: only the renewal holds "kept"
    expect(sorted(await b.tryAcquire(["kept", "lapsed"]))).toEqual(["lapsed"]);
  });

  it("close() frees everything the owner holds", async () => {
    const { a, b } = await owners();
    await a.tryAcquire(["s1", "s2", "s3"]);
    await a.close();
    expect(sorted(await b.tryAcquire(["s1", "s2", "s3"]))).toEqual(["s1", "s2", "s3"]);
  });
});
