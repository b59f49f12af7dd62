/**
 * DLQ sweeper against the real Redis and Postgres: stuck events, idle consumers, trimming
 * that never drops unacknowledged entries, the once-per-crossing alert, and the cron route.
 */

import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { event } from "../support/consume";
import type { Rig } from "../support/rig";
import { sweepRigsClosedAfterEach } from "../support/sweep";

const sweepRig = sweepRigsClosedAfterEach();

async function insert(r: Rig, n: number, o: { status: string; attempts: number; ageS: number; lease?: boolean }) {
  await r.db.db.execute(sql`
    INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts, claimed_by, lease_until, updated_at)
    SELECT gen_random_uuid(), 'sweep.me', 's', now(), '{}'::jsonb, '{"trace_id":"t"}'::jsonb, 's', ${o.status}::event_status,
           ${o.attempts}, 'c-dead', ${o.lease ? sql`now() - ${o.ageS} * interval '1 second'` : sql`NULL`},
           now() - ${o.ageS} * interval '1 second'
      FROM generate_series(1, ${n})`);
}

const statusCounts = async (r: Rig) =>
  Object.fromEntries(
    (
      await r.rows<{ status: string; attempts: number; n: number }>(sql`
      SELECT status || ':' || attempts AS status, count(*)::int AS n FROM events GROUP BY 1`)
    ).map((x) => [x.status, x.n]),
  );

describe("DLQ sweeper", () => {
  it("moves long-stuck events to the DLQ when exhausted, back to pending otherwise; leaves fresh claims alone", async () => {
    const { r, lanes, run } = await sweepRig({ EVENT_MAX_ATTEMPTS: "3", SWEEP_STUCK_AFTER_MS: "600000" });
    await insert(r, 4, { status: "processing", attempts: 3, ageS: 3600 }); // exhausted, stream claim
    await insert(r, 2, { status: "processing", attempts: 3, ageS: 3600, lease: true }); // exhausted, expired lease
    await insert(r, 3, { status: "processing", attempts: 1, ageS: 3600 }); // attempts left
    await insert(r, 5, { status: "processing", attempts: 3, ageS: 60 }); // a live consumer may still hold these
    const rep = await run();
    expect(rep.errors).toEqual([]);
    expect(rep.stuck).toEqual({ toDlq: 6, toRetry: 3 });
    expect(await statusCounts(r)).toEqual({ "dlq:3": 6, "pending:1": 3, "processing:3": 5 });
    const swept = await r.rows<{ claimed_by: string | null; last_error: string; n: number }>(sql`
      SELECT claimed_by, last_error, jsonb_array_length(errors) AS n FROM events WHERE status = 'dlq' LIMIT 1`);
    expect(swept[0]).toMatchObject({ claimed_by: null, n: 1 });
    expect(swept[0]!.last_error).toMatch(/consumer died/);
    expect(Number(await r.redis.xlen(lanes.keys.dlq))).toBe(6); // one trail entry each
    expect((await run()).stuck).toEqual({ toDlq: 0, toRetry: 0 });
  });

  it("trims only what every group acknowledged, and prunes idle consumers with nothing pending", async () => {
    const { r, lanes, run } = await sweepRig({ SWEEP_CONSUMER_IDLE_MS: "60000" });
    const lane = r.store.lanes()[0]!;
    // 30 entries: the consumer handles them all; then 20 more that nobody has read yet.
    await r.store.publish(Array.from({ length: 30 }, () => event()));
    await r.run();
    await r.store.publish(Array.from({ length: 20 }, () => event()));
    // Retention 0: everything acknowledged may go, nothing else.
    const rep = await run({
      config: { ...r.cfg, STREAM_RETENTION_S: 0 as unknown as undefined },
      now: new Date(Date.now() + 1000),
    });
    expect(rep.errors).toEqual([]);
    const left = Number(await r.redis.xlen(lane));
    expect(left).toBeGreaterThanOrEqual(20); // MINID ~ may keep a few more, never fewer
    expect(left).toBeLessThan(50);
    await r.run();
    expect(await statusCounts(r)).toEqual({ "completed:1": 50 });

    // Consumers idle for less than SWEEP_CONSUMER_IDLE_MS stay; with a later clock they go.
    expect(rep.prunedConsumers).toBe(0);
    expect((await r.store.laneStats(lane)).consumers).toBe(2);
    const later = await run({ config: { ...r.cfg, SWEEP_CONSUMER_IDLE_MS: 0 as number } });
    expect(later.prunedConsumers).toBe(2);
    expect((await r.store.laneStats(lane)).consumers).toBe(0);
    void lanes;
  });

  it("alerts once per crossing of DLQ_ALERT_THRESHOLD, retrying after a failed POST", async () => {
    const { r, run } = await sweepRig({ DLQ_ALERT_URL: "https://alerts.example/hook", DLQ_ALERT_THRESHOLD: "3" });
    const sent: Array<Record<string, unknown>> = [];
    let answer = 200;
    // The alert endpoint is the only thing not real here: workerd tests cannot host an HTTP server.
    const fetchAlert = (async (_url: string, init: RequestInit) => {
      sent.push(JSON.parse(String(init.body)));
      return new Response("ok", { status: answer });
    }) as unknown as typeof fetch;

    await insert(r, 3, { status: "dlq", attempts: 3, ageS: 10 });
    expect((await run({ fetch: fetchAlert })).alerted).toBe(false); // 3 is not past 3
    await insert(r, 1, { status: "dlq", attempts: 3, ageS: 10 });
    answer = 500;
    const failed = await run({ fetch: fetchAlert });
    expect(failed.alerted).toBe(false);
    expect(failed.errors[0]).toMatch(/alert: alert endpoint answered 500/);
    answer = 200;
    expect((await run({ fetch: fetchAlert })).alerted).toBe(true); // retried
    expect((await run({ fetch: fetchAlert })).alerted).toBe(false); // still above: no repeat
    expect(sent).toHaveLength(2);
    expect(sent[1]).toMatchObject({
      alert: "dlq_threshold_exceeded",
      dlq_count: 4,
      threshold: 3,
      top_types: [{ type: "sweep.me", count: 4 }],
    });

    await r.db.db.execute(sql`UPDATE events SET status = 'discarded' WHERE id IN (SELECT id FROM events LIMIT 2)`);
    expect((await run({ fetch: fetchAlert })).alerted).toBe(false); // back under: re-armed
    await insert(r, 5, { status: "dlq", attempts: 3, ageS: 10 });
    expect((await run({ fetch: fetchAlert })).alerted).toBe(true); // a new crossing
    expect(sent).toHaveLength(3);
  });

  it("is routed from the */5 cron, and the */2 cron runs the replay runner", async () => {
    const { r } = await sweepRig({ EVENT_MAX_ATTEMPTS: "2" });
    await insert(r, 2, { status: "processing", attempts: 2, ageS: 7200 });
    for (const cron of ["*/5 * * * *", "*/2 * * * *"]) {
      const ctx = createExecutionContext();
      await worker.scheduled!(createScheduledController({ cron, scheduledTime: Date.now() }), r.env, ctx);
      await waitOnExecutionContext(ctx);
    }
    expect(await statusCounts(r)).toEqual({ "dlq:2": 2 });
  });
});
