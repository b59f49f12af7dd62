/**
 * RedisScopeLocks against the real local Redis (through the Upstash stand-in): two lock
 * owners, as two consumer invocations. What a user relies on is exclusivity; what the
 * consumer relies on for its cost is that a batch needing the scopes it already holds
 * makes no call, and that released scopes are let go by the next call at the latest.
 */
import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/config";
import { redisKeys } from "../src/store/keys";
import { openRedis } from "../src/store/redis";
import { RedisScopeLocks } from "../src/triggers/locks";
import { freshEnv } from "./support/env";

async function owners(leaseMs = 30_000) {
  const cfg = loadConfig(await freshEnv());
  const redis = openRedis(cfg);
  const keys = redisKeys(cfg.REDIS_PREFIX);
  const make = () => new RedisScopeLocks(redis, keys.lock, leaseMs);
  return { a: make(), b: make() };
}

const sorted = (s: Set<string>) => [...s].sort();

describe("RedisScopeLocks", () => {
  it("a scope has one holder at a time; a released scope is let go by the holder's next call, not before", async () => {
    const { a, b } = await owners();
    expect(sorted(await a.tryAcquire(["s1", "s2"]))).toEqual(["s1", "s2"]);
    expect(sorted(await b.tryAcquire(["s1", "s2", "s3"]))).toEqual(["s3"]);

    await a.release(["s1"]);
    expect(sorted(await b.tryAcquire(["s1"]))).toEqual([]); // still a's: nothing was sent yet

    const calls = a.calls;
    expect(sorted(await a.tryAcquire(["s4"]))).toEqual(["s4"]); // lets go of s1 in the same call
    expect(a.calls).toBe(calls + 1);
    expect(sorted(await b.tryAcquire(["s1"]))).toEqual(["s1"]);
    expect(sorted(await a.tryAcquire(["s1"]))).toEqual([]);
  });

  it("scopes already held, or released and wanted again, are kept without a call", async () => {
    const { a, b } = await owners();
    await a.tryAcquire(["s1", "s2"]);
    const calls = a.calls;
    expect(sorted(await a.tryAcquire(["s1", "s2"]))).toEqual(["s1", "s2"]);
    await a.release(["s1", "s2"]);
    expect(sorted(await a.tryAcquire(["s2"]))).toEqual(["s2"]); // s1 is let go here: one call
    expect(a.calls).toBe(calls + 1);
    expect(sorted(await b.tryAcquire(["s1", "s2"]))).toEqual(["s1"]);
  });

  it("a lock taken more than a tenth of its lease ago is taken again (extended) before it is relied on", async () => {
    const { a, b } = await owners(1_000);
    await a.tryAcquire(["s1"]);
    await new Promise((r) => setTimeout(r, 600));
    const calls = a.calls;
    expect(sorted(await a.tryAcquire(["s1"]))).toEqual(["s1"]);
    expect(a.calls).toBe(calls + 1);
    await new Promise((r) => setTimeout(r, 600)); // past the first lease: only the extension holds it
    expect(sorted(await b.tryAcquire(["s1"]))).toEqual([]);
  });

  it("close() lets go of everything held, released or not", async () => {
    const { a, b } = await owners();
    await a.tryAcquire(["s1", "s2", "s3"]);
    await a.release(["s1"]);
    await a.close();
    expect(sorted(await b.tryAcquire(["s1", "s2", "s3"]))).toEqual(["s1", "s2", "s3"]);
  });
});
