/**
 * GET /events?order=recorded - what `reflex events tail` follows: history in the order it was
 * recorded (created_at, id), so an event that arrives late with an old timestamp comes after
 * the follower's cursor instead of being passed over, as it is with order=asc.
 */
import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, call } from "../support/admin";
import { AS_CONFIGURED, type Rig, rig } from "../support/rig";

const open: Rig<"redis">[] = [];
afterEach(async () => {
  while (open.length) await open.pop()!.close();
});

/** One completed event of `type` with its own timestamp and the time history recorded it. */
async function recorded(r: Rig<"redis">, type: string, o: { tsAgoS: number; recordedAgoS: number }): Promise<string> {
  const id = crypto.randomUUID();
  await r.db.db.execute(sql`
    INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts, created_at)
    VALUES (${id}, ${type}, 's', now() - ${o.tsAgoS} * interval '1 second', '{}', '{"trace_id":"t"}', 's', 'completed', 1,
            now() - ${o.recordedAgoS} * interval '1 second')`);
  return id;
}

const page = async (r: Rig<"redis">, q: string) => {
  const res = await call(r.env, "GET", `/events?type=tail.me&limit=10&${q}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as { events: Array<{ id: string }>; next_cursor: string | null };
};

describe("history in recorded order (the tail's)", () => {
  it("a late event with an old timestamp comes after the cursor; order=asc passes it over", async () => {
    const r = await rig("redis", { ...AS_CONFIGURED, ADMIN_TOKEN });
    open.push(r);
    const first = await recorded(r, "tail.me", { tsAgoS: 60, recordedAgoS: 30 });
    const p1 = await page(r, "order=recorded");
    expect(p1.events.map((e) => e.id)).toEqual([first]);
    const asc1 = await page(r, "order=asc");
    expect(asc1.events.map((e) => e.id)).toEqual([first]);

    // Arrives now, with a timestamp of two days ago (a provider's late redelivery, a backfill).
    const late = await recorded(r, "tail.me", { tsAgoS: 2 * 86_400, recordedAgoS: 10 });
    const p2 = await page(r, `order=recorded&cursor=${p1.next_cursor}`);
    expect(p2.events.map((e) => e.id)).toEqual([late]);
    expect((await page(r, `order=asc&cursor=${asc1.next_cursor}`)).events).toEqual([]); // skipped

    // Nothing new: the same cursor again, to keep following.
    const p3 = await page(r, `order=recorded&cursor=${p2.next_cursor}`);
    expect(p3).toEqual({ events: [], next_cursor: p2.next_cursor });
    // Recorded this very moment: listed once its transaction surely committed (RECORDED_SETTLE_MS).
    await recorded(r, "tail.me", { tsAgoS: 0, recordedAgoS: 0 });
    expect((await page(r, `order=recorded&cursor=${p2.next_cursor}`)).events).toEqual([]);

    // recorded_from starts the follow at a time; a cursor of one order is refused by the other.
    const from = new Date(Date.now() - 20_000).toISOString();
    expect((await page(r, `order=recorded&recorded_from=${from}`)).events.map((e) => e.id)).toEqual([late]);
    const bad = await call(r.env, "GET", `/events?order=asc&cursor=${p1.next_cursor}`);
    expect(bad.status).toBe(422);
    expect(JSON.stringify(bad.body.errors)).toContain("not a cursor of order=asc");
    expect((await call(r.env, "GET", `/events?order=desc&recorded_from=${from}`)).status).toBe(422);
  });
});
