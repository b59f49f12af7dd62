/**
 * Events held behind an open destination breaker have a limit: after DESTINATION_MAX_HOLD_S
 * (while the breaker stayed open) the sweeper moves them to the DLQ, naming the breaker;
 * GET /health/detailed shows the event waiting longest behind each breaker.
 */
import { sql } from "drizzle-orm";
import { afterEach, describe, expect, inject, it } from "vitest";
import { RedisLanes } from "../../src/backends/redis/lanes";
import { ManualClock } from "../../src/clock";
import { openDestinations } from "../../src/destinations";
import { type SweepOptions, sweep } from "../../src/jobs/dlq-sweeper";
import { ADMIN_TOKEN, call } from "../support/admin";
import { event } from "../support/consume";
import { AS_CONFIGURED, type Rig, rig } from "../support/rig";

const RECEIVER = inject("receiverUrl");
const HOUR = 3_600_000;

const open: Rig<"redis">[] = [];
afterEach(async () => {
  while (open.length) await open.pop()!.close();
});

async function setup(destinations: object[], overrides: Record<string, unknown> = {}) {
  const r = await rig("redis", {
    ...AS_CONFIGURED,
    DESTINATIONS: JSON.stringify(destinations),
    ADMIN_TOKEN,
    ...overrides,
  });
  open.push(r);
  const lanes = new RedisLanes(r.redis, r.cfg.REDIS_PREFIX);
  const sweepAt = (now: Date, o: Partial<SweepOptions> = {}) =>
    sweep({ db: r.db.db, store: r.store, lanes, config: r.cfg, now, ...o });
  return { r, lanes, sweepAt };
}

/** A receiver endpoint that always answers 500. */
async function downEndpoint(): Promise<string> {
  const id = crypto.randomUUID().slice(0, 12);
  const res = await fetch(`${RECEIVER}/__control/${id}`, {
    method: "POST",
    body: JSON.stringify({ mode: "always-500" }),
  });
  expect(res.status).toBe(200);
  return `${RECEIVER}/r/${id}`;
}

const statusOf = async (r: Rig<"redis">, id: string) =>
  (
    await r.rows<{ status: string; last_error: string | null }>(
      sql`select status, last_error from events where id = ${id}`,
    )
  )[0]!;

describe("held events", () => {
  it("an event the consumer holds behind an open breaker goes to the DLQ once held longer than DESTINATION_MAX_HOLD_S", async () => {
    const url = await downEndpoint();
    const { r, lanes, sweepAt } = await setup([{ name: "orders", url, filter: { types: ["order.*"] } }], {
      DESTINATION_BREAKER_FAILURES: "1",
      DESTINATION_BREAKER_COOLDOWN_S: "600",
      DESTINATION_BREAKER_MAX_COOLDOWN_S: "600",
      DESTINATION_MAX_HOLD_S: "3600",
      EVENT_MAX_ATTEMPTS: "5",
    });
    const T0 = Date.parse("2030-01-01T00:00:00Z");
    const clock = new ManualClock(T0);
    const d = openDestinations({ config: r.cfg, db: r.db.db, base: r.triggers, clock });
    const run = () => r.run({ clock, triggers: d.triggers, hooks: d.hooks });
    const e = event({ type: "order.paid" });
    await r.store.publish([e]);
    // The first delivery fails and opens the breaker; the retry finds it open and waits, untried.
    expect(await run()).toMatchObject({ retried: 1 });
    clock.advance(5_000);
    expect(await run()).toMatchObject({ deferred: 1 });
    expect(await statusOf(r, e.id)).toMatchObject({ status: "pending" });

    // Within the limit the sweeper leaves it waiting...
    expect((await sweepAt(new Date(T0 + HOUR / 2))).held).toBe(0);
    expect(await statusOf(r, e.id)).toMatchObject({ status: "pending" });
    // ...past it, the DLQ, with the breaker named.
    const rep = await sweepAt(new Date(T0 + 2 * HOUR));
    expect(rep.errors).toEqual([]);
    expect(rep.held).toBe(1);
    const x = await statusOf(r, e.id);
    expect(x.status).toBe("dlq");
    expect(x.last_error).toMatch(
      /^destination orders: held behind its open circuit breaker \(open since 2030-01-01T00:00:00\.000Z\) longer than DESTINATION_MAX_HOLD_S \(3600 s\)$/,
    );
    expect(Number(await r.redis.xlen(lanes.keys.dlq))).toBe(1);
    expect((await sweepAt(new Date(T0 + 3 * HOUR))).held).toBe(0);
  });

  it("only events stored before the limit, waiting for that destination, behind a breaker open that long; health shows the oldest", async () => {
    const { r, sweepAt } = await setup(
      [
        { name: "orders", url: "https://orders.example/hook", filter: { types: ["order.*"] } },
        { name: "billing", url: "https://billing.example/hook", filter: { sources: ["stripe_*"] } },
      ],
      { DESTINATION_MAX_HOLD_S: "3600", CACHE_ENABLED: "false" },
    );
    // orders: open for two hours; billing: open for half an hour.
    await r.db.db.execute(sql`
      INSERT INTO destination_breakers (destination, state, failures, opened_at, next_probe_at, cooldown_ms)
      VALUES ('orders', 'open', 5, now() - interval '2 hours', now() + interval '10 minutes', 600000),
             ('billing', 'open', 5, now() - interval '30 minutes', now() + interval '10 minutes', 600000)`);
    const ids: Record<string, string> = {};
    const waiting = async (name: string, type: string, source: string, ageMin: number, meta = '{"trace_id":"t"}') => {
      ids[name] = crypto.randomUUID();
      await r.db.db.execute(sql`
        INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts, next_retry_at, created_at)
        VALUES (${ids[name]}, ${type}, ${source}, now(), '{}', ${meta}::jsonb, ${source}, 'pending', 0,
                now() + interval '5 minutes', now() - ${ageMin} * interval '1 minute')`);
    };
    await waiting("old", "order.paid", "shop", 90);
    await waiting("aimed", "order.paid", "shop", 80, '{"trace_id":"t","replay":"j","replay_target":"orders"}');
    await waiting("recent", "order.paid", "shop", 10);
    await waiting("other-type", "invoice.paid", "shop", 90);
    await waiting("elsewhere", "order.paid", "shop", 90, '{"trace_id":"t","replay":"j","replay_target":"crm-sync"}');
    // billing's breaker opened only 30 minutes ago: its event has not waited an hour behind it.
    await waiting("billing", "charge.made", "stripe_eu", 600);

    // A fresh environment object per look: the worker reuses a report for its configuration
    // object for CACHE_HEALTH_TTL_S.
    const health = async () => {
      const h = await call({ ...r.env }, "GET", "/health/detailed");
      return Object.fromEntries(
        (h.body.indicators.destinations as Array<{ destination: string; oldest_held: unknown }>).map((x) => [
          x.destination,
          x.oldest_held,
        ]),
      ) as Record<string, { event_id: string; held_s: number; held_since: string } | null>;
    };
    const before = await health();
    expect(before.orders!.event_id).toBe(ids.old);
    expect(before.orders!.held_s).toBeGreaterThanOrEqual(89 * 60);
    // Held since the breaker opened (30 minutes ago), not since the event was stored.
    expect(before.billing!.event_id).toBe(ids.billing);
    expect(before.billing!.held_s).toBeLessThan(31 * 60);

    const rep = await sweepAt(new Date());
    expect(rep.errors).toEqual([]);
    expect(rep.held).toBe(2);
    const statuses = Object.fromEntries(
      await Promise.all(Object.entries(ids).map(async ([k, id]) => [k, (await statusOf(r, id)).status])),
    );
    expect(statuses).toEqual({
      old: "dlq",
      aimed: "dlq",
      recent: "pending",
      "other-type": "pending",
      elsewhere: "pending",
      billing: "pending",
    });
    const after = await health();
    expect(after.orders!.event_id).toBe(ids.recent);
    expect(after.orders!.held_s).toBeLessThan(11 * 60);
  });
});
