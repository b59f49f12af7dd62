/**
 * The consumer against the real local Redis and Postgres (through the stand-ins): claims,
 * history, retries with backoff, the DLQ, crashes at every step, scope exclusivity under
 * concurrent consumers, derived events. No timing assertions: time is an injected clock.
 */

import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/clock";
import { backoffSeconds } from "../../src/consume/retry";
import { CrashInjected, Failpoints } from "../../src/failpoints";
import worker from "../../src/index";
import { filters as f } from "../../src/triggers";
import { event, pendingEntries, publishAll } from "../support/consume";
import { typesWith } from "../support/event-types";
import { AS_CONFIGURED, type Rig, rig } from "../support/rig";

let open: Rig<"redis">[] = [];
afterEach(async () => {
  for (const r of open) await r.close();
  open = [];
});
async function make(overrides: Record<string, unknown> = {}) {
  const r = await rig("redis", { ...AS_CONFIGURED, ...overrides });
  open.push(r);
  return r;
}
const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

type Row = {
  id: string;
  status: string;
  attempts: number;
  errors: Array<{ attempt: number; error: string }>;
  next_retry_at: string | null;
};
async function row(r: Rig<"redis">, id: string): Promise<Row> {
  const [x] = await r.rows<Row>(sql`select id, status, attempts, errors, next_retry_at from events where id = ${id}`);
  return x!;
}

describe("consumer: claim, persist, settle", () => {
  it("drains the stream into history; no trigger matched means completed; the group is created lazily", async () => {
    const r = await make();
    const evs = Array.from({ length: 30 }, () => event());
    await publishAll(r.store, evs);
    const rep = await r.run();
    expect(rep).toMatchObject({ claimed: 30, completed: 30, retried: 0, dlq: 0, stoppedBy: "drained" });
    const rows = await r.rows<{ n: number; s: string }>(
      sql`select status as s, count(*)::int as n from events group by status`,
    );
    expect(rows).toEqual([{ s: "completed", n: 30 }]);
    expect(await pendingEntries(r)).toBe(0);
    // the envelope survives the round trip
    const [one] = await r.rows<{ payload: Record<string, unknown>; meta: Record<string, unknown> }>(
      sql`select payload, meta from events where id = ${evs[3]!.id}`,
    );
    expect(one).toEqual({ payload: { n: evs[3]!.n }, meta: evs[3]!.meta });
  });

  it("10,000 events, three concurrent consumers: each event in history once, every handler called, scopes never overlap", async () => {
    const r = await make({ CONSUMER_BATCH_SIZE: "500" });
    const calls = new Map<string, number>();
    const active = new Map<string, number>();
    let overlaps = 0;
    let maxConcurrent = 0;
    let running = 0;
    r.triggers.register({
      name: "count",
      filter: f.type("test.*"),
      handler: async (ctx) => {
        const n = (active.get(ctx.scope) ?? 0) + 1;
        active.set(ctx.scope, n);
        if (n > 1) overlaps++;
        running++;
        maxConcurrent = Math.max(maxConcurrent, running);
        calls.set(ctx.event.id, (calls.get(ctx.event.id) ?? 0) + 1);
        await sleep(0); // yield, so that a missing lock would show as an overlap
        running--;
        active.set(ctx.scope, active.get(ctx.scope)! - 1);
      },
    });
    const evs = Array.from({ length: 10_000 }, (_, i) => event({ source: `src-${i % 40}` }));
    await publishAll(r.store, evs);
    const reports = await Promise.all([r.run(), r.run(), r.run()]);
    // Deferred events (scope busy past LOCK_WAIT_MS) are due later: a final run catches them.
    const clock = new ManualClock(Date.now() + 120_000);
    await r.run({ clock });

    const [counts] = await r.rows<{ total: number; distinct_ids: number; completed: number }>(
      sql`select count(*)::int as total, count(distinct id)::int as distinct_ids,
                 count(*) filter (where status = 'completed')::int as completed from events`,
    );
    expect(counts).toEqual({ total: 10_000, distinct_ids: 10_000, completed: 10_000 });
    expect(evs.filter((e) => !calls.has(e.id))).toEqual([]);
    expect(overlaps).toBe(0);
    expect(maxConcurrent).toBeLessThanOrEqual(r.cfg.HANDLER_CONCURRENCY);
    expect(await pendingEntries(r)).toBe(0);
    // the work really was shared
    expect(reports.filter((x) => x.claimed > 0).length).toBeGreaterThanOrEqual(2);
  });

  it("LOCK_BACKEND=postgres: advisory locks keep scopes exclusive across concurrent consumers", async () => {
    const r = await make({ LOCK_BACKEND: "postgres", CONSUMER_BATCH_SIZE: "200" });
    const active = new Map<string, number>();
    let overlaps = 0;
    const calls = new Set<string>();
    r.triggers.register({
      name: "pg-locked",
      filter: f.any(),
      handler: async (ctx) => {
        const n = (active.get(ctx.scope) ?? 0) + 1;
        active.set(ctx.scope, n);
        if (n > 1) overlaps++;
        calls.add(ctx.event.id);
        await sleep(0);
        active.set(ctx.scope, active.get(ctx.scope)! - 1);
      },
    });
    const evs = Array.from({ length: 1_500 }, (_, i) => event({ source: `s${i % 7}` }));
    await publishAll(r.store, evs);
    await Promise.all([r.run(), r.run()]);
    await r.run({ clock: new ManualClock(Date.now() + 120_000) });
    expect(overlaps).toBe(0);
    expect(calls.size).toBe(1_500);
    const [c] = await r.rows<{ n: number }>(sql`select count(*)::int as n from events where status = 'completed'`);
    expect(c!.n).toBe(1_500);
  });

  it("a redelivered event already completed is acknowledged, not handled again, and not stored twice", async () => {
    const r = await make();
    let calls = 0;
    r.triggers.register({ name: "once", filter: f.any(), handler: () => void calls++ });
    const e = event();
    await r.store.publish([e]);
    await r.run();
    await r.store.publish([e, e]); // an ingest retry, twice
    const rep = await r.run();
    expect(rep).toMatchObject({ claimed: 0, skipped: 2 });
    expect(calls).toBe(1);
    expect((await r.rows(sql`select id from events`)).length).toBe(1);
    expect(await pendingEntries(r)).toBe(0);
  });

  it("an entry repeated in the next batch is handled once, even while the first is still in hand (claims run one batch ahead)", async () => {
    const r = await make({ CONSUMER_BATCH_SIZE: "1" });
    let calls = 0;
    r.triggers.register({
      name: "slow-once",
      filter: f.any(),
      // slow enough that the next batch (the repeat) is claimed while this one is in hand
      handler: async () => {
        calls++;
        await sleep(50);
      },
    });
    const e = event();
    await r.store.publish([e, e]);
    const rep = await r.run();
    expect(rep).toMatchObject({ claimed: 1, completed: 1, skipped: 1, lost: 0 });
    expect(calls).toBe(1);
    expect(await row(r, e.id)).toMatchObject({ status: "completed", attempts: 1 });
    expect(await pendingEntries(r)).toBe(0);
  });
});

describe("consumer: retries, backoff and the DLQ", () => {
  it("a handler that fails twice then succeeds ends completed with attempts 3; retries are due on the injected clock", async () => {
    const r = await make({ EVENT_RETRY_BASE_DELAY: "1", EVENT_RETRY_MAX_DELAY: "60", EVENT_MAX_ATTEMPTS: "3" });
    const clock = new ManualClock(Date.parse("2030-01-01T00:00:00Z"));
    let calls = 0;
    r.triggers.register({
      name: "flaky",
      filter: f.type("test.happened"),
      handler: () => {
        if (++calls <= 2) throw new Error(`boom ${calls}`);
      },
    });
    const e = event();
    await r.store.publish([e]);

    expect(await r.run({ clock })).toMatchObject({ claimed: 1, retried: 1 });
    let x = await row(r, e.id);
    expect(x).toMatchObject({ status: "pending", attempts: 1 });
    expect(new Date(x.next_retry_at!).getTime() - clock.now()).toBe(1_000); // base * 2^0

    // not due yet: nothing happens, even though the run looks
    clock.advance(999);
    expect(await r.run({ clock })).toMatchObject({ claimed: 0 });
    clock.advance(1);
    expect(await r.run({ clock })).toMatchObject({ claimed: 1, retried: 1 });
    x = await row(r, e.id);
    expect(x).toMatchObject({ status: "pending", attempts: 2 });
    expect(new Date(x.next_retry_at!).getTime() - clock.now()).toBe(2_000); // base * 2^1

    clock.advance(2_000);
    expect(await r.run({ clock })).toMatchObject({ claimed: 1, completed: 1 });
    x = await row(r, e.id);
    expect(x).toMatchObject({ status: "completed", attempts: 3, next_retry_at: null });
    expect(x.errors.map((er) => er.error)).toEqual(["flaky: boom 1", "flaky: boom 2"]);
    expect(calls).toBe(3);
    expect(await pendingEntries(r)).toBe(0);
  });

  it("a handler that always fails ends in the DLQ (history and DLQ stream) with its errors; backoff is capped", async () => {
    const r = await make({ EVENT_RETRY_BASE_DELAY: "10", EVENT_RETRY_MAX_DELAY: "15", EVENT_MAX_ATTEMPTS: "4" });
    const clock = new ManualClock(Date.parse("2030-01-01T00:00:00Z"));
    r.triggers.register({ name: "doomed", filter: f.any(), handler: () => Promise.reject(new Error("nope")) });
    r.triggers.register({ name: "fine", filter: f.any(), handler: () => {} });
    const e = event();
    await r.store.publish([e]);
    const delays: number[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      await r.run({ clock });
      const x = await row(r, e.id);
      expect(x).toMatchObject({ status: "pending", attempts: attempt });
      const d = new Date(x.next_retry_at!).getTime() - clock.now();
      delays.push(d / 1000);
      clock.advance(d);
    }
    expect(delays).toEqual([10, 15, 15]); // min(10 * 2^(n-1), 15)
    expect(await r.run({ clock })).toMatchObject({ dlq: 1 });
    const x = await row(r, e.id);
    expect(x).toMatchObject({ status: "dlq", attempts: 4, next_retry_at: null });
    expect(x.errors.map((er) => [er.attempt, er.error])).toEqual([1, 2, 3, 4].map((n) => [n, "doomed: nope"]));

    const dlq = (await r.redis.eval("return redis.call('XRANGE', KEYS[1], '-', '+')", [r.keys.dlq], [])) as Array<
      [string, string[]]
    >;
    const entries = dlq.map(([, flat]) =>
      Object.fromEntries(flat.flatMap((v, i) => (i % 2 ? [] : [[v, flat[i + 1]]]))),
    );
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ id: e.id, error: "doomed: nope", attempts: "4" });
    expect(JSON.parse(String(entries[0]!.e))).toEqual(e);
    // nothing more happens to it
    clock.advance(3_600_000);
    expect(await r.run({ clock })).toMatchObject({ claimed: 0 });
  });

  it("backoff formula", () => {
    const p = { EVENT_MAX_ATTEMPTS: 10, EVENT_RETRY_BASE_DELAY: 1, EVENT_RETRY_MAX_DELAY: 60 };
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffSeconds(n, p))).toEqual([1, 2, 4, 8, 16, 32, 60, 60]);
  });
});

describe("consumer: crashes lose nothing and duplicate nothing", () => {
  const N = 40;
  async function crashThenRecover(
    point: "after-claim-before-persist" | "after-persist-before-dispatch" | "after-persist-before-ack",
  ) {
    const r = await make({ CONSUMER_BATCH_SIZE: "25" });
    const calls = new Map<string, number>();
    r.triggers.register({
      name: "count",
      filter: f.any(),
      handler: (ctx) => void calls.set(ctx.event.id, (calls.get(ctx.event.id) ?? 0) + 1),
    });
    const evs = Array.from({ length: N }, () => event());
    await publishAll(r.store, evs);
    // crash in the second batch: the first one (25 events) completes normally
    await expect(r.run({ failpoints: new Failpoints({ [point]: 2 }) })).rejects.toBeInstanceOf(CrashInjected);
    expect(await pendingEntries(r)).toBe(15);
    // nothing is reclaimed before the visibility timeout...
    expect(await r.run()).toMatchObject({ claimed: 0, skipped: 0 });
    await sleep(1_100);
    // ...then a new consumer finishes the job
    const rep = await r.run();
    const [c] = await r.rows<{ total: number; completed: number }>(
      sql`select count(*)::int as total, count(*) filter (where status = 'completed')::int as completed from events`,
    );
    expect(c).toEqual({ total: N, completed: N });
    expect(await pendingEntries(r)).toBe(0);
    expect(evs.every((e) => (calls.get(e.id) ?? 0) >= 1)).toBe(true);
    return { r, rep, calls };
  }

  it("between claim and persist", async () => {
    const { r, rep, calls } = await crashThenRecover("after-claim-before-persist");
    expect(rep).toMatchObject({ claimed: 15, completed: 15, skipped: 0 });
    expect([...calls.values()].every((n) => n === 1)).toBe(true);
    const [a] = await r.rows<{ max: number }>(sql`select max(attempts)::int as max from events`);
    // Redis: the delivery count is the attempt count (the pending-entries list cannot tell a
    // death before the handlers from one in them), so the silent delivery counts.
    expect(a!.max).toBe(r.store.backend === "redis" ? 2 : 1);
  });

  it("between persist and dispatch (claimed in history, no handler ran)", async () => {
    const { r, rep } = await crashThenRecover("after-persist-before-dispatch");
    expect(rep).toMatchObject({ claimed: 15, completed: 15 });
    const [a] = await r.rows<{ n: number }>(sql`select count(*)::int as n from events where attempts = 2`);
    expect(a!.n).toBe(15); // the silent delivery counts
  });

  it("between settle and ack (outcome durable, XACK not sent)", async () => {
    const { rep, calls } = await crashThenRecover("after-persist-before-ack");
    // redelivered, recognised as completed, acknowledged without running again
    expect(rep).toMatchObject({ claimed: 0, skipped: 15 });
    expect([...calls.values()].every((n) => n === 1)).toBe(true);
  });

  it("a batch is recorded while the next one runs; a failed record ends the run one batch later", async () => {
    const r = await make({ CONSUMER_BATCH_SIZE: "10", CONSUMER_BATCH_ADAPTIVE: "false" });
    const calls = new Map<string, number>();
    r.triggers.register({
      name: "count",
      filter: f.any(),
      handler: (ctx) => void calls.set(ctx.event.id, (calls.get(ctx.event.id) ?? 0) + 1),
    });
    const evs = Array.from({ length: 30 }, () => event());
    await publishAll(r.store, evs);
    const completed = async () =>
      (await r.rows<{ n: number }>(sql`select count(*)::int as n from events where status = 'completed'`))[0]!.n;
    // The first batch's outcomes are durable, then its settle dies: the second batch's
    // handlers had run meanwhile, and nothing after them was handled or recorded.
    await expect(r.run({ failpoints: new Failpoints({ "after-persist-before-ack": 1 }) })).rejects.toBeInstanceOf(
      CrashInjected,
    );
    expect(calls.size).toBe(20);
    expect(await completed()).toBe(10);
    await sleep(200); // nothing of the run is still running after it returned
    expect(await completed()).toBe(10);

    await sleep(1_100);
    expect(await r.run()).toMatchObject({ completed: 20 });
    expect(await completed()).toBe(30);
    expect(await pendingEntries(r)).toBe(0);
  });

  it("an event whose consumer keeps dying on it goes to the DLQ after EVENT_MAX_ATTEMPTS deliveries", async () => {
    const r = await make({ EVENT_MAX_ATTEMPTS: "2" });
    r.triggers.register({ name: "x", filter: f.any(), handler: () => {} });
    const e = event();
    await r.store.publish([e]);
    for (let i = 0; i < 2; i++) {
      await expect(
        r.run({ failpoints: new Failpoints({ "after-persist-before-dispatch": true }) }),
      ).rejects.toBeInstanceOf(CrashInjected);
      await sleep(1_100);
    }
    expect(await r.run()).toMatchObject({ dlq: 1 });
    const x = await row(r, e.id);
    expect(x.status).toBe("dlq");
    expect(x.errors[0]!.error).toMatch(/no outcome after 2 deliveries/);
  });
});

describe("consumer: triggers", () => {
  it("derived events carry correlation and causation ids, are published once the parent succeeds, and are handled in the same run", async () => {
    const r = await make();
    const seen: Array<{ type: string; meta: Record<string, unknown> }> = [];
    r.triggers.register({
      name: "confirm",
      filter: f.type("order.placed"),
      handler: async (ctx) => {
        await ctx.publish({ type: "order.confirmed", order: ctx.event.order });
      },
    });
    r.triggers.register({
      name: "email",
      filter: f.type("order.confirmed"),
      handler: async (ctx) => {
        seen.push({ type: ctx.event.type, meta: ctx.event.meta });
        await ctx.publish({ type: "email.sent", to: "ops" });
      },
    });
    const fresh = event({ type: "order.placed", order: 1 });
    const correlated = event({ type: "order.placed", order: 2, meta: { trace_id: "t-2", correlation_id: "corr-2" } });
    await r.store.publish([fresh, correlated]);
    const rep = await r.run({ eventTypes: typesWith("order.confirmed", "email.sent") });
    expect(rep).toMatchObject({ derived: 4, completed: 6 });

    const rows = await r.rows<{
      id: string;
      type: string;
      source: string;
      meta: Record<string, string>;
      payload: Record<string, unknown>;
    }>(sql`select id, type, source, meta, payload from events order by type`);
    const confirmed = rows.filter((x) => x.type === "order.confirmed");
    const c1 = confirmed.find((x) => x.payload.order === 1)!;
    const c2 = confirmed.find((x) => x.payload.order === 2)!;
    expect(c1.meta).toEqual({ trace_id: fresh.meta.trace_id, correlation_id: fresh.id, causation_id: fresh.id });
    expect(c2.meta).toEqual({ trace_id: "t-2", correlation_id: "corr-2", causation_id: correlated.id });
    expect(c1.source).toBe(fresh.source);
    const emails = rows.filter((x) => x.type === "email.sent");
    expect(emails.map((x) => x.meta.causation_id).sort()).toEqual([c1.id, c2.id].sort());
    expect(emails.map((x) => x.meta.correlation_id).sort()).toEqual([fresh.id, "corr-2"].sort());
    expect(seen).toHaveLength(2);
  });

  it("higher priority runs first; all matching handlers run; errors are joined", async () => {
    const r = await make({ EVENT_MAX_ATTEMPTS: "1" });
    const order: string[] = [];
    r.triggers.register({
      name: "low",
      priority: 1,
      filter: f.any(),
      handler: () => {
        order.push("low");
        throw new Error("L");
      },
    });
    r.triggers.register({
      name: "high",
      priority: 9,
      filter: f.any(),
      handler: () => {
        order.push("high");
        throw new Error("H");
      },
    });
    r.triggers.register({ name: "mid", priority: 5, filter: f.any(), handler: () => void order.push("mid") });
    r.triggers.register({ name: "other", filter: f.type("nope"), handler: () => void order.push("other") });
    const e = event();
    await r.store.publish([e]);
    await r.run();
    expect(order).toEqual(["high", "mid", "low"]);
    const x = await row(r, e.id);
    expect(x.status).toBe("dlq");
    expect(x.errors[0]!.error).toBe("high: H; low: L");
  });

  it("rate limit and dedupe hold across consumer runs (state in Redis) and cost one Redis call per batch", async () => {
    const r = await make();
    const limited: number[] = [];
    const deduped: string[] = [];
    r.triggers.register({
      name: "limited",
      filter: f.and(f.type("tick"), f.rateLimit({ max: 3, windowMs: 60_000 })),
      handler: (ctx) => void limited.push(ctx.event.n as number),
    });
    r.triggers.register({
      name: "deduped",
      filter: f.and(f.type("tick"), f.dedupe({ key: (e) => String(e.key), windowMs: 60_000 })),
      handler: (ctx) => void deduped.push(ctx.event.id),
    });
    const clock = new ManualClock(Date.parse("2030-01-01T00:00:10Z"));
    const first = Array.from({ length: 5 }, (_, i) => event({ type: "tick", n: i, key: i % 2 }));
    await r.store.publish(first);
    await r.run({ clock });
    expect(limited).toEqual([0, 1, 2]); // earliest of the batch
    expect(deduped).toEqual([first[0]!.id, first[1]!.id]);
    // another run (another invocation), same window: no budget left, keys seen
    await r.store.publish([event({ type: "tick", n: 5, key: 0 })]);
    await r.run({ clock });
    expect(limited).toEqual([0, 1, 2]);
    expect(deduped).toHaveLength(2);
    // next window: budget again; dedupe window (60 s from first sight) over as well
    clock.advance(60_000);
    await r.store.publish([event({ type: "tick", n: 6, key: 0 })]);
    await r.run({ clock });
    expect(limited).toEqual([0, 1, 2, 6]);
    expect(deduped).toHaveLength(3);
    // events that did not match are completed, not failed
    const [c] = await r.rows<{ n: number }>(sql`select count(*)::int as n from events where status = 'completed'`);
    expect(c!.n).toBe(7);
  });
});

describe("consumer: worker entry points", () => {
  it("the cron and the queue handler both drain with the default triggers", async () => {
    const r = await make();
    await r.store.publish(Array.from({ length: 5 }, () => event()));
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "* * * * *", scheduledTime: Date.now() }), r.env, ctx);
    await waitOnExecutionContext(ctx);
    await r.store.publish(Array.from({ length: 3 }, () => event()));
    const ctx2 = createExecutionContext();
    let acked = false;
    const batch = {
      queue: "reflex-wake",
      messages: [],
      ackAll: () => {
        acked = true;
      },
      retryAll: () => {},
    } as unknown as MessageBatch<{ kind: "wake"; at: number }>;
    await worker.queue(batch, r.env, ctx2);
    await waitOnExecutionContext(ctx2);
    expect(acked).toBe(true);
    const [c] = await r.rows<{ n: number }>(sql`select count(*)::int as n from events where status = 'completed'`);
    expect(c!.n).toBe(8);
  });
});

describe("consumer: housekeeping", () => {
  it("pruneConsumers removes idle consumers with nothing pending and keeps those with pending entries", async () => {
    const r = await make({ CONSUMER_BATCH_SIZE: "10" });
    await publishAll(
      r.store,
      Array.from({ length: 20 }, () => event()),
    );
    await r.run({ name: "c-done" });
    await r.store.publish(Array.from({ length: 5 }, () => event()));
    await expect(
      r.run({ name: "c-crashed", failpoints: new Failpoints({ "after-claim-before-persist": true }) }),
    ).rejects.toThrow();
    await sleep(20);
    const lane = r.store.lanes()[0]!;
    expect(await r.store.pruneConsumers(lane, 10)).toEqual(["c-done"]);
    expect((await r.store.laneStats(lane)).consumers).toBe(1);
    const counts = await r.store.historyCounts(new Date());
    expect(counts).toMatchObject({ completed: 20, dlq: 0 });
  });
});
