/**
 * The DLQ alert goes to the configured URL only and gives up on a silent one: a redirect
 * is not followed (the alert fails and is retried next run), a hung endpoint is cut by the
 * alert's deadline. Against the real HTTP receiver (test/support/receiver.ts).
 */
import { sql } from "drizzle-orm";
import { afterEach, describe, expect, inject, it } from "vitest";
import { RedisLanes } from "../../src/backends/redis/lanes";
import { sweep } from "../../src/jobs/dlq-sweeper";
import { AS_CONFIGURED, type Rig, rig } from "../support/rig";

const RECEIVER = inject("receiverUrl");

async function endpoint(mode: Record<string, unknown>) {
  const id = crypto.randomUUID().slice(0, 12);
  const res = await fetch(`${RECEIVER}/__control/${id}`, { method: "POST", body: JSON.stringify(mode) });
  expect(res.status).toBe(200);
  return {
    url: `${RECEIVER}/r/${id}`,
    received: async () => (await (await fetch(`${RECEIVER}/__log/${id}`)).json()) as Array<{ path: string }>,
  };
}

let open: Rig<"redis">[] = [];
afterEach(async () => {
  for (const r of open) await r.close();
  open = [];
});

async function withDlq(url: string) {
  const r = await rig("redis", { ...AS_CONFIGURED, DLQ_ALERT_URL: url, DLQ_ALERT_THRESHOLD: "0" });
  open.push(r);
  await r.db.db.execute(sql`
    INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts)
    VALUES (gen_random_uuid(), 'x', 's', now(), '{}'::jsonb, '{"trace_id":"t"}'::jsonb, 's', 'dlq', 3)`);
  const lanes = new RedisLanes(r.redis, r.cfg.REDIS_PREFIX);
  return (o: { alertTimeoutMs?: number } = {}) => sweep({ db: r.db.db, store: r.store, lanes, config: r.cfg, ...o });
}

describe("DLQ alert call", () => {
  it("follows no redirect: the alert fails (retried next run) and the redirect's target gets nothing", async () => {
    const target = await endpoint({ mode: "ok" });
    const redirecting = await endpoint({ mode: "redirect", location: target.url });
    const run = await withDlq(redirecting.url);
    const rep = await run();
    expect(rep.alerted).toBe(false);
    expect(rep.errors.join()).toMatch(/alert: alert endpoint answered 302/);
    expect(await redirecting.received()).toHaveLength(1);
    expect(await target.received()).toEqual([]);
  });

  it("gives up on an endpoint that never answers, and the sweep finishes", async () => {
    const hung = await endpoint({ mode: "hang" });
    const run = await withDlq(hung.url);
    const rep = await run({ alertTimeoutMs: 300 });
    expect(rep.alerted).toBe(false);
    expect(rep.errors.join()).toMatch(/alert:.*(timed? ?out|abort)/i);
    expect(await hung.received()).toHaveLength(1);
  });
});
