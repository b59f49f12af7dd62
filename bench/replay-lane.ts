/**
 * Replay-lane benchmark: does a large replay slow live traffic down?
 *
 *   npx tsx bench/replay-lane.ts                      # 300 events/s for 8 s, replay of 50,000
 *   npx tsx bench/replay-lane.ts --rate 1000 --seconds 10 --history 100000 --wake queue
 *
 * In one run, on a throwaway database and a unique Redis prefix (both removed at the end):
 *
 *   1. without a replay: a steady live load (--rate events/s for --seconds, requests of 10
 *      events through ingest's wake-up gate) drained by the live consumer; publish-to-
 *      completed p50/p99 from history (processed_at - timestamp);
 *   2. with a replay: --history rows inserted by generate_series, a replay job over them
 *      (rate --replay-rate), advanced by the replay runner and drained from the replay lane
 *      by its own consumer group, invocation after invocation as the "*\/2" cron runs them
 *      (advance for half of REPLAY_TIME_BUDGET_MS, drain for the rest; the bench runs them
 *      back to back instead of every two minutes) - and the same live load beside it.
 *
 *   3. without a replay again, once it is done: the baseline is the mean of 1 and 3, so a
 *      drift of the machine or the data over the run weighs on both sides of the ratio.
 *
 * Printed side by side with the ratio with/without, and how much replay work overlapped the
 * live window. Nothing is asserted.
 *
 * --load redrive: the same, with a DLQ retry-all instead of a replay: --history rows
 * dead-lettered, sent back with dlqRetryAll (REDRIVE_RATE --redrive-rate) into the redrive
 * lane, drained by replay-runner invocations back to back as the "*\/2" cron drains it,
 * stopped once the live window is over when it is not done by then.
 * --redrive-path live puts them back on the live retry path instead (lane NULL: the live
 * consumer's due look takes them, ahead of live events in its batches), for comparison.
 *
 *   npx tsx bench/replay-lane.ts --load redrive                 # 50,000 redriven at 5,000/s
 *
 * Three processes, as in production three kinds of invocation: this one (setup, seeding,
 * results), a live one (publisher + live consumer) and a replay one (runner + replay-lane
 * consumer), each with its own Upstash and Neon stand-ins (local/) in front of the shared
 * Redis and Postgres - the stand-ins are single Node event loops, and sharing one would
 * make the replay's traffic queue in front of live requests inside the stand-in, which
 * Upstash and Neon do not do. What the two loads do share is what they share in
 * production: Redis and Postgres. And, here, the machine's cores: on a small machine the
 * replay process also takes CPU from the live one, which separate Workers invocations would
 * not. Compare the ratio, not the absolutes.
 *
 * --wake poll (default): the live consumer runs back to back (50 ms apart), so latency is
 * claim + handle + settle and any slowdown from the replay shows. --wake queue: it runs
 * when a simulated Cloudflare Queue delivers the wake-ups (max_batch_size 100,
 * max_batch_timeout 1 s, as wrangler.toml), the production path; there the 1 s batching
 * and the 1 s wake-up debounce set the latency, and a slower (longer) consumer run even
 * lowers p50 by catching more events while it runs, so its ratios say little.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import os from "node:os";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { neonConfig } from "@neondatabase/serverless";
import { sql } from "drizzle-orm";
import IORedis from "ioredis";
import pg from "pg";
import ws from "ws";
import { z } from "zod";
import { migrateDatabase } from "../local/migrate";
import "../local/lua-text";
import { spawnStandIns } from "../local/standins-process";
import { openRedis } from "../src/backends/redis/client";
import { redisKeys } from "../src/backends/redis/keys";
import { type Env, loadConfig, type WakeMessage } from "../src/config";
import { runConsumer } from "../src/consume/consumer";
import { openDb } from "../src/db/client";
import { defaultRegistry } from "../src/events/event-types";
import { afterPublish, wakeOptions } from "../src/ingest/wake";
import { advanceReplays } from "../src/jobs/replay-runner";
import { dlqRetryAll } from "../src/reads/dlq-queries";
import { createReplay, getReplay } from "../src/reads/replay-queries";
import { filters as f } from "../src/triggers";
import { TriggerRegistry } from "../src/triggers/registry";
import { liveEvent } from "./infra";

// The Redis backend imports its Lua scripts as .lua text: those modules load after the hook
// that local/lua-text.ts registers (a static import would load before it runs).
const { RedisFilterState } = await import("../src/backends/redis/filter-state");
const { RedisLanes } = await import("../src/backends/redis/lanes");
const { RedisScopeLocks } = await import("../src/backends/redis/locks");
const { RedisStreamStore } = await import("../src/backends/redis/store");

const { values: args } = parseArgs({
  options: {
    role: { type: "string", default: "main" },
    rate: { type: "string", default: "300" },
    seconds: { type: "string", default: "8" },
    history: { type: "string", default: "50000" },
    "replay-rate": { type: "string", default: "5000" },
    load: { type: "string", default: "replay" },
    "redrive-rate": { type: "string", default: "5000" },
    "redrive-path": { type: "string", default: "lane" },
    "replay-interval": { type: "string", default: "120" },
    wake: { type: "string", default: "poll" },
  },
});

const PG = {
  host: process.env.PGHOST_TEST ?? "127.0.0.1",
  port: Number(process.env.PGPORT_TEST ?? 5432),
  user: process.env.PGUSER_TEST ?? "postgres",
};
/** The seeded history lies in this day; the replay job covers it. */
const HISTORY_FROM = "2026-01-01T00:00:00Z";
const HISTORY_TO = "2026-01-02T00:00:00Z";
const PER_REQUEST = 10;
/** Replay copies are checked against the registry: the seeded history's type, any fields. */
const HISTORY_TYPES = defaultRegistry().register("history.row", z.looseObject({}));

neonConfig.webSocketConstructor = ws;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (n: number, d = 0) => n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? NaN;

/** What the main process hands its children (as JSON in BENCH_REPLAY_LANE). */
interface ChildSettings {
  dbUrl: string;
  prefix: string;
  /** live: the event type of this phase's events. */
  type?: string;
  rate: number;
  seconds: number;
  wake: "queue" | "poll";
  replayRate: number;
  replayInterval: number;
  load: "replay" | "redrive";
  redriveRate: number;
  redrivePath: "lane" | "live";
}

interface LiveResult {
  events: number;
  p50: number;
  p99: number;
  max: number;
  invocations: number;
  windowStart: number;
  windowEnd: number;
}

interface ReplayResult {
  jobId: string;
  status: string;
  copies: number;
  invocations: number;
  startedAt: number;
  endedAt: number;
}

// --- child processes: each opens its own stand-ins, like an invocation its own connections ---

async function openWorld(s: ChildSettings) {
  const token = randomBytes(16).toString("hex");
  const u = new URL(s.dbUrl);
  const standIns = await spawnStandIns({ token, pgHost: u.hostname, pgPort: Number(u.port || 5432) });
  const env: Env = {
    UPSTASH_REDIS_REST_URL: standIns.gatewayUrl,
    UPSTASH_REDIS_REST_TOKEN: token,
    DATABASE_URL: s.dbUrl,
    NEON_WS_PROXY: standIns.proxyAddress,
    REDIS_PREFIX: s.prefix,
    LOG_LEVEL: "error",
    REPLAY_MAX_RATE: String(Math.max(5000, s.replayRate)),
    REPLAY_INTERVAL_S: String(s.replayInterval),
  };
  const cfg = loadConfig(env);
  const db = openDb(cfg);
  const redis = openRedis(cfg);
  const store = new RedisStreamStore(redis, cfg, db.db);
  const keys = redisKeys(cfg.REDIS_PREFIX);
  // One no-op trigger for live events and replay copies alike: dispatch runs, handlers cost nothing.
  const triggers = new TriggerRegistry().register({
    name: "noop",
    filter: f.type("live.*", "history.*"),
    handler: () => {},
  });
  const consumerParts = () => ({
    store,
    triggers,
    env,
    locks: new RedisScopeLocks(redis, keys, cfg.LOCK_LEASE_MS, db.db),
    filterState: new RedisFilterState(redis, keys.filterState),
  });
  return {
    env,
    cfg,
    db,
    redis,
    store,
    keys,
    consumerParts,
    async close() {
      await db.close();
      await standIns.stop();
    },
  };
}

/** Publisher + live consumer. Prints one JSON line: LiveResult. */
async function liveRole(s: ChildSettings): Promise<void> {
  const w = await openWorld(s);
  const cfg = w.cfg;
  const runs = new Set<Promise<unknown>>();
  let invocations = 0;
  const invoke = () => {
    invocations++;
    const p = runConsumer({ ...w.consumerParts(), config: cfg }).catch((e) => console.error("live consumer:", e));
    runs.add(p);
    void p.finally(() => runs.delete(p));
  };

  // The wake path. queue: a simulated Cloudflare Queue (wrangler.toml: max_batch_size 100,
  // max_batch_timeout 1 s), one consumer invocation per delivery; poll: back-to-back runs.
  let stopped = false;
  const timers = new Set<NodeJS.Timeout>();
  let env: Env = w.env;
  let poller: Promise<void> | undefined;
  if (s.wake === "queue") {
    let waiting = 0;
    let batchTimer: NodeJS.Timeout | undefined;
    const deliver = () => {
      if (batchTimer) timers.delete(batchTimer);
      batchTimer = undefined;
      waiting = 0;
      if (!stopped) invoke();
    };
    const enqueue = () => {
      if (++waiting >= 100) deliver();
      else if (!batchTimer) {
        batchTimer = setTimeout(deliver, 1000);
        timers.add(batchTimer);
      }
    };
    const queue = {
      async sendBatch(msgs: Array<{ body: WakeMessage; delaySeconds?: number }>) {
        for (const m of msgs) {
          if (!m.delaySeconds) {
            enqueue();
            continue;
          }
          const t = setTimeout(() => {
            timers.delete(t);
            enqueue();
          }, m.delaySeconds * 1000);
          timers.add(t);
        }
      },
    } as unknown as Env["WAKE_QUEUE"];
    env = { ...w.env, WAKE_QUEUE: queue };
  } else {
    poller = (async () => {
      while (!stopped) {
        invocations++;
        await runConsumer({ ...w.consumerParts(), config: cfg });
        await sleep(50);
      }
    })();
  }

  // Warm-up, not measured: JIT, connection pools, scripts loaded, consumer group created.
  await w.store.publish(Array.from({ length: 100 }, (_, i) => liveEvent("live.warmup", i)));
  await runConsumer({ ...w.consumerParts(), config: cfg });

  const total = s.rate * s.seconds;
  const windowStart = Date.now();
  for (let sent = 0; sent < total; sent += PER_REQUEST) {
    const wait = windowStart + (sent / s.rate) * 1000 - Date.now();
    if (wait > 0) await sleep(wait);
    const evs = Array.from({ length: Math.min(PER_REQUEST, total - sent) }, (_, k) => liveEvent(s.type!, sent + k));
    const receipt = await w.store.publish(evs, wakeOptions(cfg));
    afterPublish(env, cfg, receipt, (p) => void p);
  }
  const windowEnd = Date.now();

  const completed = async () =>
    Number(
      (
        await w.db.db.execute<{ n: number }>(
          sql`select count(*)::int as n from events where type = ${s.type} and status = 'completed'`,
        )
      ).rows[0]?.n,
    );
  while ((await completed()) < total) {
    if (Date.now() - windowEnd > 90_000)
      throw new Error(`live events not completed within 90 s of the window (${await completed()} of ${total})`);
    await sleep(100);
  }
  stopped = true;
  for (const t of timers) clearTimeout(t);
  await poller;
  await Promise.all(runs);

  const r = await w.db.db.execute<{ ms: number }>(
    sql`select extract(epoch from (processed_at - "timestamp")) * 1000 as ms from events where type = ${s.type} order by 1`,
  );
  const ms = r.rows.map((x) => Number(x.ms));
  const out: LiveResult = {
    events: ms.length,
    p50: pct(ms, 50),
    p99: pct(ms, 99),
    max: ms[ms.length - 1] ?? NaN,
    invocations,
    windowStart,
    windowEnd,
  };
  await w.close();
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

/**
 * Creates the replay job and runs replay-runner invocations back to back, each as
 * src/jobs/scheduled.ts runs one: advance for half the budget, then drain the replay lane
 * with its own group for the rest. Prints {"started": ms} once running, then ReplayResult.
 */
async function replayRole(s: ChildSettings): Promise<void> {
  const w = await openWorld(s);
  const cfg = w.cfg;
  const lanes = new RedisLanes(w.redis, cfg.REDIS_PREFIX);
  const job = await createReplay(w.db.db, {
    id: crypto.randomUUID(),
    from: HISTORY_FROM,
    to: HISTORY_TO,
    types: ["history.row"],
    sources: null,
    status: null,
    target: null,
    dryRun: false,
    rate: s.replayRate,
    startAt: new Date().toISOString(),
  });
  const startedAt = Date.now();
  process.stdout.write(`${JSON.stringify({ started: startedAt })}\n`);
  let invocations = 0;
  let status = job.status as string;
  for (;;) {
    const t0 = Date.now();
    invocations++;
    await advanceReplays({
      db: w.db.db,
      lane: lanes.replayLane(),
      config: cfg,
      eventTypes: HISTORY_TYPES,
      timeBudgetMs: cfg.REPLAY_TIME_BUDGET_MS / 2,
    });
    const left = Math.max(1_000, cfg.REPLAY_TIME_BUDGET_MS - (Date.now() - t0));
    await runConsumer({
      ...w.consumerParts(),
      config: { ...cfg, CONSUMER_TIME_BUDGET_MS: left },
      lanes: [lanes.keys.replayLane],
      dueLane: "redrive",
    });
    status = (await getReplay(w.db.db, job.id))?.status ?? "missing";
    if (status !== "scheduled" && status !== "running" && (await lanes.backlog(lanes.keys.replayLane)) === 0) break;
    if (Date.now() - startedAt > 180_000) break; // a guard, not a target: report what was done
  }
  const endedAt = Date.now();
  const copies = Number(
    (
      await w.db.db.execute<{ n: number }>(
        sql`select count(*)::int as n from events where meta ->> 'replay' = ${job.id} and status = 'completed'`,
      )
    ).rows[0]?.n,
  );
  const out: ReplayResult = { jobId: job.id, status, copies, invocations, startedAt, endedAt };
  await w.close();
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

/**
 * DLQ retry-all of the seeded (dead-lettered) history, then, as the "*\/2" cron does, drains
 * of the replay lane and the redrive lane back to back until every redriven event completed.
 * With --redrive-path live the events go back on the live retry path and the live process's
 * consumer takes them; this one only waits. Prints {"started": ms}, then ReplayResult.
 */
async function redriveRole(s: ChildSettings): Promise<void> {
  const w = await openWorld(s);
  const cfg = w.cfg;
  const lanes = new RedisLanes(w.redis, cfg.REDIS_PREFIX);
  const sent = s.redriveRate > 0 ? await dlqRetryAll(w.db.db, { type: "history.row" }, s.redriveRate) : 0;
  if (s.redrivePath === "live") await w.db.db.execute(sql`update events set lane = null where lane = 'redrive'`);
  const startedAt = Date.now();
  process.stdout.write(`${JSON.stringify({ started: startedAt })}\n`);
  const completed = async () =>
    Number(
      (
        await w.db.db.execute<{ n: number }>(
          sql`select count(*)::int as n from events where type = 'history.row' and status = 'completed'`,
        )
      ).rows[0]?.n,
    );
  // The main process asks a redrive that outlasts the live window to stop (a slow
  // REDRIVE_RATE takes minutes), so the baseline after it runs without it.
  let stop = false;
  process.on("SIGUSR2", () => {
    stop = true;
  });
  let invocations = 0;
  // Completions are counted from the runs' reports: a count(*) over the history before each
  // of the many short drain runs would itself load the Postgres the live load shares.
  let done = 0;
  while (!stop && done < sent) {
    if (Date.now() - startedAt > 300_000) break; // a guard, not a target: report what was done
    if (s.redrivePath === "live") {
      await sleep(200);
      done = await completed();
      continue;
    }
    invocations++;
    const run = await runConsumer({
      ...w.consumerParts(),
      config: { ...cfg, CONSUMER_TIME_BUDGET_MS: cfg.REPLAY_TIME_BUDGET_MS },
      lanes: [lanes.keys.replayLane],
      dueLane: "redrive",
    });
    done += run.completed;
    await sleep(50);
  }
  const out: ReplayResult = {
    jobId: "redrive",
    status: (await completed()) >= sent ? "done" : stop ? "stopped after the live window" : "running",
    copies: await completed(),
    invocations,
    startedAt,
    endedAt: Date.now(),
  };
  await w.close();
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

// --- main: setup, the two phases, results --------------------------------------------------

const children = new Set<ChildProcess>();

/** Starts this file in another role; yields the JSON lines it prints. */
function startChild(role: "live" | "replay" | "redrive", s: ChildSettings) {
  const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), "--role", role], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, BENCH_REPLAY_LANE: JSON.stringify(s) },
  });
  children.add(child);
  const lines: unknown[] = [];
  const waiters: Array<() => void> = [];
  readline.createInterface({ input: child.stdout! }).on("line", (l) => {
    try {
      lines.push(JSON.parse(l));
    } catch {
      console.log(`[${role}] ${l}`);
    }
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<number>((resolve) =>
    child.on("exit", (code) => {
      children.delete(child);
      for (const w of waiters.splice(0)) w();
      resolve(code ?? 1);
    }),
  );
  /** The n-th JSON line (0-based), or an error once the child has exited without it. */
  const line = async <T>(n: number): Promise<T> => {
    for (;;) {
      if (lines.length > n) return lines[n] as T;
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`${role} process exited (${child.exitCode ?? child.signalCode}) before its result`);
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  return { line, exited, child };
}

async function main() {
  const s0 = {
    rate: Number(args.rate),
    seconds: Number(args.seconds),
    wake: args.wake === "queue" ? ("queue" as const) : ("poll" as const),
    replayRate: Number(args["replay-rate"]),
    replayInterval: Number(args["replay-interval"]),
    load: args.load === "redrive" ? ("redrive" as const) : ("replay" as const),
    redriveRate: Number(args["redrive-rate"]),
    redrivePath: args["redrive-path"] === "live" ? ("live" as const) : ("lane" as const),
  };
  const redrive = s0.load === "redrive";
  const what = redrive ? `redrive (${s0.redrivePath === "lane" ? "redrive lane" : "live retry path"})` : "replay";
  const history = Number(args.history);
  const dbName = `reflex_bench_replay_${randomBytes(4).toString("hex")}`;
  const prefix = `bench:${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ ...PG, database: "postgres" });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const dbUrl = `postgresql://${PG.user}@${PG.host}:${PG.port}/${dbName}`;
  const db = new pg.Client({ ...PG, database: dbName });
  const ioredis = new IORedis({ host: "127.0.0.1", port: 6379, maxRetriesPerRequest: null });
  const settings = (extra: Partial<ChildSettings> = {}): ChildSettings => ({ dbUrl, prefix, ...s0, ...extra });

  try {
    await migrateDatabase(dbUrl);
    await db.connect();
    const t0 = Date.now();
    // A redrive starts from dead letters; a replay from completed history.
    await db.query(
      `INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts, last_error, processed_at)
       SELECT gen_random_uuid(), 'history.row', 'src-' || (g % 100), $1::timestamptz + g * interval '1 millisecond',
              jsonb_build_object('n', g, 'text', 'a small payload of a realistic size for a webhook-ish event'),
              '{"trace_id":"seeded"}'::jsonb, 'src-' || (g % 100), $3::event_status, $4::int, $5, $1::timestamptz
         FROM generate_series(1, $2::int) AS g`,
      [HISTORY_FROM, history, redrive ? "dlq" : "completed", redrive ? 3 : 1, redrive ? "handler failed" : null],
    );
    await db.query("ANALYZE events");
    console.log(
      `seeded ${fmt(history)} history rows in ${fmt((Date.now() - t0) / 1000, 1)} s; live load ${fmt(s0.rate)} events/s for ${s0.seconds} s, wake path: ${s0.wake}`,
    );
    // The machine is part of the result: here the replay process takes CPU from the live one.
    const loadAtStart = os.loadavg()[0]!;

    // Phase 1: live load alone.
    const alone = startChild("live", settings({ type: "live.alone" }));
    const without = await alone.line<LiveResult>(0);
    await alone.exited;
    console.log(`without ${what}: p50 ${fmt(without.p50)} ms, p99 ${fmt(without.p99)} ms`);

    // Phase 2: the replay (or redrive) starts, then the same live load beside it.
    const replay = startChild(redrive ? "redrive" : "replay", settings());
    await replay.line<{ started: number }>(0);
    const beside = startChild("live", settings({ type: "live.with-replay" }));
    const withReplay = await beside.line<LiveResult>(0);
    await beside.exited;
    console.log(
      `with ${what}: p50 ${fmt(withReplay.p50)} ms, p99 ${fmt(withReplay.p99)} ms${redrive ? "" : " (waiting for it to finish)"}`,
    );
    if (redrive) replay.child.kill("SIGUSR2");
    const rep = await replay.line<ReplayResult>(1);
    await replay.exited;

    // Phase 3: live load alone again. The baseline is the mean of phases 1 and 3, so a drift of
    // the machine (other work starting or ending) or of the data (history and streams grow with
    // each phase) over the run weighs on both sides of the ratio alike.
    const again = startChild("live", settings({ type: "live.after" }));
    const after = await again.line<LiveResult>(0);
    await again.exited;
    const baseline = (k: "p50" | "p99" | "max") => (without[k] + after[k]) / 2;

    // How much replay work ran while the live events were published: copies the runner
    // appended to the replay lane (entry ids carry their time) and copies the lane's consumer
    // completed.
    const appended = Number(
      await ioredis.eval(
        "return #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[2])",
        1,
        redisKeys(prefix).replayLane,
        withReplay.windowStart,
        withReplay.windowEnd,
      ),
    );
    const overlap = await db.query<{ n: number }>(
      redrive
        ? `SELECT count(*)::int AS n FROM events WHERE type = 'history.row' AND status = 'completed' AND processed_at BETWEEN to_timestamp($2::float8 / 1000) AND to_timestamp($3::float8 / 1000) AND $1::text IS NOT NULL`
        : `SELECT count(*)::int AS n FROM events WHERE meta ->> 'replay' = $1 AND processed_at BETWEEN to_timestamp($2::float8 / 1000) AND to_timestamp($3::float8 / 1000)`,
      [rep.jobId, withReplay.windowStart, withReplay.windowEnd],
    );
    const windowS = (withReplay.windowEnd - withReplay.windowStart) / 1000;
    const replayS = (rep.endedAt - rep.startedAt) / 1000;
    const row = (name: string, r: LiveResult) =>
      `${name.padEnd(16)} ${fmt(r.events).padStart(7)} ${fmt(r.p50).padStart(8)} ${fmt(r.p99).padStart(8)} ${fmt(r.max).padStart(8)} ${String(r.invocations).padStart(12)}`;
    const ratio = (a: number, b: number) => `${fmt(a / b, 2)}x`;

    console.log(
      `
live publish -> completed (${fmt(s0.rate)} events/s for ${s0.seconds} s, ${PER_REQUEST} events per publish, wake path: ${s0.wake})
                  events  p50 ms   p99 ms   max ms  invocations
${row("without, before", without)}
${row(redrive ? "with redrive" : "with replay", withReplay)}
${row("without, after", after)}
ratio with/without       ${ratio(withReplay.p50, baseline("p50")).padStart(8)} ${ratio(withReplay.p99, baseline("p99")).padStart(8)} ${ratio(withReplay.max, baseline("max")).padStart(8)}   (without: the mean of before and after)

${
  redrive
    ? `redrive: ${fmt(history)} dead letters, REDRIVE_RATE ${fmt(s0.redriveRate)}/s, ${what}: ${rep.status}, ${fmt(rep.copies)} completed ` +
      `in ${fmt(replayS, 1)} s (${fmt(rep.copies / replayS)}/s, ${rep.invocations} drain invocation(s) back to back)
  during the ${fmt(windowS, 1)} s live window: ${fmt(overlap.rows[0]!.n)} redriven events completed; `
    : `replay: ${fmt(history)} history rows, job rate ${fmt(s0.replayRate)}/s x REPLAY_INTERVAL_S ${s0.replayInterval}: ${rep.status}, ${fmt(rep.copies)} copies completed ` +
      `in ${fmt(replayS, 1)} s (${fmt(rep.copies / replayS)} copies/s, ${rep.invocations} runner invocation(s) back to back)
  during the ${fmt(windowS, 1)} s live window: ${fmt(appended)} copies appended to the replay lane, ` +
      `${fmt(overlap.rows[0]!.n)} completed from it; `
}` +
        `${redrive ? "redrive" : "replay"} ${rep.endedAt >= withReplay.windowEnd ? "still running when the window closed" : `ended ${fmt((withReplay.windowEnd - rep.endedAt) / 1000, 1)} s before the window closed`}
machine: ${os.cpus().length} cores shared by both loads, Redis, Postgres and the stand-ins; load average ${fmt(loadAtStart, 1)} at the start, ${fmt(os.loadavg()[0]!, 1)} at the end`,
    );
  } finally {
    for (const c of children) c.kill("SIGTERM");
    await db.end().catch(() => {});
    await ioredis
      .eval(
        "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do n = n + redis.call('DEL', k) end return n",
        0,
        `${prefix}:*`,
      )
      .catch(() => {});
    ioredis.disconnect();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => {});
    await admin.end();
  }
}

const role = args.role;
const child = role === "main" ? undefined : (JSON.parse(process.env.BENCH_REPLAY_LANE ?? "{}") as ChildSettings);
const running =
  role === "live"
    ? liveRole(child!)
    : role === "replay"
      ? replayRole(child!)
      : role === "redrive"
        ? redriveRole(child!)
        : main();
running.then(
  () => process.exit(0),
  (e) => {
    console.error(`bench failed (${role}):`, e);
    process.exit(1);
  },
);
