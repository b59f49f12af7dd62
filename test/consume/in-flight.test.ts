/**
 * Events in flight on the Redis backend, where history has no row for an event until its
 * outcome: the admin API (list and detail), the CLI's source of it, and health show a
 * claimed, unsettled event as processing with its holder and delivery count, read from the
 * stream's pending-entries list; and a consumer that died inside a handler counts as an
 * attempt, from that list's delivery count. Real Redis and Postgres through the stand-ins.
 */

import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import { CrashInjected, Failpoints } from "../../src/failpoints";
import { filters as f } from "../../src/triggers";
import { ADMIN_TOKEN, call } from "../support/admin";
import { event } from "../support/consume";
import { AS_CONFIGURED, type Rig, rig } from "../support/rig";

const open: Rig<"redis">[] = [];
afterEach(async () => {
  while (open.length) await open.pop()!.close();
});

async function inFlightRig(overrides: Record<string, unknown> = {}) {
  // Health figures are reused for CACHE_HEALTH_TTL_S: 1 s, less than the takeover waits below.
  const r = await rig("redis", {
    ...AS_CONFIGURED,
    ADMIN_TOKEN,
    CACHE_ENABLED: "false",
    CACHE_HEALTH_TTL_S: "1",
    ...overrides,
  });
  open.push(r);
  return r;
}

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));
const historyRows = async (r: Rig<"redis">) =>
  Number((await r.rows<{ n: number }>(sql`select count(*)::int as n from events`))[0]!.n);

describe("in flight, from the pending-entries list", () => {
  it("a claimed, unsettled event: processing with its holder and deliveries in the list, the detail and health; gone once settled", async () => {
    const r = await inFlightRig();
    const evs = [event(), event(), event()];
    await r.store.publish(evs);
    const [lane] = r.store.lanes();
    const claim = await r.store.claim({ lane: lane!, consumer: "c-holder", max: 10, mode: "new", reclaimIdleMs: 1000 });
    expect(claim.events).toHaveLength(3);
    expect(await historyRows(r)).toBe(0); // written at the outcome, not at the claim

    const list = await call(r.env, "GET", "/events/in-flight");
    expect(list.status).toBe(200);
    expect(list.body.events.map((x: { id: string }) => x.id).sort()).toEqual(evs.map((e) => e.id).sort());
    for (const x of list.body.events)
      expect(x).toMatchObject({ status: "processing", consumer: "c-holder", deliveries: 1, lane });

    const one = await call(r.env, "GET", `/events/${evs[0]!.id}`);
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({
      id: evs[0]!.id,
      type: evs[0]!.type,
      status: "processing",
      attempts: 1,
      in_flight: { consumer: "c-holder", deliveries: 1, lane },
      attempt_history: [{ attempt: 1, outcome: "in_progress" }],
    });
    expect((await call(r.env, "GET", `/events/${crypto.randomUUID()}`)).status).toBe(404);

    const health = await call(r.env, "GET", "/health/detailed");
    expect(health.body.indicators.in_flight).toMatchObject({
      status: "healthy",
      value: 3,
      holders: [{ consumer: "c-holder", events: 3, max_deliveries: 1 }],
    });

    // The holder goes silent; another consumer takes the claims over: deliveries 2.
    await sleep(1_100);
    const taken = await r.store.claim({
      lane: lane!,
      consumer: "c-second",
      max: 10,
      mode: "reclaim",
      reclaimIdleMs: 1000,
    });
    expect(taken.events.map((c) => c.attempts)).toEqual([2, 2, 2]);
    const again = await call(r.env, "GET", `/events/${evs[0]!.id}`);
    expect(again.body).toMatchObject({
      status: "processing",
      attempts: 2,
      in_flight: { consumer: "c-second", deliveries: 2 },
    });
    const health2 = await call(r.env, "GET", "/health/detailed");
    expect(health2.body.indicators.in_flight.holders).toEqual([{ consumer: "c-second", events: 3, max_deliveries: 2 }]);

    await r.store.settle({
      consumer: "c-second",
      outcomes: taken.events.map((c) => ({ receipt: c.receipt, status: "completed" as const })),
      now: new Date(),
    });
    // Outcome durable, acknowledgement still owed: not in flight any more.
    expect((await call(r.env, "GET", "/events/in-flight")).body.events).toEqual([]);
    await r.store.flush();
    expect((await call(r.env, "GET", "/events/in-flight")).body.events).toEqual([]);
    expect((await call(r.env, "GET", `/events/${evs[0]!.id}`)).body).toMatchObject({
      status: "completed",
      attempts: 2,
    });
    expect((await call(r.env, "GET", `/events/${evs[0]!.id}`)).body.in_flight).toBeUndefined();
    expect(await historyRows(r)).toBe(3);
  });

  it("a consumer that dies inside a handler: the event shows in flight under it, and the redelivery is attempt 2", async () => {
    const r = await inFlightRig();
    const attempts: number[] = [];
    r.triggers.register({
      name: "two-steps",
      filter: f.any(),
      handler: async (ctx) => {
        attempts.push(ctx.attempt);
        await ctx.step("one", () => 1);
        await ctx.step("two", () => 2);
      },
    });
    const e = event();
    await r.store.publish([e]);
    const dead = "c-dies-mid-handler";
    await expect(
      r.run({ name: dead, failpoints: new Failpoints({ "after-step-recorded": true }) }),
    ).rejects.toBeInstanceOf(CrashInjected);
    expect(attempts).toEqual([1]);
    expect(await historyRows(r)).toBe(0);
    const held = await call(r.env, "GET", `/events/${e.id}`);
    expect(held.body).toMatchObject({ status: "processing", in_flight: { consumer: dead, deliveries: 1 } });

    await sleep(1_100);
    expect(await r.run()).toMatchObject({ claimed: 1, completed: 1 });
    expect(attempts).toEqual([1, 2]);
    const [row] = await r.rows<{ status: string; attempts: number }>(
      sql`select status, attempts from events where id = ${e.id}`,
    );
    expect(row).toEqual({ status: "completed", attempts: 2 });
    expect((await call(r.env, "GET", "/events/in-flight")).body.events).toEqual([]);
  });
});
