/**
 * Replay jobs end to end: created through the admin API, advanced by the replay runner over
 * several invocations (one of them crashing between publish and cursor move), drained from
 * the replay lane by the real consumer, checked in Postgres.
 */
import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import { PgFilterState } from "../../src/backends/postgres/filter-state";
import { PG_LANE, PostgresEventStore } from "../../src/backends/postgres/store";
import { RedisLanes } from "../../src/backends/redis/lanes";
import worker from "../../src/index";
import { replayId } from "../../src/jobs/replay-ids";
import { advanceReplays, ReplayCrash, type ReplayRunOptions } from "../../src/jobs/replay-runner";
import { type as typeFilter } from "../../src/triggers/filters";
import { ADMIN_TOKEN, call } from "../support/admin";
import { event } from "../support/consume";
import { typesWith } from "../support/event-types";
import { AS_CONFIGURED, type Rig, rig } from "../support/rig";

const open: Rig<"redis">[] = [];
afterEach(async () => {
  while (open.length) await open.pop()!.close();
});

const FROM = "2026-02-01T00:00:00Z";
/** The types seeded into history here: replay copies are checked against the registry. */
const eventTypes = typesWith("order.paid", "order.refunded", "a.b", "k.v", "invoice.paid");
const TO = "2026-02-02T00:00:00Z";

async function replayRig(overrides: Record<string, unknown> = {}) {
  const r = await rig("redis", { ...AS_CONFIGURED, ADMIN_TOKEN, CONSUMER_BATCH_SIZE: "1000", ...overrides });
  open.push(r);
  const lanes = new RedisLanes(r.redis, r.cfg.REDIS_PREFIX);
  const advance = (o: Partial<ReplayRunOptions> = {}) =>
    advanceReplays({ db: r.db.db, lane: lanes.replayLane(), config: r.cfg, eventTypes, ...o });
  return { r, lanes, advance };
}

/** DESTINATIONS naming `names` (whose filter takes nothing): targets a replay may name. */
const named = (...names: string[]) =>
  JSON.stringify(names.map((name) => ({ name, url: "https://dest.example/hook", filter: { types: ["never.*"] } })));

/**
 * `n` history rows of `type` inside [FROM, TO), in one statement. Three rows share each
 * timestamp (the id breaks ties) and timestamps have microseconds, so the keyset cursor
 * is exercised where it is easiest to get wrong.
 */
async function seed(
  r: Rig<"redis">,
  n: number,
  type: string,
  extra: { at?: string; meta?: string; payload?: string } = {},
) {
  await r.db.db.execute(sql`
    INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts, processed_at)
    SELECT gen_random_uuid(), ${type}, 'src-' || (g % 7), ${extra.at ?? FROM}::timestamptz + (g / 3) * interval '1001 microseconds',
           coalesce(${extra.payload ?? null}::jsonb, jsonb_build_object('n', g)), ${extra.meta ?? '{"trace_id":"seeded"}'}::jsonb, 'src-' || (g % 7), 'completed', 1, now()
      FROM generate_series(1, ${n}) AS g`);
}

const count = async (r: Rig<"redis">, q: ReturnType<typeof sql>) => Number((await r.rows<{ n: number }>(q))[0]!.n);

describe("replay", () => {
  it("replays 20,000 events across interrupted runner invocations: each exactly once, right causation, progress rising to done", async () => {
    const { r, lanes, advance } = await replayRig();
    await seed(r, 20_000, "order.paid");
    await seed(r, 500, "order.refunded"); // other type: not replayed
    await seed(r, 300, "order.paid", { at: "2026-03-01T00:00:00Z" }); // outside the range
    await seed(r, 200, "order.paid", { meta: '{"trace_id":"x","replay":"an-earlier-job"}' }); // earlier copies

    const created = await call(r.env, "POST", "/replays", {
      body: { from: FROM, to: TO, types: ["order.paid"], rate: 5000 },
    });
    expect(created.status).toBe(202);
    const id: string = created.body.id;
    expect(created.body.status).toBe("scheduled");
    expect(created.headers.get("location")).toBe(`/replays/${id}`);

    const progress: number[] = [];
    const look = async () => {
      const s = await call(r.env, "GET", `/replays/${id}`);
      expect(s.status).toBe(200);
      progress.push(s.body.scanned);
      return s.body;
    };
    // Invocation 1: 3,000 events, then "killed".
    expect((await advance({ maxEvents: 3000 })).scanned).toBe(3000);
    expect(await look()).toMatchObject({ status: "running", scanned: 3000, republished: 3000, total_estimate: 20_000 });

    // Invocation 2 dies after appending its second chunk, before moving the cursor.
    await expect(advance({ maxEvents: 5000, crashAfterPublish: 2 })).rejects.toBeInstanceOf(ReplayCrash);
    expect((await look()).scanned).toBe(3500); // the first chunk committed, the second rolled back

    // Drain what is in the lane so far, between invocations, as the real runner does.
    await r.run({ lanes: [lanes.keys.replayLane], skipDue: true });
    // The rest, in several invocations.
    for (let i = 0; i < 10; i++) {
      const rep = await advance({ maxEvents: 4000 });
      const s = await look();
      if (s.status === "done") break;
      expect(rep.scanned).toBeGreaterThan(0);
    }
    const final = await look();
    expect(final).toMatchObject({
      status: "done",
      scanned: 20_000,
      republished: 20_000,
      total_estimate: 20_000,
      progress: 1,
      eta_s: 0,
    });
    expect(final.finished_at).not.toBeNull();
    for (let i = 1; i < progress.length; i++) expect(progress[i]).toBeGreaterThanOrEqual(progress[i - 1]!);

    // The crashed chunk reached the lane twice: at-least-once into the stream...
    expect(Number(await r.redis.xlen(lanes.keys.replayLane))).toBe(20_000 + r.cfg.REPLAY_CHUNK_SIZE);
    for (let i = 0; i < 5; i++) {
      const rep = await r.run({ lanes: [lanes.keys.replayLane], skipDue: true });
      if (rep.claimed + rep.skipped === 0) break;
    }
    expect(await lanes.backlog(lanes.keys.replayLane)).toBe(0);
    // 40,000 rows just arrived: fresh statistics, or the planner joins them by nested seq scans.
    await r.db.db.execute(sql`ANALYZE events`);
    // ...exactly once in history, each copy caused by a distinct original of the job's filter.
    expect(await count(r, sql`SELECT count(*)::int AS n FROM events WHERE meta ->> 'replay' = ${id}`)).toBe(20_000);
    expect(
      await count(
        r,
        sql`SELECT count(*)::int AS n FROM events WHERE meta ->> 'replay' = ${id} AND status = 'completed'`,
      ),
    ).toBe(20_000);
    expect(
      await count(
        r,
        sql`
      SELECT count(DISTINCT o.id)::int AS n FROM events c JOIN events o ON o.id = (c.meta ->> 'causation_id')::uuid
       WHERE c.meta ->> 'replay' = ${id} AND o.type = 'order.paid' AND o."timestamp" >= ${FROM}::timestamptz
         AND o."timestamp" < ${TO}::timestamptz AND NOT (o.meta ? 'replay')
         AND c.type = o.type AND c.source = o.source AND c.payload = o.payload`,
      ),
    ).toBe(20_000);
    const sample = (
      await r.rows<{ id: string; orig: string }>(sql`
      SELECT id, meta ->> 'causation_id' AS orig FROM events WHERE meta ->> 'replay' = ${id} LIMIT 1`)
    )[0]!;
    expect(sample.id).toBe(await replayId(id, sample.orig));

    // Event detail shows the copy among the original's derived events.
    const orig = await call(r.env, "GET", `/events/${sample.orig}`);
    expect(orig.body.derived).toEqual([expect.objectContaining({ id: sample.id, replay: id })]);

    // A finished job is not advanced again, nor can it be cancelled.
    expect((await advance()).scanned).toBe(0);
    expect((await call(r.env, "POST", `/replays/${id}/cancel`)).status).toBe(409);
  });

  it("cancel stops a running job: nothing more is published", async () => {
    const { r, lanes, advance } = await replayRig();
    await seed(r, 3000, "a.b");
    const { body } = await call(r.env, "POST", "/replays", { body: { from: FROM, to: TO, rate: 5000 } });
    await advance({ maxEvents: 1000 });
    const cancelled = await call(r.env, "POST", `/replays/${body.id}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ status: "cancelled", scanned: 1000 });
    const len = Number(await r.redis.xlen(lanes.keys.replayLane));
    expect((await advance()).scanned).toBe(0);
    expect(Number(await r.redis.xlen(lanes.keys.replayLane))).toBe(len);
    expect((await call(r.env, "GET", `/replays/${body.id}`)).body).toMatchObject({
      status: "cancelled",
      scanned: 1000,
    });
    expect((await call(r.env, "POST", `/replays/${crypto.randomUUID()}/cancel`)).status).toBe(404);
  });

  it("dry_run counts without publishing; start_at defers; rate caps one invocation; target rides in meta", async () => {
    const { r, lanes, advance } = await replayRig({ REPLAY_INTERVAL_S: "60", DESTINATIONS: named("billing-sync") });
    await seed(r, 1500, "k.v");
    const dry = await call(r.env, "POST", "/replays", { body: { from: FROM, to: TO, dry_run: true } });
    const later = await call(r.env, "POST", "/replays", {
      body: {
        from: FROM,
        to: TO,
        start_at: new Date(Date.now() + 3_600_000).toISOString(),
        target: "billing-sync",
        rate: 10,
      },
    });
    expect(later.body.status).toBe("scheduled");
    await advance();
    expect((await call(r.env, "GET", `/replays/${dry.body.id}`)).body).toMatchObject({
      status: "done",
      scanned: 1500,
      republished: 0,
    });
    expect((await call(r.env, "GET", `/replays/${later.body.id}`)).body).toMatchObject({
      status: "scheduled",
      scanned: 0,
    });
    expect(Number(await r.redis.xlen(lanes.keys.replayLane))).toBe(0);

    // An hour later: rate 10/s x 60 s = 600 events in this invocation, not more.
    const rep = await advance({ now: () => new Date(Date.now() + 3_700_000) });
    expect(rep.scanned).toBe(600);
    const entries = (await r.redis.eval(
      "return redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)",
      [lanes.keys.replayLane],
      [],
    )) as Array<[string, string[]]>;
    const first = JSON.parse(entries[0]![1][1]!);
    expect(first.meta).toMatchObject({ replay: later.body.id, replay_target: "billing-sync" });
    // Back-pressure: the lane still holds a full round, so the next invocation waits.
    const held = await advance({ now: () => new Date(Date.now() + 3_800_000) });
    expect(held.jobs[0]).toMatchObject({ status: "held-back", scanned: 0 });

    const list = await call(r.env, "GET", "/replays");
    expect(list.body.replays.map((x: { id: string }) => x.id)).toEqual([later.body.id, dry.body.id]);
  });

  it("a job with a target runs only that trigger for its copies; without one, every matching trigger", async () => {
    // The target must name one of the deployment's triggers or destinations.
    const { r, lanes, advance } = await replayRig({ DESTINATIONS: named("sync-billing") });
    const handled = { "sync-billing": [] as string[], "notify-ops": [] as string[] };
    for (const name of ["sync-billing", "notify-ops"] as const) {
      r.triggers.register({
        name,
        filter: typeFilter("invoice.*"),
        handler: (ctx) => void handled[name].push(String(ctx.event.meta.replay)),
      });
    }
    await seed(r, 40, "invoice.paid");
    const replayAll = async (body: Record<string, unknown>) => {
      const { body: job } = await call(r.env, "POST", "/replays", {
        body: { from: FROM, to: TO, rate: 5000, ...body },
      });
      expect((await advance()).scanned).toBe(40);
      await r.run({ lanes: [lanes.keys.replayLane], skipDue: true });
      expect(
        await count(
          r,
          sql`SELECT count(*)::int AS n FROM events WHERE meta ->> 'replay' = ${job.id} AND status = 'completed'`,
        ),
      ).toBe(40);
      return job.id as string;
    };

    const targeted = await replayAll({ target: "sync-billing" });
    expect(handled["sync-billing"]).toEqual(Array(40).fill(targeted));
    expect(handled["notify-ops"]).toEqual([]);

    const everyone = await replayAll({});
    expect(handled["sync-billing"].filter((j) => j === everyone)).toHaveLength(40);
    expect(handled["notify-ops"]).toEqual(Array(40).fill(everyone));
  });

  it("EVENT_BACKEND=postgres: copies wait in a replay lane of the events table, written with the cursor (exactly once), behind live traffic", async () => {
    const { r } = await replayRig({ EVENT_BACKEND: "postgres" });
    const store = new PostgresEventStore(r.cfg, r.db.db);
    const lane = store.replayLane();
    const advance = (o: Partial<ReplayRunOptions> = {}) =>
      advanceReplays({ db: r.db.db, lane, config: r.cfg, eventTypes, ...o });
    const drain = () => r.run({ store, filterState: new PgFilterState(r.db.db), lanes: [lane.name], skipDue: true });
    await seed(r, 3000, "order.paid");
    const { body: job } = await call(r.env, "POST", "/replays", { body: { from: FROM, to: TO, rate: 5000 } });

    // A chunk whose transaction dies after the append leaves nothing behind: the copies are
    // rows written in that transaction.
    await expect(advance({ maxEvents: 1000, crashAfterPublish: 1 })).rejects.toBeInstanceOf(ReplayCrash);
    expect(await lane.backlog(r.db.db)).toBe(0);
    expect((await advance({ maxEvents: 1000 })).republished).toBe(1000);
    expect(await lane.backlog(r.db.db)).toBe(1000);

    // Live events are claimed from the live lane, never behind (or together with) the copies.
    const live = event({ type: "order.paid" });
    await store.publish([live]);
    const claimed = await store.claim({
      lane: PG_LANE,
      consumer: "c-live",
      max: 5000,
      mode: "new",
      reclaimIdleMs: 60_000,
    });
    expect(claimed.events.map((c) => c.event.id)).toEqual([live.id]);
    await store.settle({
      consumer: "c-live",
      outcomes: [{ receipt: claimed.events[0]!.receipt, status: "completed" }],
      now: new Date(),
    });
    expect((await store.laneStats(PG_LANE)).lag).toBe(0);
    expect((await store.laneStats(lane.name)).lag).toBe(1000);

    for (let i = 0; i < 5 && (await call(r.env, "GET", `/replays/${job.id}`)).body.status !== "done"; i++) {
      await advance();
      await drain();
    }
    await drain();
    expect((await call(r.env, "GET", `/replays/${job.id}`)).body).toMatchObject({
      status: "done",
      scanned: 3000,
      republished: 3000,
    });
    expect(await lane.backlog(r.db.db)).toBe(0);
    expect(
      await count(
        r,
        sql`SELECT count(*)::int AS n FROM events WHERE meta ->> 'replay' = ${job.id} AND status = 'completed'`,
      ),
    ).toBe(3000);
    expect(
      await count(
        r,
        sql`SELECT count(DISTINCT meta ->> 'causation_id')::int AS n FROM events WHERE meta ->> 'replay' = ${job.id}`,
      ),
    ).toBe(3000);
  });

  it("EVENT_BACKEND=postgres: the */2 cron advances a job and drains its lane through the worker", async () => {
    const { r } = await replayRig({ EVENT_BACKEND: "postgres" });
    // The worker checks copies against the deployment's own registry: a built-in type.
    await seed(r, 500, "lifecycle", { payload: '{"action":"started","details":""}' });
    const { body: job } = await call(r.env, "POST", "/replays", { body: { from: FROM, to: TO, rate: 5000 } });
    const status = async () => (await call(r.env, "GET", `/replays/${job.id}`)).body.status as string;
    for (let i = 0; i < 5 && (await status()) !== "done"; i++) {
      const ctx = createExecutionContext();
      await worker.scheduled!(
        createScheduledController({ cron: "*/2 * * * *", scheduledTime: Date.now() }),
        r.env,
        ctx,
      );
      await waitOnExecutionContext(ctx);
    }
    expect(await status()).toBe("done");
    expect(
      await count(
        r,
        sql`SELECT count(*)::int AS n FROM events WHERE meta ->> 'replay' = ${job.id} AND status = 'completed'`,
      ),
    ).toBe(500);
  });

  it("rejects bad replay requests with 422 naming the field", async () => {
    const { r } = await replayRig({ REPLAY_MAX_RATE: "100" });
    const bad = async (body: unknown) => call(r.env, "POST", "/replays", { body });
    expect((await bad({})).status).toBe(422);
    expect((await bad({ from: "yesterday" })).body.errors[0].path).toBe("/from");
    expect((await bad({ from: TO, to: FROM })).body.errors).toEqual([{ path: "/to", message: "must be after `from`" }]);
    expect((await bad({ from: FROM, rate: 1000 })).body.errors[0].path).toBe("/rate");
    expect((await bad({ from: FROM, status: "weird" })).status).toBe(422);
    expect((await bad({ from: FROM, surprise: 1 })).status).toBe(422);
    expect((await call(r.env, "GET", "/replays/not-a-uuid")).status).toBe(404);
  });
});
