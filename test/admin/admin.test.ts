/**
 * Admin API end to end: the worker's fetch handler, the real Postgres and Redis (through
 * the stand-ins), the real consumer. Covers auth, the DLQ lifecycle (exhaust -> list ->
 * retry -> completes once fixed), retry-all by filter, discard, event detail and history
 * pagination.
 */

import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import { type as typeFilter } from "../../src/triggers/filters";
import { ADMIN_TOKEN, call } from "../support/admin";
import { event } from "../support/consume";
import { freshEnv } from "../support/env";
import { AS_CONFIGURED, type Rig, rig } from "../support/rig";

const open: Rig<"redis">[] = [];
afterEach(async () => {
  while (open.length) await open.pop()!.close();
});

async function adminRig(overrides: Record<string, unknown> = {}) {
  const r = await rig("redis", { ...AS_CONFIGURED, ADMIN_TOKEN, ...overrides });
  open.push(r);
  return r;
}

/** Inserts history rows straight into Postgres (the admin API reads history, not streams). */
async function insertRows(r: Rig<"redis">, rows: Array<{ type: string; source: string; status: string; ts?: string }>) {
  const ids: string[] = [];
  for (const x of rows) {
    const id = crypto.randomUUID();
    ids.push(id);
    await r.db.db.execute(sql`
      INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts, last_error, errors, updated_at)
      VALUES (${id}::uuid, ${x.type}, ${x.source}, ${x.ts ?? new Date().toISOString()}::timestamptz, '{"n":1}'::jsonb,
              '{"trace_id":"t"}'::jsonb, ${x.source}, ${x.status}::event_status, 3, 'boom',
              '[{"attempt":3,"error":"boom","at":"2026-01-01T00:00:00Z"}]'::jsonb, now())`);
  }
  return ids;
}

describe("admin auth", () => {
  it("answers 401 without a token (with WWW-Authenticate), 403 with a wrong one, 200 with the right one", async () => {
    const r = await adminRig();
    for (const [method, path] of [
      ["GET", "/events/dlq"],
      ["GET", "/events"],
      ["GET", `/events/${crypto.randomUUID()}`],
      ["POST", "/events/dlq/retry"],
      ["GET", "/replays"],
      ["POST", `/replays/${crypto.randomUUID()}/cancel`],
    ] as const) {
      const none = await call(r.env, method, path, { token: null });
      expect(none.status, `${method} ${path}`).toBe(401);
      expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expect(none.headers.get("content-type")).toBe("application/problem+json");
      const basic = await call(r.env, method, path, {
        token: null,
        headers: { authorization: `Basic ${btoa(`x:${ADMIN_TOKEN}`)}` },
      });
      expect(basic.status).toBe(401);
      const wrong = await call(r.env, method, path, { token: `${ADMIN_TOKEN}x` });
      expect(wrong.status, `${method} ${path}`).toBe(403);
      expect(wrong.body.title).toBe("Forbidden");
    }
    expect((await call(r.env, "GET", "/events/dlq")).status).toBe(200);
  });

  it("is disabled (503), never open, when ADMIN_TOKEN is not configured", async () => {
    const env = await freshEnv({ ADMIN_TOKEN: "" });
    const a = await call(env, "GET", "/events/dlq", { token: null });
    expect(a.status).toBe(503);
    expect(a.body.title).toBe("Admin API disabled");
    expect((await call(env, "GET", "/events/dlq", { token: "anything-at-all-long" })).status).toBe(503);
  });
});

describe("DLQ lifecycle", () => {
  it("an event that exhausts its attempts is listed, retried, and completes once its handler is fixed", async () => {
    const r = await adminRig({
      EVENT_MAX_ATTEMPTS: "2",
      EVENT_RETRY_BASE_DELAY: "0.01",
      EVENT_RETRY_MAX_DELAY: "0.02",
    });
    let broken = true;
    let handled = 0;
    r.triggers.register({
      name: "flaky",
      filter: typeFilter("test.flaky"),
      handler: () => {
        handled++;
        if (broken) throw new Error("downstream said no");
      },
    });
    const e = event({ type: "test.flaky", source: "svc" });
    const other = event({ type: "test.fine", source: "svc" });
    await r.store.publish([e, other]);

    const status = async (id: string) =>
      (await r.rows<{ status: string }>(sql`SELECT status FROM events WHERE id = ${id}::uuid`))[0]?.status;
    for (let i = 0; i < 20 && (await status(e.id)) !== "dlq"; i++) {
      await r.run();
      await new Promise((res) => setTimeout(res, 30));
    }
    expect(await status(e.id)).toBe("dlq");
    expect(handled).toBe(2);

    const list = await call(r.env, "GET", "/events/dlq?limit=10");
    expect(list.status).toBe(200);
    expect(list.body.count).toBe(1);
    expect(list.body.events).toHaveLength(1);
    expect(list.body.events[0]).toMatchObject({ id: e.id, type: "test.flaky", status: "dlq", attempts: 2 });
    expect(list.body.events[0].last_error).toContain("downstream said no");

    // Unknown or not-in-DLQ ids: 404 problems.
    expect((await call(r.env, "POST", `/events/dlq/${other.id}/retry`)).status).toBe(404);
    expect((await call(r.env, "POST", `/events/dlq/${crypto.randomUUID()}/retry`)).status).toBe(404);
    expect((await call(r.env, "POST", "/events/dlq/not-a-uuid/retry")).status).toBe(404);

    broken = false;
    const retried = await call(r.env, "POST", `/events/dlq/${e.id}/retry`);
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ id: e.id, status: "pending" });
    expect((await call(r.env, "POST", `/events/dlq/${e.id}/retry`)).status).toBe(404); // no longer in the DLQ
    expect((await call(r.env, "GET", "/events/dlq")).body.count).toBe(0);

    for (let i = 0; i < 10 && (await status(e.id)) !== "completed"; i++) await r.run();
    expect(await status(e.id)).toBe("completed");
    expect(handled).toBe(3);

    const detail = await call(r.env, "GET", `/events/${e.id}`);
    expect(detail.status).toBe(200);
    expect(detail.body).toMatchObject({
      id: e.id,
      type: "test.flaky",
      source: "svc",
      status: "completed",
      attempts: 1,
    });
    expect(detail.body.meta.trace_id).toBe(e.meta.trace_id);
    // The errors of the attempts before the redrive are kept.
    expect(detail.body.errors).toHaveLength(2);
    expect(detail.body.attempt_history.at(-1)).toMatchObject({ outcome: "completed" });
    expect(detail.body.delivery_attempts).toEqual([]); // no destinations configured
    expect(detail.body.derived).toEqual([]);
  });

  it("retry-all by filter touches only the matching events, and spreads them at REDRIVE_RATE", async () => {
    const r = await adminRig({ REDRIVE_RATE: "10" });
    const a1 = await insertRows(
      r,
      Array.from({ length: 5 }, () => ({ type: "order.paid", source: "shop", status: "dlq" })),
    );
    const a2 = await insertRows(
      r,
      Array.from({ length: 3 }, () => ({ type: "order.paid", source: "pos", status: "dlq" })),
    );
    const b = await insertRows(
      r,
      Array.from({ length: 4 }, () => ({ type: "user.created", source: "shop", status: "dlq" })),
    );
    const done = await insertRows(r, [{ type: "order.paid", source: "shop", status: "completed" }]);

    const st = async () =>
      new Map(
        (await r.rows<{ id: string; status: string }>(sql`SELECT id, status FROM events`)).map((x) => [x.id, x.status]),
      );

    const one = await call(r.env, "POST", "/events/dlq/retry", { body: { type: "order.paid", source: "shop" } });
    expect(one.status).toBe(200);
    expect(one.body).toEqual({ count: 5 });
    let s = await st();
    for (const id of a1) expect(s.get(id)).toBe("pending");
    for (const id of [...a2, ...b]) expect(s.get(id)).toBe("dlq");
    expect(s.get(done[0]!)).toBe("completed");

    const spread = await r.rows<{ span: number; attempts: number }>(sql`
      SELECT extract(epoch FROM max(next_retry_at) - min(next_retry_at))::float8 AS span, max(attempts) AS attempts
        FROM events WHERE status = 'pending'`);
    expect(spread[0]!.span).toBeCloseTo(0.4, 3); // 5 events at 10/s: 0, 0.1 ... 0.4 s
    expect(Number(spread[0]!.attempts)).toBe(0);

    expect((await call(r.env, "POST", "/events/dlq/retry", { body: { source: "pos" } })).body).toEqual({ count: 3 });
    s = await st();
    for (const id of a2) expect(s.get(id)).toBe("pending");
    for (const id of b) expect(s.get(id)).toBe("dlq");

    expect((await call(r.env, "POST", "/events/dlq/retry", { body: { bogus: 1 } })).status).toBe(422);
    // `all: true`: everything left.
    expect((await call(r.env, "POST", "/events/dlq/retry", { body: { all: true } })).body).toEqual({ count: 4 });
    expect((await call(r.env, "GET", "/events/dlq")).body.count).toBe(0);
  });

  it("discard keeps the history row with its reason and takes it out of the DLQ", async () => {
    const r = await adminRig();
    const [id, keep] = await insertRows(r, [
      { type: "x.y", source: "s", status: "dlq" },
      { type: "x.y", source: "s", status: "dlq" },
    ]);
    expect((await call(r.env, "DELETE", `/events/dlq/${id}`, { body: {} })).status).toBe(422);
    const d = await call(r.env, "DELETE", `/events/dlq/${id}`, {
      body: { reason: "poison payload, customer refunded" },
    });
    expect(d.status).toBe(200);
    expect(d.body).toMatchObject({ id, status: "discarded", discard_reason: "poison payload, customer refunded" });
    expect((await call(r.env, "DELETE", `/events/dlq/${id}`, { body: { reason: "again" } })).status).toBe(404);
    const list = await call(r.env, "GET", "/events/dlq");
    expect(list.body.count).toBe(1);
    expect(list.body.events[0].id).toBe(keep);
    expect((await call(r.env, "GET", `/events/${id}`)).body).toMatchObject({
      status: "discarded",
      errors: [{ error: "boom" }],
    });
    // A discarded event is not redriven by retry-all.
    expect((await call(r.env, "POST", "/events/dlq/retry", { body: { all: true } })).body).toEqual({ count: 1 });
  });
});

describe("event history", () => {
  it("GET /events pages by (timestamp, id) both ways, filters, and rejects foreign cursors", async () => {
    const r = await adminRig();
    const base = Date.parse("2026-03-01T00:00:00Z");
    // 25 events, pairs sharing a timestamp (the id breaks ties), and 5 of another type.
    const ids = await insertRows(
      r,
      Array.from({ length: 25 }, (_, i) => ({
        type: "page.me",
        source: "s",
        status: "completed",
        ts: new Date(base + Math.floor(i / 2) * 1000).toISOString(),
      })),
    );
    await insertRows(
      r,
      Array.from({ length: 5 }, () => ({
        type: "other",
        source: "s",
        status: "completed",
        ts: new Date(base).toISOString(),
      })),
    );

    const walk = async (order: "asc" | "desc") => {
      const seen: Array<{ id: string; timestamp: string }> = [];
      let cursor: string | null = null;
      for (let i = 0; i < 10; i++) {
        const q: string = `/events?type=page.me&limit=10&order=${order}${cursor ? `&cursor=${cursor}` : ""}`;
        const p = await call(r.env, "GET", q);
        expect(p.status).toBe(200);
        seen.push(...p.body.events);
        if (p.body.events.length === 0)
          return { seen, cursor: p.body.next_cursor as string | null, stayed: p.body.next_cursor === cursor };
        cursor = p.body.next_cursor;
        if (!cursor) break;
      }
      return { seen, cursor, stayed: false };
    };
    const desc = await walk("desc");
    expect(desc.seen.map((e) => e.id).sort()).toEqual([...ids].sort());
    expect(desc.cursor).toBeNull();
    const keys = desc.seen.map((e) => `${e.timestamp}|${e.id}`);
    expect(keys).toEqual([...keys].sort().reverse());
    const asc = await walk("asc");
    expect(asc.seen.map((e) => e.id)).toEqual(desc.seen.map((e) => e.id).reverse());
    // Ascending (tail): past the end, the same cursor comes back, to follow new events with.
    expect(asc.cursor).not.toBeNull();
    expect(asc.stayed).toBe(true);

    const ranged = await call(
      r.env,
      "GET",
      `/events?from=${new Date(base + 10_000).toISOString()}&to=${new Date(base + 12_000).toISOString()}&limit=100`,
    );
    expect(ranged.body.events).toHaveLength(4);
    expect((await call(r.env, "GET", "/events?status=dlq")).body.events).toEqual([]);
    expect((await call(r.env, "GET", "/events?cursor=bm9wZQ")).status).toBe(422);
    expect((await call(r.env, "GET", "/events?status=nope")).status).toBe(422);
    expect((await call(r.env, "GET", "/events?limit=0")).status).toBe(422);
    expect((await call(r.env, "GET", `/events/${crypto.randomUUID()}`)).status).toBe(404);
  });
});
