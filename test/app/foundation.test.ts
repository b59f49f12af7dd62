import { exports } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { openRedis } from "../../src/backends/redis/client";
import { loadConfig } from "../../src/config";
import { openDb } from "../../src/db/client";
import { freshEnv } from "../support/env";

describe("foundation", () => {
  it("GET /health answers healthy", async () => {
    const res = await exports.default.fetch("http://x/health");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "healthy" });
  });

  it("reaches Redis and Postgres through the stand-ins", async () => {
    const env = await freshEnv();
    const cfg = loadConfig(env);
    const redis = openRedis(cfg);
    await redis.set(`${cfg.REDIS_PREFIX}:k`, "1");
    expect(await redis.get(`${cfg.REDIS_PREFIX}:k`)).toBe("1");
    const h = openDb(cfg);
    const r = await h.db.execute(sql`select count(*)::int as n from events`);
    expect(r.rows[0]).toEqual({ n: 0 });
    await h.close();
  });
});
