/**
 * The scaling page's features: reads from a replica, the hot-data cache (never a stale
 * status), and destinations' circuit breakers in health and the admin API.
 */

import { sql } from "drizzle-orm";
import { describe, expect, inject, it } from "vitest";
import { loadConfig } from "../../src/config";
import { openDb } from "../../src/db/client";
import { ADMIN_TOKEN, call } from "../support/admin";
import { freshEnv, type TestEnv } from "../support/env";

async function exec(env: TestEnv, q: ReturnType<typeof sql>, url?: string) {
  const cfg = loadConfig(env);
  const h = openDb(cfg, url ?? cfg.DATABASE_URL);
  try {
    return await h.db.execute(q);
  } finally {
    await h.close();
  }
}

const insertEvent = (id: string, status: string) => sql`
  INSERT INTO events (id, type, source, timestamp, payload, meta, scope, status, attempts, last_error)
  VALUES (${id}, 'timer.tick', 'scale', now(), '{"timer_name":"t","tick_count":1}'::jsonb, '{"trace_id":"abc"}'::jsonb, 'scale',
          ${status}::event_status, 1, 'boom')`;

describe("read replica", () => {
  it("history reads go to DATABASE_READ_URL; writes go to DATABASE_URL", async () => {
    const replica = await freshEnv();
    const env = await freshEnv({ ADMIN_TOKEN, DATABASE_READ_URL: replica.DATABASE_URL });
    const onlyPrimary = crypto.randomUUID();
    const onlyReplica = crypto.randomUUID();
    await exec(env, insertEvent(onlyPrimary, "dlq"));
    await exec(env, insertEvent(onlyReplica, "completed"), replica.DATABASE_URL);

    expect((await call(env, "GET", `/events/${onlyPrimary}`)).status).toBe(404);
    expect((await call(env, "GET", `/events/${onlyReplica}`)).body.status).toBe("completed");
    const page = await call(env, "GET", "/events?limit=10");
    expect(page.body.events.map((e: { id: string }) => e.id)).toEqual([onlyReplica]);

    // A write (DLQ retry) acts on the primary, where the event is.
    expect((await call(env, "POST", `/events/dlq/${onlyPrimary}/retry`)).status).toBe(200);
    const row = await exec(env, sql`SELECT status FROM events WHERE id = ${onlyPrimary}`);
    expect(row.rows[0]).toEqual({ status: "pending" });
  });
});

describe("hot-data cache", () => {
  it("caches event detail only once it is final, so a status change is never hidden", async () => {
    const env = await freshEnv({ ADMIN_TOKEN, CACHE_EVENT_TTL_S: "300" });
    const id = crypto.randomUUID();
    await exec(env, insertEvent(id, "dlq"));

    const first = await call(env, "GET", `/events/${id}`);
    expect(first.body).toMatchObject({ status: "dlq", cached: false });
    expect((await call(env, "POST", `/events/dlq/${id}/retry`)).status).toBe(200);
    expect((await call(env, "GET", `/events/${id}`)).body).toMatchObject({ status: "pending", cached: false });

    await exec(env, sql`UPDATE events SET status = 'processing' WHERE id = ${id}`);
    expect((await call(env, "GET", `/events/${id}`)).body.status).toBe("processing");
    await exec(env, sql`UPDATE events SET status = 'completed', processed_at = now() WHERE id = ${id}`);
    expect((await call(env, "GET", `/events/${id}`)).body).toMatchObject({ status: "completed", cached: false });
    expect((await call(env, "GET", `/events/${id}`)).body).toMatchObject({ status: "completed", cached: true });
  });

  it("is off with CACHE_ENABLED=false", async () => {
    const env = await freshEnv({ ADMIN_TOKEN, CACHE_ENABLED: "false" });
    const id = crypto.randomUUID();
    await exec(env, insertEvent(id, "completed"));
    await call(env, "GET", `/events/${id}`);
    expect((await call(env, "GET", `/events/${id}`)).body.cached).toBe(false);
  });
});

describe("destinations' circuit breakers", () => {
  it("show in /health/detailed and GET /destinations", async () => {
    const url = `${inject("receiverUrl")}/r/breaker-${crypto.randomUUID()}`;
    const env = await freshEnv({
      ADMIN_TOKEN,
      CACHE_ENABLED: "false",
      DESTINATIONS: JSON.stringify([
        { name: "orders", url: `${url}?token=hidden`, filter: { types: ["timer.tick"] } },
        { name: "audit", url, filter: {} },
      ]),
    });
    await exec(
      env,
      sql`
      INSERT INTO destination_breakers (destination, state, failures, opened_at, next_probe_at, cooldown_ms)
      VALUES ('orders', 'open', 5, now(), now() + interval '1 hour', 30000)`,
    );

    // Destination names and breaker states are for token holders (the admin token here).
    const health = await call(env, "GET", "/health/detailed");
    const dests = health.body.indicators.destinations;
    expect(dests.find((d: { destination: string }) => d.destination === "orders")).toMatchObject({
      status: "degraded",
      state: "open",
      failures: 5,
    });
    expect(dests.find((d: { destination: string }) => d.destination === "audit")).toMatchObject({
      status: "healthy",
      state: "closed",
    });
    expect(health.body.status).toBe("degraded");

    const admin = await call(env, "GET", "/destinations");
    expect(admin.status).toBe(200);
    const orders = admin.body.destinations.find((d: { name: string }) => d.name === "orders");
    expect(orders.breaker.state).toBe("open");
    expect(orders.url).not.toContain("hidden");
    expect((await call(env, "GET", "/destinations", { token: null })).status).toBe(401);
  });
});
