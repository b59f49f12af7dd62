/**
 * Replay jobs' `sources` and `status` filters (POST /replays), alone and with `types`: a job
 * copies exactly the originals its filters select - checked by the copies' causation ids -
 * and counts exactly those (total_estimate, scanned).
 */
import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import { RedisLanes } from "../../src/backends/redis/lanes";
import { advanceReplays } from "../../src/jobs/replay-runner";
import { ADMIN_TOKEN, call } from "../support/admin";
import { typesWith } from "../support/event-types";
import { AS_CONFIGURED, type Rig, rig } from "../support/rig";

const open: Rig<"redis">[] = [];
afterEach(async () => {
  while (open.length) await open.pop()!.close();
});

const FROM = "2026-03-01T00:00:00Z";
const TO = "2026-03-02T00:00:00Z";
const eventTypes = typesWith("shop.order", "shop.refund");

/** One history row per (type, source, status), inside [FROM, TO); returns id by "type/source/status". */
async function seed(r: Rig<"redis">): Promise<Map<string, string>> {
  const ids = new Map<string, string>();
  let i = 0;
  for (const type of ["shop.order", "shop.refund"])
    for (const source of ["eu", "us", "apac"])
      for (const status of ["completed", "dlq", "discarded"]) {
        const id = crypto.randomUUID();
        ids.set(`${type}/${source}/${status}`, id);
        await r.db.db.execute(sql`
          INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts)
          VALUES (${id}, ${type}, ${source}, ${FROM}::timestamptz + ${i++} * interval '1 minute', '{"n":1}',
                  '{"trace_id":"t"}', ${source}, ${status}::event_status, 1)`);
      }
  return ids;
}

describe("replay filters", () => {
  it("sources, status, and both with types: exactly the selected originals are copied and counted", async () => {
    const r = await rig("redis", { ...AS_CONFIGURED, ADMIN_TOKEN });
    open.push(r);
    const lanes = new RedisLanes(r.redis, r.cfg.REDIS_PREFIX);
    const ids = await seed(r);
    const select = (f: (type: string, source: string, status: string) => boolean) =>
      [...ids.entries()]
        .filter(([k]) => f(...(k.split("/") as [string, string, string])))
        .map(([, id]) => id)
        .sort();

    const replay = async (filters: Record<string, unknown>) => {
      const created = await call(r.env, "POST", "/replays", { body: { from: FROM, to: TO, rate: 5000, ...filters } });
      expect(created.status, JSON.stringify(created.body)).toBe(202);
      await advanceReplays({ db: r.db.db, lane: lanes.replayLane(), config: r.cfg, eventTypes });
      const job = (await call(r.env, "GET", `/replays/${created.body.id}`)).body;
      const copies = await r.rows<{ causation: string }>(sql`
        SELECT meta ->> 'causation_id' AS causation FROM events WHERE meta ->> 'replay' = ${job.id}`);
      // The copies are in the replay lane, not yet in history: read them from the stream.
      const entries = (await r.redis.eval(
        "return redis.call('XRANGE', KEYS[1], '-', '+')",
        [lanes.keys.replayLane],
        [],
      )) as Array<[string, string[]]>;
      const fromLane = entries
        .map(([, fields]) => JSON.parse(fields[1]!) as { meta: { replay: string; causation_id: string } })
        .filter((e) => e.meta.replay === job.id)
        .map((e) => e.meta.causation_id);
      return { job, caused: [...copies.map((c) => c.causation), ...fromLane].sort() };
    };

    const bySource = await replay({ sources: ["eu", "apac"] });
    const wantSource = select((_t, s) => s === "eu" || s === "apac");
    expect(wantSource).toHaveLength(12);
    expect(bySource.caused).toEqual(wantSource);
    expect(bySource.job).toMatchObject({ status: "done", scanned: 12, republished: 12, total_estimate: 12 });

    const byStatus = await replay({ status: "dlq" });
    const wantStatus = select((_t, _s, st) => st === "dlq");
    expect(byStatus.caused).toEqual(wantStatus);
    expect(byStatus.job).toMatchObject({ status: "done", scanned: 6, republished: 6, total_estimate: 6 });

    const all = await replay({ types: ["shop.refund"], sources: ["us"], status: "completed" });
    expect(all.caused).toEqual([ids.get("shop.refund/us/completed")]);
    expect(all.job).toMatchObject({ scanned: 1, total_estimate: 1 });

    // Filters that select nothing finish at once, with nothing copied.
    const none = await replay({ sources: ["mars"], status: "completed" });
    expect(none.caused).toEqual([]);
    expect(none.job).toMatchObject({ status: "done", scanned: 0, republished: 0 });

    // An unknown status is a 422 naming the field, and no job.
    const bad = await call(r.env, "POST", "/replays", { body: { from: FROM, status: "lost" } });
    expect(bad.status).toBe(422);
    expect(JSON.stringify(bad.body.errors)).toContain("/status");
  });
});
