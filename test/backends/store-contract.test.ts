/**
 * The EventStore contract, written once and run against both backends (describe.each):
 * Redis Streams with Postgres history, and Postgres alone. Every case talks to the real
 * local Redis and Postgres through the stand-ins; the Postgres run has no Redis variables
 * at all. Time that matters (retry due times) is an injected clock, except the visibility
 * timeout, which both backends measure on the real clock (a short one, no timing asserted).
 */

import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import { openRedis } from "../../src/backends/redis/client";
import type { ClaimedEvent, EventStore, Outcome, Receipt } from "../../src/backends/types";
import { ManualClock } from "../../src/clock";
import { redisCommandsIn } from "../../src/obs/usage";
import { filters as f } from "../../src/triggers";
import { event } from "../support/consume";
import { typesWith } from "../support/event-types";
import { AS_CONFIGURED, type BackendName, type Rig, rig } from "../support/rig";

/** The one rig, on the configuration's own timings, with two look-ups into the events table. */
interface Harness extends Rig {
  row(
    id: string,
  ): Promise<{ status: string; attempts: number; errors: unknown[]; next_retry_at: string | null } | undefined>;
  count(where?: string): Promise<number>;
}

const open: Rig[] = [];
afterEach(async () => {
  for (const r of open.splice(0)) await r.close();
});

async function harness(backend: BackendName, overrides: Record<string, unknown> = {}): Promise<Harness> {
  // Postgres alone (the rig gives it no Redis variable): proves that nothing reaches for Redis.
  const r = await rig(backend, { ...AS_CONFIGURED, VISIBILITY_TIMEOUT_MS: undefined, ...overrides });
  open.push(r);
  return {
    ...r,
    async row(id) {
      const rows = await r.rows(sql`select status, attempts, errors, next_retry_at from events where id = ${id}`);
      return rows[0] as Awaited<ReturnType<Harness["row"]>>;
    },
    async count(where = "true") {
      const rows = await r.rows<{ n: number }>(sql.raw(`select count(*)::int as n from events where ${where}`));
      return Number(rows[0]!.n);
    },
  };
}

/** New events from every lane, as a consumer's "new" round does. */
async function claimNew(
  store: EventStore,
  consumer: string,
  max = 500,
): Promise<{ events: ClaimedEvent[]; skipped: Receipt[] }> {
  const events: ClaimedEvent[] = [];
  const skipped: Receipt[] = [];
  for (const lane of store.lanes()) {
    const r = await store.claim({ lane, consumer, max, mode: "new", reclaimIdleMs: 1000 });
    events.push(...r.events);
    skipped.push(...r.skipped);
  }
  return { events, skipped };
}

/**
 * What a consumer does to take over deliveries whose consumer went silent: reclaim on every
 * lane (Redis: XAUTOCLAIM), then due/expired claims from Postgres (claimDue).
 */
async function takeOver(
  store: EventStore,
  consumer: string,
  idleMs: number,
  now = new Date(),
): Promise<ClaimedEvent[]> {
  const out: ClaimedEvent[] = [];
  for (const lane of store.lanes()) {
    let cursor = "0-0";
    do {
      const r = await store.claim({ lane, consumer, max: 500, mode: "reclaim", reclaimIdleMs: idleMs, cursor });
      out.push(...r.events);
      cursor = r.cursor ?? "0-0";
    } while (cursor !== "0-0");
  }
  out.push(...(await store.claimDue({ consumer, max: 500, now, leaseMs: idleMs })).events);
  return out;
}

/**
 * The bodies of the requests sent to the Upstash endpoint from now on (a command, or a
 * pipeline's list of them); stops watching at the first read.
 */
function requests(upstashUrl: string): () => unknown[] {
  const realFetch = globalThis.fetch;
  const bodies: unknown[] = [];
  globalThis.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if (url.startsWith(upstashUrl) && typeof init?.body === "string") bodies.push(JSON.parse(init.body));
    return realFetch(input, init);
  }) as typeof fetch;
  return () => {
    globalThis.fetch = realFetch;
    return bodies;
  };
}

/** The command of each single-command request body, upper-cased ("EVALSHA"). */
const commandsOf = (bodies: unknown[]): string[] => bodies.map((b) => String((b as unknown[])[0]).toUpperCase());

/** Counts the Redis commands sent from now on (a pipeline's commands each count; a script is one). */
function counter(upstashUrl: string): () => number {
  const sent = requests(upstashUrl);
  return () => sent().reduce<number>((n, body) => n + redisCommandsIn(body), 0);
}

const completed = (c: ClaimedEvent[]): Outcome[] =>
  c.map((x) => ({ receipt: x.receipt, status: "completed" as const }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each<BackendName>(["redis", "postgres"])("EventStore contract: %s", (backend) => {
  it("publish -> claim -> settle: the envelope round-trips, each event is handed out once, history ends completed", async () => {
    const h = await harness(backend);
    expect(h.store.backend).toBe(backend);
    const evs = Array.from({ length: 25 }, (_, i) =>
      event({ source: `s${i % 3}`, body: { nested: [1, "two", null] } }),
    );
    expect(await h.store.publish(evs)).toEqual({ wake: false, wakeWindowLeftMs: 0 });

    const a = await claimNew(h.store, "c-a");
    expect(a.events.map((c) => c.event).sort((x, y) => x.id.localeCompare(y.id))).toEqual(
      [...evs].sort((x, y) => x.id.localeCompare(y.id)),
    );
    expect(a.events.every((c) => c.attempts === 1)).toBe(true);
    // Arrival order within a scope is kept.
    for (const s of ["s0", "s1", "s2"]) {
      expect(a.events.filter((c) => c.event.source === s).map((c) => c.event.n)).toEqual(
        evs.filter((e) => e.source === s).map((e) => e.n),
      );
    }
    // In flight: a 'processing' row on Postgres; on Redis the pending-entries list holds the
    // claim and history has no row until the outcome.
    expect((await h.store.historyCounts(new Date())).processing).toBe(25);
    expect(await h.count()).toBe(backend === "redis" ? 0 : 25);
    // Nothing more to hand out, to anyone.
    expect((await claimNew(h.store, "c-b")).events).toEqual([]);

    const s = await h.store.settle({
      consumer: "c-a",
      outcomes: completed(a.events),
      skipped: a.skipped,
      now: new Date(),
    });
    expect(s.recorded).toBe(25);
    expect(await h.count("status = 'completed'")).toBe(25);
    expect((await claimNew(h.store, "c-a")).events).toEqual([]);
    expect(await takeOver(h.store, "c-z", 0, new Date(Date.now() + 3_600_000))).toEqual([]);
    const counts = await h.store.historyCounts(new Date());
    expect(counts).toMatchObject({
      pending: 0,
      processing: 0,
      completed: 25,
      dlq: 0,
      retryBacklog: 0,
      oldestPendingAgeSeconds: 0,
    });
    for (const lane of h.store.lanes()) expect((await h.store.laneStats(lane)).pending).toBe(0);
  });

  it("publishing the same id again (or twice in one batch) stores and hands it out once", async () => {
    const h = await harness(backend);
    const e = event();
    await h.store.publish([e, e]);
    await h.store.publish([e]);
    const handed: ClaimedEvent[] = [];
    for (let round = 0; round < 3; round++) {
      const c = await claimNew(h.store, `c-${round}`);
      handed.push(...c.events);
      await h.store.settle({
        consumer: `c-${round}`,
        outcomes: completed(c.events),
        skipped: c.skipped,
        now: new Date(),
      });
    }
    expect(handed.map((c) => c.event.id)).toEqual([e.id]);
    expect(await h.count()).toBe(1);
    expect(await h.count("status = 'completed'")).toBe(1);
  });

  it("two claim loops racing: every event handed out exactly once", async () => {
    const h = await harness(backend);
    const evs = Array.from({ length: 2_000 }, (_, i) => event({ source: `s${i % 10}` }));
    for (let i = 0; i < evs.length; i += 500) await h.store.publish(evs.slice(i, i + 500));
    const loop = async (consumer: string) => {
      const got: string[] = [];
      for (;;) {
        const c = await claimNew(h.store, consumer, 100);
        if (c.events.length === 0 && c.skipped.length === 0) return got;
        got.push(...c.events.map((x) => x.event.id));
        await h.store.settle({ consumer, outcomes: completed(c.events), skipped: c.skipped, now: new Date() });
      }
    };
    const [a, b] = await Promise.all([loop("c-a"), loop("c-b")]);
    expect(a.length + b.length).toBe(2_000);
    expect(new Set([...a, ...b]).size).toBe(2_000);
    expect(a.length).toBeGreaterThan(0);
    expect(b.length).toBeGreaterThan(0);
    expect(await h.count("status = 'completed'")).toBe(2_000);
  });

  it("visibility timeout: events a dead consumer held go to another consumer, and the dead one's late settle records nothing", async () => {
    const h = await harness(backend);
    const evs = Array.from({ length: 5 }, () => event());
    await h.store.publish(evs);
    const dead = await claimNew(h.store, "c-dead"); // leased for reclaimIdleMs = 1000 ms
    expect(dead.events).toHaveLength(5);
    // Before the timeout nobody else gets them.
    expect(await takeOver(h.store, "c-live", 60_000)).toEqual([]);
    await sleep(1_200);
    const live = await takeOver(h.store, "c-live", 1_000);
    expect(live.map((c) => c.event.id).sort()).toEqual(evs.map((e) => e.id).sort());
    expect(live.every((c) => c.attempts === 2)).toBe(true);
    // Taken over once: a third consumer finds nothing.
    expect(await takeOver(h.store, "c-third", 1_000)).toEqual([]);

    const late = await h.store.settle({ consumer: "c-dead", outcomes: completed(dead.events), now: new Date() });
    expect(late.recorded).toBe(0);
    expect(await h.count("status = 'processing'")).toBe(5);
    const ok = await h.store.settle({ consumer: "c-live", outcomes: completed(live), now: new Date() });
    expect(ok.recorded).toBe(5);
    expect(await h.count("status = 'completed' and attempts = 2")).toBe(5);
  });

  it("a late settle by the consumer that lost its events does not strand them if the new holder dies too", async () => {
    const h = await harness(backend);
    const evs = Array.from({ length: 3 }, () => event());
    await h.store.publish(evs);
    const dead = await claimNew(h.store, "c-dead");
    await sleep(1_200);
    expect(await takeOver(h.store, "c-second", 1_000)).toHaveLength(3);
    // The first consumer wakes up and settles: nothing applies, and nothing must be acknowledged.
    expect(
      (await h.store.settle({ consumer: "c-dead", outcomes: completed(dead.events), now: new Date() })).recorded,
    ).toBe(0);
    // The second holder dies without settling: a third consumer still gets every event.
    await sleep(1_200);
    const third = await takeOver(h.store, "c-third", 1_000);
    expect(third.map((c) => c.event.id).sort()).toEqual(evs.map((e) => e.id).sort());
    expect((await h.store.settle({ consumer: "c-third", outcomes: completed(third), now: new Date() })).recorded).toBe(
      3,
    );
    expect(await h.count("status = 'completed'")).toBe(3);
  });

  it("retry: pending again with the error recorded, due at its retry time on the consumer's clock, not before", async () => {
    const h = await harness(backend);
    const clock = new ManualClock(Date.now());
    const e = event();
    await h.store.publish([e]);
    const [c] = (await claimNew(h.store, "c-1")).events;
    const retryAt = new Date(clock.now() + 5_000);
    await h.store.settle({
      consumer: "c-1",
      outcomes: [{ receipt: c!.receipt, status: "retry", error: "boom", retryAt }],
      now: new Date(clock.now()),
    });
    expect(await h.row(e.id)).toMatchObject({
      status: "pending",
      attempts: 1,
      errors: [{ attempt: 1, error: "boom" }],
    });
    expect((await h.store.historyCounts(new Date(clock.now()))).retryBacklog).toBe(1);

    // A retry is not a new event, and it is not due a millisecond early.
    expect((await claimNew(h.store, "c-2")).events).toEqual([]);
    clock.advance(4_999);
    expect(
      (await h.store.claimDue({ consumer: "c-2", max: 10, now: new Date(clock.now()), leaseMs: 60_000 })).events,
    ).toEqual([]);
    clock.advance(1);
    const due = await h.store.claimDue({ consumer: "c-2", max: 10, now: new Date(clock.now()), leaseMs: 60_000 });
    expect(due.events.map((x) => [x.event.id, x.attempts])).toEqual([[e.id, 2]]);
    expect(due.events[0]!.event).toEqual(e);
    await h.store.settle({ consumer: "c-2", outcomes: completed(due.events), now: new Date(clock.now()) });
    expect(await h.row(e.id)).toMatchObject({ status: "completed", attempts: 2 });
  });

  it("a lane claim that asks for due events claims them in the same statement, ahead of its batch, and only once", async () => {
    const h = await harness(backend);
    const clock = new ManualClock(Date.now());
    const [retried, fresh] = [event(), event()];
    await h.store.publish([retried]);
    const [c] = (await claimNew(h.store, "c-1")).events;
    await h.store.settle({
      consumer: "c-1",
      outcomes: [{ receipt: c!.receipt, status: "retry", error: "boom", retryAt: new Date(clock.now() + 1_000) }],
      now: new Date(clock.now()),
    });
    await h.store.publish([fresh]);
    clock.advance(1_000);

    let statements = 0;
    const query = h.db.pool.query.bind(h.db.pool);
    (h.db.pool as unknown as { query: unknown }).query = (...a: unknown[]) => {
      statements++;
      return (query as (...x: unknown[]) => unknown)(...a);
    };
    const due = { max: 10, now: new Date(clock.now()), leaseMs: 60_000 };
    const [lane] = h.store.lanes();
    const claim = await h.store.claim({
      lane: lane!,
      consumer: "c-2",
      max: 10,
      mode: "new",
      reclaimIdleMs: 60_000,
      due,
    });
    expect(statements).toBe(1);
    expect(claim.due).toBe(1);
    expect(claim.read).toBe(1);
    expect(claim.events.map((x) => [x.event.id, x.attempts, x.receipt.lane])).toEqual([
      [retried.id, 2, null],
      [fresh.id, 1, lane],
    ]);
    expect(claim.events[0]!.event).toEqual(retried);
    // Claimed once: neither another consumer's due look nor its next claim gets either event.
    expect((await h.store.claimDue({ consumer: "c-3", ...due })).events).toEqual([]);
    expect(
      (await h.store.claim({ lane: lane!, consumer: "c-3", max: 10, mode: "new", reclaimIdleMs: 60_000, due })).events,
    ).toEqual([]);
    expect(
      (await h.store.settle({ consumer: "c-2", outcomes: completed(claim.events), now: new Date(clock.now()) }))
        .recorded,
    ).toBe(2);
    expect(await h.count("status = 'completed'")).toBe(2);
  });

  // Redis only: the Postgres backend has no transport to acknowledge.
  if (backend === "redis")
    it("settled entries are acknowledged by the next read, in the same command, or by flush()", async () => {
      const h = await harness(backend);
      const [lane] = h.store.lanes();
      const pendingNow = async () => (await h.store.laneStats(lane!)).pending;
      await h.store.publish([event(), event()]);
      const first = await h.store.claim({ lane: lane!, consumer: "c-1", max: 1, mode: "new", reclaimIdleMs: 60_000 });
      await h.store.settle({ consumer: "c-1", outcomes: completed(first.events), now: new Date() });
      expect(await pendingNow()).toBe(1); // owed, not yet sent

      const commands = counter(h.cfg.UPSTASH_REDIS_REST_URL!);
      const second = await h.store.claim({ lane: lane!, consumer: "c-1", max: 1, mode: "new", reclaimIdleMs: 60_000 });
      expect(commands()).toBe(1);
      expect(second.events).toHaveLength(1);
      expect(await pendingNow()).toBe(1); // the first acknowledged, the second delivered

      await h.store.settle({ consumer: "c-1", outcomes: completed(second.events), now: new Date() });
      await h.store.flush();
      expect(await pendingNow()).toBe(0);
    });

  // Redis only: scripts are a Redis thing.
  if (backend === "redis")
    it("a script Redis has forgotten (SCRIPT FLUSH) is sent again: EVALSHA, NOSCRIPT, EVAL", async () => {
      const h = await harness(backend);
      const [lane] = h.store.lanes();
      const redis = openRedis(h.cfg);
      await h.store.publish(Array.from({ length: 6 }, () => event()));
      const claimOne = () =>
        h.store.claim({ lane: lane!, consumer: "c-1", max: 1, mode: "new", reclaimIdleMs: 60_000 });
      expect((await claimOne()).events).toHaveLength(1); // Redis knows the script now
      // Other test runs share this Redis and may load the script again between the flush and
      // the claim (then EVALSHA simply succeeds): flush again until the fallback was taken.
      let sent: string[] = [];
      for (let i = 0; i < 5 && sent.length !== 2; i++) {
        await redis.scriptFlush();
        const watch = requests(h.cfg.UPSTASH_REDIS_REST_URL!);
        const claimed = await claimOne();
        sent = commandsOf(watch());
        expect(claimed.events).toHaveLength(1);
      }
      expect(sent).toEqual(["EVALSHA", "EVAL"]);
      // Loaded again by that EVAL: the next call is one EVALSHA.
      const watch = requests(h.cfg.UPSTASH_REDIS_REST_URL!);
      expect((await claimOne()).events).toHaveLength(1);
      expect(commandsOf(watch())).toEqual(["EVALSHA"]);
    });

  it("a failed attempt publishes no derived events; the retry publishes them once, handled in the same run", async () => {
    const h = await harness(backend);
    const clock = new ManualClock(Date.now());
    let attempts = 0;
    const derivedSeen: string[] = [];
    const eventTypes = typesWith("b");
    h.triggers.register({
      name: "derive-then-fail-once",
      filter: f.type("a"),
      handler: async (ctx) => {
        await ctx.publish({ type: "b" });
        if (++attempts === 1) throw new Error("first attempt fails");
      },
    });
    h.triggers.register({ name: "b-seen", filter: f.type("b"), handler: (ctx) => void derivedSeen.push(ctx.event.id) });
    await h.store.publish([event({ type: "a" })]);
    await h.run({ clock, eventTypes });
    expect(derivedSeen).toEqual([]);
    expect(await h.count("type = 'b'")).toBe(0);
    clock.advance(60_000);
    await h.run({ clock, eventTypes });
    expect(attempts).toBe(2);
    expect(derivedSeen).toHaveLength(1);
    expect(await h.count("type = 'b' AND status = 'completed'")).toBe(1);
  });

  it("defer: pending again at its time without burning the attempt or recording an error", async () => {
    const h = await harness(backend);
    const clock = new ManualClock(Date.now());
    const e = event();
    await h.store.publish([e]);
    const [c] = (await claimNew(h.store, "c-1")).events;
    await h.store.settle({
      consumer: "c-1",
      outcomes: [
        { receipt: c!.receipt, status: "defer", reason: "scope busy", retryAt: new Date(clock.now() + 1_000) },
      ],
      now: new Date(clock.now()),
    });
    expect(await h.row(e.id)).toMatchObject({ status: "pending", attempts: 0, errors: [] });
    clock.advance(1_000);
    const due = await h.store.claimDue({ consumer: "c-2", max: 10, now: new Date(clock.now()), leaseMs: 60_000 });
    expect(due.events.map((x) => x.attempts)).toEqual([1]);
  });

  it("dlq: recorded with its error, never handed out again, counted", async () => {
    const h = await harness(backend);
    const e = event();
    await h.store.publish([e]);
    const [c] = (await claimNew(h.store, "c-1")).events;
    await h.store.settle({
      consumer: "c-1",
      outcomes: [{ receipt: c!.receipt, status: "dlq", error: "fatal", event: c!.event, attempts: 1 }],
      now: new Date(),
    });
    expect(await h.row(e.id)).toMatchObject({ status: "dlq", attempts: 1, errors: [{ attempt: 1, error: "fatal" }] });
    expect((await claimNew(h.store, "c-2")).events).toEqual([]);
    expect(await takeOver(h.store, "c-2", 0, new Date(Date.now() + 86_400_000))).toEqual([]);
    expect(await h.store.historyCounts(new Date())).toMatchObject({ dlq: 1, pending: 0, processing: 0 });
  });

  it("counts: pending, processing, retry backlog, oldest age; lane stats see the claimed ones", async () => {
    const h = await harness(backend);
    const evs = Array.from({ length: 6 }, () => event());
    await h.store.publish(evs);
    const c = await claimNew(h.store, "c-1", 4);
    const [first, second, ...rest] = c.events;
    const now = new Date(Date.now() + 2_000);
    await h.store.settle({
      consumer: "c-1",
      outcomes: [
        { receipt: first!.receipt, status: "completed" },
        { receipt: second!.receipt, status: "retry", error: "x", retryAt: new Date(now.getTime() + 60_000) },
      ],
      now,
    });
    await h.store.flush(); // acknowledgements owed go out with the next read, or now
    const counts = await h.store.historyCounts(now);
    // Redis: events not yet read are only in the stream; history knows what was claimed.
    expect(counts).toMatchObject({ completed: 1, processing: rest.length, dlq: 0, retryBacklog: 1 });
    expect(counts.pending).toBe(backend === "postgres" ? 1 + (6 - c.events.length) : 1);
    expect(counts.oldestPendingAgeSeconds).toBeGreaterThan(0);
    let pending = 0;
    for (const lane of h.store.lanes()) pending += (await h.store.laneStats(lane)).pending;
    expect(pending).toBe(rest.length);
  });

  it("publishOnce: a repeated delivery key is a duplicate naming the first event, and stores nothing", async () => {
    const h = await harness(backend);
    const first = event();
    const again = event();
    const a = await h.store.publishOnce(first, { key: "github:d-1", windowS: 3_600 });
    const b = await h.store.publishOnce(again, { key: "github:d-1", windowS: 3_600 });
    const c = await h.store.publishOnce(again, { key: "github:d-2", windowS: 3_600 });
    expect(a).toMatchObject({ duplicate: false });
    expect(b).toMatchObject({ duplicate: true, firstId: first.id });
    expect(c).toMatchObject({ duplicate: false });
    const got = await claimNew(h.store, "c-1");
    expect(got.events.map((x) => x.event.id).sort()).toEqual([first.id, again.id].sort());
  });

  it("publishOnce: concurrent deliveries of one key store one event", async () => {
    const h = await harness(backend);
    const evs = Array.from({ length: 8 }, () => event());
    const rs = await Promise.all(evs.map((e) => h.store.publishOnce(e, { key: "stripe:evt_1", windowS: 600 })));
    const winners = rs.filter((r) => !r.duplicate);
    expect(winners).toHaveLength(1);
    const winnerId = evs[rs.indexOf(winners[0]!)]!.id;
    expect(rs.filter((r) => r.duplicate).map((r) => (r.duplicate ? r.firstId : ""))).toEqual(Array(7).fill(winnerId));
    expect((await claimNew(h.store, "c-1")).events.map((x) => x.event.id)).toEqual([winnerId]);
  });

  it("wake gate: the publish that opens a window says so, the next ones in the window do not", async () => {
    const h = await harness(backend);
    const a = await h.store.publish([event()], { wakeWindowMs: 60_000 });
    const b = await h.store.publish([event()], { wakeWindowMs: 60_000 });
    const c = await h.store.publishOnce(event(), { key: "k", windowS: 60 }, { wakeWindowMs: 60_000 });
    expect(a.wake).toBe(true);
    expect(a.wakeWindowLeftMs).toBeGreaterThan(0);
    expect(b.wake).toBe(false);
    expect(b.wakeWindowLeftMs).toBeGreaterThan(0);
    expect(b.wakeWindowLeftMs).toBeLessThanOrEqual(60_000);
    expect(c.wake).toBe(false);
  });

  it("a reclaim asked for the backlog reports the fresh events waiting in its lane; unasked, none", async () => {
    const h = await harness(backend);
    const [lane] = h.store.lanes();
    const reclaim = (backlogUpTo?: number) =>
      h.store.claim({
        lane: lane!,
        consumer: "c-1",
        max: 10,
        mode: "reclaim",
        reclaimIdleMs: 60_000,
        ...(backlogUpTo ? { backlogUpTo } : {}),
      });
    await h.store.publish(Array.from({ length: 30 }, () => event()));
    expect((await reclaim(100)).backlog).toBe(30);
    expect((await reclaim()).backlog).toBeUndefined();
    await h.store.claim({ lane: lane!, consumer: "c-1", max: 10, mode: "new", reclaimIdleMs: 60_000 });
    expect((await reclaim(100)).backlog).toBe(20);
  });

  it("consumer end to end, adaptive claims: a small backlog in small batches that double, a large one at full size", async () => {
    const adaptive = { CONSUMER_BATCH_ADAPTIVE: "true", CONSUMER_BATCH_SIZE: "50", CONSUMER_BATCH_MIN: "5" };
    const small = await harness(backend, adaptive);
    await small.store.publish(Array.from({ length: 80 }, () => event()));
    // An eighth of 80 first, the next claim made while that batch runs, then doubling:
    // 10, 10, 20, 40 (fixed 50: 2 batches).
    expect(await small.run()).toMatchObject({ claimed: 80, completed: 80, batches: 4 });

    const large = await harness(backend, adaptive);
    await large.store.publish(Array.from({ length: 400 }, () => event()));
    expect(await large.run()).toMatchObject({ claimed: 400, completed: 400, batches: 8 });
  });

  it("consumer end to end: a failing handler retries with backoff on the injected clock, then the DLQ at EVENT_MAX_ATTEMPTS", async () => {
    const h = await harness(backend, {
      EVENT_MAX_ATTEMPTS: "3",
      EVENT_RETRY_BASE_DELAY: "1",
      EVENT_RETRY_MAX_DELAY: "60",
    });
    let calls = 0;
    h.triggers.register({
      name: "fails",
      filter: f.type("test.*"),
      handler: () => {
        calls++;
        throw new Error(`nope ${calls}`);
      },
    });
    h.triggers.register({ name: "other", filter: f.type("other.*"), handler: () => {} });
    const bad = event();
    const good = Array.from({ length: 10 }, () => event({ type: "other.thing" }));
    await h.store.publish([bad, ...good]);
    const clock = new ManualClock(Date.now());

    expect(await h.run({ clock })).toMatchObject({ claimed: 11, completed: 10, retried: 1, dlq: 0 });
    expect(await h.run({ clock })).toMatchObject({ claimed: 0 }); // retry not due yet
    clock.advance(1_000); // base * 2^0
    expect(await h.run({ clock })).toMatchObject({ claimed: 1, retried: 1 });
    clock.advance(1_999); // base * 2^1, one ms early
    expect(await h.run({ clock })).toMatchObject({ claimed: 0 });
    clock.advance(1);
    expect(await h.run({ clock })).toMatchObject({ claimed: 1, dlq: 1 });
    expect(calls).toBe(3);
    const r = await h.row(bad.id);
    expect(r).toMatchObject({ status: "dlq", attempts: 3 });
    expect(r!.errors).toHaveLength(3);
    expect(await h.store.historyCounts(new Date(clock.now()))).toMatchObject({
      completed: 10,
      dlq: 1,
      pending: 0,
      processing: 0,
    });
  });

  it("consumer end to end: 3,000 events, three concurrent consumers, each handled once, scopes never overlap", async () => {
    const h = await harness(backend, { CONSUMER_BATCH_SIZE: "250" });
    const calls = new Map<string, number>();
    const active = new Map<string, number>();
    let overlaps = 0;
    h.triggers.register({
      name: "count",
      filter: f.any(),
      handler: async (ctx) => {
        const n = (active.get(ctx.scope) ?? 0) + 1;
        active.set(ctx.scope, n);
        if (n > 1) overlaps++;
        calls.set(ctx.event.id, (calls.get(ctx.event.id) ?? 0) + 1);
        await sleep(0);
        active.set(ctx.scope, active.get(ctx.scope)! - 1);
      },
    });
    const evs = Array.from({ length: 3_000 }, (_, i) => event({ source: `src-${i % 25}` }));
    for (let i = 0; i < evs.length; i += 1000) await h.store.publish(evs.slice(i, i + 1000));
    const reports = await Promise.all([h.run(), h.run(), h.run()]);
    // Deferred events (scope busy elsewhere past LOCK_WAIT_MS) are due later.
    await h.run({ clock: new ManualClock(Date.now() + 120_000) });
    expect(await h.count("status = 'completed'")).toBe(3_000);
    expect(evs.filter((e) => calls.get(e.id) !== 1)).toEqual([]);
    expect(overlaps).toBe(0);
    expect(reports.filter((r) => r.claimed > 0).length).toBeGreaterThanOrEqual(2);
  });
});
