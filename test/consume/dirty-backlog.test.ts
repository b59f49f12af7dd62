/**
 * A dirty backlog (a crashed consumer's expired claims beside thousands of dead letters),
 * drained by three overlapping consumer runs whose batches take longer than the claims'
 * lease (VISIBILITY_TIMEOUT_MS, 1 s here): the runs renew the leases they hold, so no run
 * takes over events another still holds. Every event's handler runs exactly once and no
 * outcome is lost. On both backends: Postgres-side leases, and stream entries left pending.
 */
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { CrashInjected, Failpoints } from "../../src/failpoints";
import { filters as f } from "../../src/triggers";
import { event } from "../support/consume";
import { type Rig, rigsClosedAfterEach } from "../support/rig";

const make = rigsClosedAfterEach();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Expired claims a crashed consumer left; with Redis, half are entries pending for it in the stream. */
const STUCK = 3000;
const DEAD_LETTERS = 14_000;
/** Each handler run: 16 at once, so a claim of 1,000 takes over a second. */
const HANDLER_MS = 20;

async function deadLetters(r: Rig, n: number): Promise<void> {
  await r.rows(sql`
    INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts, last_error, processed_at)
    SELECT gen_random_uuid(), 'shop.dead', 'shop-' || (g % 5), now() - interval '1 hour', '{}'::jsonb,
           '{"trace_id":"t"}'::jsonb, 'shop-' || (g % 5), 'dlq', 3, 'boom', now()
      FROM generate_series(1, ${n}) AS g`);
}

/** Events 'processing' under a crashed consumer's Postgres-side lease, expired minutes ago. */
async function expiredLeases(r: Rig, n: number): Promise<void> {
  await r.rows(sql`
    INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts, claimed_by,
                        lease_until, created_at, updated_at)
    SELECT gen_random_uuid(), 'shop.stuck', 'src-' || g, now() - interval '10 minutes', '{}'::jsonb,
           '{"trace_id":"t"}'::jsonb, 'src-' || g, 'processing', 1, 'c-crashed', now() - interval '5 minutes',
           now() - interval '10 minutes', now() - interval '10 minutes'
      FROM generate_series(1, ${n}) AS g`);
}

/** Stream entries read by a consumer that crashed before settling, idle past the timeout. */
async function pendingForCrashed(r: Rig, n: number): Promise<void> {
  const events = Array.from({ length: n }, (_, i) => event({ type: "shop.stuck", source: `pending-${i}` }));
  for (let i = 0; i < events.length; i += 1000) await r.bundle.store.publish(events.slice(i, i + 1000));
  // One claim of them all, then the crash before any handler ran.
  const config = { ...r.cfg, CONSUMER_BATCH_ADAPTIVE: false, CONSUMER_BATCH_SIZE: n };
  const failpoints = new Failpoints({ "after-persist-before-dispatch": true });
  await expect(r.run({ name: "c-crashed", config, failpoints })).rejects.toThrow(CrashInjected);
  expect((await r.bundle.store.laneStats(r.bundle.store.lanes()[0]!)).pending).toBe(n);
  await sleep(r.cfg.VISIBILITY_TIMEOUT_MS + 100);
}

describe.each(["redis", "postgres"] as const)("dirty backlog (%s)", (backend) => {
  it("three overlapping runs handle every expired claim exactly once, nothing lost", async () => {
    const r = await make(backend, { CONSUMER_BATCH_SIZE: "1000" });
    const runs = new Map<string, number>();
    r.triggers.register({
      name: "slow",
      filter: f.type("shop.stuck"),
      handler: async (ctx) => {
        runs.set(ctx.event.id, (runs.get(ctx.event.id) ?? 0) + 1);
        await sleep(HANDLER_MS);
      },
    });
    await deadLetters(r, DEAD_LETTERS);
    if (backend === "redis") {
      await expiredLeases(r, STUCK / 2);
      await pendingForCrashed(r, STUCK / 2);
    } else await expiredLeases(r, STUCK);

    const reports = await Promise.all([r.run(), r.run(), r.run()]);

    const perEvent = new Map<number, number>();
    for (const n of runs.values()) perEvent.set(n, (perEvent.get(n) ?? 0) + 1);
    expect({ events: runs.size, runsPerEvent: Object.fromEntries(perEvent) }).toEqual({
      events: STUCK,
      runsPerEvent: { 1: STUCK },
    });
    expect(reports.reduce((n, x) => n + x.lost, 0)).toBe(0);
    expect(reports.reduce((n, x) => n + x.completed, 0)).toBe(STUCK);
    const statuses = await r.rows<{ status: string; n: number }>(
      sql`SELECT status::text AS status, count(*)::int AS n FROM events GROUP BY 1 ORDER BY 1`,
    );
    expect(statuses).toEqual([
      { status: "completed", n: STUCK },
      { status: "dlq", n: DEAD_LETTERS },
    ]);
  }, 120_000);
});
