/**
 * DLQ retry-all redrives in its own lane, on both backends: the redriven events (and their
 * retries) are claimed only by the replay runner's drain, behind live traffic, never by a
 * live consumer; a single retry stays a live retry. Through the worker's own replay cron too.
 */

import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { dueUpdate } from "../../src/backends/history-writes";
import { filters as f } from "../../src/triggers";
import { defaultTriggers } from "../../src/triggers/registry";
import { call } from "../support/admin";
import { event } from "../support/consume";
import { runCron } from "../support/cron";
import { type Rig, rigsClosedAfterEach } from "../support/rig";

const make = rigsClosedAfterEach();

/** `n` dead-lettered events of `type`, as the consumer leaves them. */
async function deadLetters(r: Rig, n: number, type: string): Promise<string[]> {
  const rows = await r.rows<{ id: string }>(sql`
    INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts, last_error, errors, processed_at)
    SELECT gen_random_uuid(), ${type}, 'shop-' || (g % 5), now() - interval '1 hour', '{}'::jsonb, '{"trace_id":"t"}'::jsonb,
           'shop-' || (g % 5), 'dlq', 3, 'boom', '[{"attempt":3,"error":"boom","at":"2026-01-01T00:00:00Z"}]'::jsonb, now()
      FROM generate_series(1, ${n}) AS g
    RETURNING id::text AS id`);
  return rows.map((x) => x.id);
}

const countBy = async (r: Rig, type: string) =>
  Object.fromEntries(
    (
      await r.rows<{ status: string; n: number }>(
        sql`select status::text as status, count(*)::int as n from events where type = ${type} group by 1`,
      )
    ).map((x) => [x.status, x.n]),
  );

describe.each(["redis", "postgres"] as const)("redrive lane (%s)", (backend) => {
  it("retry-all goes to the redrive lane: live consumers never claim it, the replay runner's drain does", async () => {
    const r = await make(backend, { REDRIVE_RATE: "100000" });
    const fails = new Set<string>();
    const handled: string[] = [];
    r.triggers.register({
      name: "h",
      filter: f.type("shop.*"),
      handler: (ctx) => {
        handled.push(ctx.event.type);
        if (fails.has(ctx.event.id)) {
          fails.delete(ctx.event.id);
          throw new Error("still broken once");
        }
      },
    });
    const dead = await deadLetters(r, 300, "shop.redriven");
    fails.add(dead[0]!);
    const retried = await call(r.env, "POST", "/events/dlq/retry", { body: { type: "shop.redriven" } });
    expect(retried.body).toEqual({ count: 300 });
    // One event retried on its own: a live retry.
    const [single] = await deadLetters(r, 1, "shop.single");
    expect((await call(r.env, "POST", `/events/dlq/${single}/retry`)).status).toBe(200);
    const live = Array.from({ length: 50 }, () => event({ type: "shop.live" }));
    await r.bundle.store.publish(live);

    // Long after every redriven event fell due, live consumer runs handle the live traffic and
    // the single retry, and none of the redrive.
    r.clock.advance(500);
    expect(await r.run()).toMatchObject({ completed: 51 });
    expect(await r.run()).toMatchObject({ claimed: 0 });
    expect(await countBy(r, "shop.redriven")).toEqual({ pending: 300 });
    expect(await countBy(r, "shop.single")).toEqual({ completed: 1 });
    expect(handled.filter((t) => t === "shop.redriven")).toEqual([]);

    // The replay runner's drain takes the redrive lane; a redriven event that fails again is
    // retried in the same lane, still never by a live consumer.
    const drain = () => r.run({ lanes: [r.bundle.replayLane().name], dueLane: "redrive" as const, skipDue: false });
    // (Retries back off 10 ms here: the retried one may fall due, and be done, in the same run.)
    const first = await drain();
    expect(first).toMatchObject({ retried: 1 });
    r.clock.advance(500);
    expect(await r.run()).toMatchObject({ claimed: 0 });
    const second = await drain();
    expect(first.completed + second.completed).toBe(300);
    expect(await countBy(r, "shop.redriven")).toEqual({ completed: 300 });
    // Their earlier errors stay.
    const [x] = await r.rows<{ n: number }>(
      sql`select jsonb_array_length(errors)::int as n from events where id = ${dead[1]!}`,
    );
    expect(x!.n).toBe(1);
  });

  it("the */2 cron drains a redrive through the worker's own entry point", async () => {
    const r = await make(backend, { REDRIVE_RATE: "100000" });
    const name = `redrive-cron-${backend}`;
    defaultTriggers.register({ name, filter: f.type("shop.cron"), handler: () => {} });
    try {
      await deadLetters(r, 40, "shop.cron");
      expect((await call(r.env, "POST", "/events/dlq/retry", { body: { all: true } })).body).toEqual({ count: 40 });
      await new Promise((res) => setTimeout(res, 20));
      // The consumer cron (live) leaves them...
      await runCron(r.env, "* * * * *");
      expect(await countBy(r, "shop.cron")).toEqual({ pending: 40 });
      // ...the replay cron takes them.
      await runCron(r.env, "*/2 * * * *");
      expect(await countBy(r, "shop.cron")).toEqual({ completed: 40 });
    } finally {
      defaultTriggers.unregister(name);
    }
  });
});

describe("the look for due events", () => {
  it("reads only its own lane's part of the index: a redrive's backlog costs live claims nothing", async () => {
    const r = await make("postgres");
    const ids = await deadLetters(r, 50, "redrive.backlog");
    await r.rows(sql`UPDATE events SET status = 'pending', lane = 'redrive', next_retry_at = now() - interval '1 minute'
                      WHERE id = ANY(${sql.param(ids)}::uuid[]) RETURNING 1`);
    const plan = async (lane?: "redrive") => {
      const q = dueUpdate({ consumer: "c-plan", max: 10, now: new Date(), leaseMs: 30_000, ...(lane ? { lane } : {}) });
      const rows = await r.rows<{ "QUERY PLAN": string }>(sql`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) ${q}`);
      return rows.map((x) => x["QUERY PLAN"]).join("\n");
    };
    // EXPLAIN ANALYZE runs the claim: the live look claims none of the 50 and reads none of
    // them (the lane is part of the index condition, not a filter after it).
    const live = await plan();
    expect(live).toMatch(/Index Cond: \(.*COALESCE\(\(lane = 'redrive'::text\), false\) = false/);
    expect(live).not.toMatch(/Rows Removed by Filter/);
    expect((await countBy(r, "redrive.backlog")).pending).toBe(50);
    expect(await plan("redrive")).toMatch(/Index Cond: \(.*COALESCE\(\(lane = 'redrive'::text\), false\) = true/);
    expect((await countBy(r, "redrive.backlog")).processing).toBe(10);
  });
});
