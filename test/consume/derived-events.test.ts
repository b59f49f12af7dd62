/**
 * Events the server builds itself - derived events (ctx.publish) and replay copies - are
 * checked against the event registry like ingest input: an unknown type or invalid fields
 * fail the handler's attempt (or the replay chunk) with an error naming the problem, and
 * nothing of it is stored.
 */
import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import { RedisLanes } from "../../src/backends/redis/lanes";
import { advanceReplays } from "../../src/jobs/replay-runner";
import { filters as f } from "../../src/triggers";
import { ADMIN_TOKEN, call } from "../support/admin";
import { event } from "../support/consume";
import { AS_CONFIGURED, type Rig, rig } from "../support/rig";

const open: Rig<"redis">[] = [];
afterEach(async () => {
  while (open.length) await open.pop()!.close();
});

async function make(overrides: Record<string, unknown> = {}) {
  const r = await rig("redis", { ...AS_CONFIGURED, EVENT_MAX_ATTEMPTS: "1", ADMIN_TOKEN, ...overrides });
  open.push(r);
  return r;
}

const rowOf = async (r: Rig<"redis">, id: string) =>
  (
    await r.rows<{ status: string; last_error: string | null }>(
      sql`select status, last_error from events where id = ${id}`,
    )
  )[0]!;
const countWhere = async (r: Rig<"redis">, q: ReturnType<typeof sql>) => Number((await r.rows<{ n: number }>(q))[0]!.n);

describe("ctx.publish checks derived events against the event registry", () => {
  it("an unknown type fails the attempt with an error naming the type and the registered ones; nothing is derived", async () => {
    const r = await make();
    r.triggers.register({
      name: "deriver",
      filter: f.type("test.happened"),
      handler: async (ctx) => {
        await ctx.publish({ type: "no.such.type", n: 1 });
      },
    });
    const e = event();
    await r.store.publish([e]);
    const rep = await r.run();
    expect(rep).toMatchObject({ dlq: 1, completed: 0, derived: 0 });
    const row = await rowOf(r, e.id);
    expect(row.status).toBe("dlq");
    expect(row.last_error).toContain('deriver: ctx.publish: derived event of type "no.such.type" refused');
    expect(row.last_error).toContain('/type: unknown event type "no.such.type"; registered types: ');
    expect(row.last_error).toContain("timer.tick");
    expect(await countWhere(r, sql`select count(*)::int as n from events where type = 'no.such.type'`)).toBe(0);
  });

  it("invalid fields of a registered type fail the attempt naming each field; the retry runs again", async () => {
    const r = await make({ EVENT_MAX_ATTEMPTS: "2" });
    r.triggers.register({
      name: "ticker",
      filter: f.type("test.happened"),
      handler: async (ctx) => {
        await ctx.publish({ type: "timer.tick", timer_name: "t", tick_count: -1, surprise: true });
      },
    });
    const e = event();
    await r.store.publish([e]);
    expect(await r.run()).toMatchObject({ retried: 1, derived: 0 });
    const row = await rowOf(r, e.id);
    expect(row.status).toBe("pending");
    expect(row.last_error).toMatch(/ticker: ctx\.publish: derived event of type "timer\.tick" refused: /);
    expect(row.last_error).toContain("/tick_count: ");
    expect(row.last_error).toMatch(/surprise/);
    expect(await countWhere(r, sql`select count(*)::int as n from events where type = 'timer.tick'`)).toBe(0);
  });

  it("a valid derived event is stored as the registry parses it (field defaults applied)", async () => {
    const r = await make();
    r.triggers.register({
      name: "forwarder",
      filter: f.type("test.happened"),
      handler: async (ctx) => {
        const d = await ctx.publish({ type: "http.request", method: "POST", path: "/hooks/x" });
        // The handler sees what is stored: `headers` has its default.
        if ((d as Record<string, unknown>).headers === undefined) throw new Error("no defaults applied");
      },
    });
    const e = event();
    await r.store.publish([e]);
    expect(await r.run()).toMatchObject({ completed: 2, derived: 1 });
    const [d] = await r.rows<{ payload: Record<string, unknown>; status: string }>(
      sql`select payload, status::text as status from events where type = 'http.request'`,
    );
    expect(d).toEqual({ payload: { method: "POST", path: "/hooks/x", headers: {} }, status: "completed" });
  });
});

describe("replay copies are checked against the event registry", () => {
  it("an original whose type is not registered, or whose fields no longer pass, fails its chunk naming the event; nothing is republished", async () => {
    const r = await make();
    const lanes = new RedisLanes(r.redis, r.cfg.REDIS_PREFIX);
    const gone = crypto.randomUUID();
    const bad = crypto.randomUUID();
    const at = "2026-02-01T00:00:00Z";
    await r.db.db.execute(sql`
      INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts)
      VALUES (${gone}, 'gone.type', 's', ${at}::timestamptz, '{"n":1}', '{"trace_id":"t"}', 's', 'completed', 1),
             (${bad}, 'timer.tick', 's', ${at}::timestamptz + interval '1 second', '{"timer_name":"x"}', '{"trace_id":"t"}', 's', 'completed', 1)`);
    const replay = async (types: string[]) => {
      const { body: job } = await call(r.env, "POST", "/replays", {
        body: { from: at, to: "2026-02-02T00:00:00Z", types, rate: 5000 },
      });
      const rep = await advanceReplays({ db: r.db.db, lane: lanes.replayLane(), config: r.cfg });
      expect(rep.jobs.find((j) => j.id === job.id)).toMatchObject({ status: "error", republished: 0 });
      return (await call(r.env, "GET", `/replays/${job.id}`)).body;
    };
    const unknown = await replay(["gone.type"]);
    expect(unknown).toMatchObject({ scanned: 0, republished: 0 });
    expect(unknown.errors[0].error).toContain(
      `event ${gone} (gone.type) cannot be replayed: /type: unknown event type`,
    );
    const invalid = await replay(["timer.tick"]);
    expect(invalid.errors[0].error).toContain(`event ${bad} (timer.tick) cannot be replayed: /tick_count: `);
    expect(Number(await r.redis.xlen(lanes.keys.replayLane))).toBe(0);
  });
});
