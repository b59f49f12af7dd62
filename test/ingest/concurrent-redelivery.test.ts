/**
 * Providers resend a delivery while the first request is still in flight, and clients retry a
 * POST with the same id before the first answer. Each is sent 8 times at once, through the
 * HTTP routes, on both backends: exactly one request per delivery (or client id) is answered
 * 202, every answer names the same event id, and history-to-be (the queue) holds one event.
 *
 * The race itself is in one Postgres statement, so that statement is raced 2,000 keys x 8
 * callers here on a shared pool. Through the HTTP route each Postgres request opens a
 * connection of its own (as a Worker does), about 16,000 connections for 2,000 deliveries:
 * the suite sends 250 there, and VITE_REDELIVERY_PG=2000 sends the full count.
 */
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { PostgresEventStore } from "../../src/backends/postgres/store";
import type { GuardVerdict } from "../../src/backends/types";
import { loadConfig } from "../../src/config";
import { openDb } from "../../src/db/client";
import { events } from "../../src/db/schema";
import { event } from "../support/consume";
import type { TestEnv } from "../support/env";
import { authed, call, ingestEnv, streamLength } from "../support/ingest";
import { githubHeaders, hook, WEBHOOK_SOURCES } from "../support/webhooks";

const DELIVERIES = 2000;
const COPIES = 8;
/** Deliveries (and client ids) sent through the HTTP routes, per backend. */
const vars = (import.meta as ImportMeta & { env?: Record<string, string | undefined> }).env ?? {};
const THROUGH_HTTP = { redis: DELIVERIES, postgres: Number(vars.VITE_REDELIVERY_PG ?? 250) };
/**
 * Deliveries in flight at once, each with its COPIES requests. Every request opens its own
 * Postgres connection (as a Worker does), so the Postgres backend's wave stays well below the
 * server's max_connections, which other test files share.
 */
const WAVE = { redis: 25, postgres: 3 };

type Answer = { status: number; id: string | undefined };

async function env(backend: "redis" | "postgres"): Promise<TestEnv> {
  return ingestEnv({
    EVENT_BACKEND: backend,
    WEBHOOK_SOURCES,
    RATE_LIMIT_SOURCE_REQUESTS: "0",
    RATE_LIMIT_KEY_EVENTS: "0",
    LOG_LEVEL: "error",
    // Every Redis request arms a timer for its deadline, and workerd allows 10,000 at once in
    // one request context: this file sends thousands of requests from one.
    REDIS_TIMEOUT_MS: "1000",
  });
}

/** Sends every delivery COPIES times at once, WAVE deliveries at a time; the answers per delivery. */
async function sendAll(count: number, wave: number, send: (n: number) => Promise<Answer>): Promise<Answer[][]> {
  const answers: Answer[][] = [];
  for (let start = 0; start < count; start += wave) {
    const sent = Array.from({ length: Math.min(wave, count - start) }, (_, i) =>
      Promise.all(Array.from({ length: COPIES }, () => send(start + i))),
    );
    answers.push(...(await Promise.all(sent)));
  }
  return answers;
}

/** Deliveries answered other than once 202 and otherwise 200 duplicates of the same id. */
function splits(answers: Answer[][]): string[] {
  const bad: string[] = [];
  answers.forEach((a, n) => {
    const accepted = a.filter((x) => x.status === 202).length;
    const ids = new Set(a.map((x) => x.id));
    const others = a.filter((x) => x.status !== 202 && x.status !== 200);
    if (accepted !== 1 || ids.size !== 1 || others.length)
      bad.push(`#${n}: ${a.map((x) => `${x.status} ${x.id?.slice(0, 8)}`).join(", ")}`);
  });
  return bad;
}

async function storedCount(e: TestEnv, backend: "redis" | "postgres"): Promise<number> {
  if (backend === "redis") return streamLength(e);
  const h = openDb(loadConfig(e));
  try {
    const r = await h.db.execute<{ n: number }>(sql`SELECT count(*)::int AS n FROM ${events}`);
    return r.rows[0]!.n;
  } finally {
    await h.close();
  }
}

describe.each(["redis", "postgres"] as const)("concurrent redelivery, EVENT_BACKEND=%s", (backend) => {
  const count = THROUGH_HTTP[backend];
  it(`${count} GitHub deliveries sent ${COPIES} times at once: one 202 and one id each`, async () => {
    const e = await env(backend);
    const run = crypto.randomUUID().slice(0, 8);
    const bodies = Array.from({ length: count }, (_, n) => JSON.stringify({ action: "opened", issue: { number: n } }));
    const headers = await Promise.all(bodies.map((body, n) => githubHeaders(body, `${run}-${n}`, "issues")));
    const answers = await sendAll(count, WAVE[backend], async (n) => {
      const r = await call(e, hook("gh", bodies[n]!, headers[n]!));
      return { status: r.status, id: r.json?.id };
    });
    expect(splits(answers)).toEqual([]);
    expect(await storedCount(e, backend)).toBe(count);
  });

  it(`${count} client ids posted ${COPIES} times at once with the same body: one 202 and one id each`, async () => {
    const e = await env(backend);
    const ids = Array.from({ length: count }, () => crypto.randomUUID());
    const answers = await sendAll(count, WAVE[backend], async (n) => {
      const r = await call(
        e,
        authed("/events", { id: ids[n], type: "timer.tick", source: "cron:x", timer_name: "x", tick_count: n }),
      );
      return { status: r.status, id: r.json?.id };
    });
    expect(splits(answers)).toEqual([]);
    expect(answers.map((a) => a[0]!.id)).toEqual(ids);
    expect(await storedCount(e, backend)).toBe(count);
  });
});

describe("the Postgres guarded statement under concurrent callers", () => {
  it(`${DELIVERIES} keys, each published by ${COPIES} statements at once: one stored each`, async () => {
    // One pool shared by every caller, so thousands of statements race without a connection each.
    const cfg = loadConfig(await env("postgres"));
    const h = openDb({ ...cfg, DB_POOL_MAX: 40 });
    try {
      const store = new PostgresEventStore(cfg, h.db);
      const run = crypto.randomUUID();
      const verdicts = await sendAll(DELIVERIES, 100, async (n) => {
        const ev = event({ type: "webhook.received", source: "gh" });
        const guards = [{ key: `race:${run}:${n}`, digest: "d", onMismatch: "duplicate" as const }];
        const [v] = (await store.publishGuarded([{ event: ev, guards }], 60)).results as [GuardVerdict];
        return v.status === "stored"
          ? { status: 202, id: ev.id }
          : { status: 200, id: "firstId" in v ? v.firstId : "" };
      });
      expect(splits(verdicts)).toEqual([]);
      const stored = await h.db.execute<{ n: number }>(sql`SELECT count(*)::int AS n FROM ${events}`);
      expect(stored.rows[0]!.n).toBe(DELIVERIES);
    } finally {
      await h.close();
    }
  }, 300_000);
});
