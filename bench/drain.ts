/**
 * Drain benchmark: pre-filled stream -> completed history with a no-op trigger.
 *
 *   npx tsx bench/drain.ts                       # 10,000 events per batch size, 1 consumer
 *   npx tsx bench/drain.ts --events 50000 --consumers 4 --sizes 500,1000
 *
 * Runs the real consumer code in Node against the local Redis and Postgres through the same
 * stand-ins the tests use (Upstash REST gateway, Neon WebSocket proxy; in a process of their
 * own, local/standins-process.ts), on a throwaway
 * database and a unique Redis prefix, all removed at the end. Prints, per batch size:
 * events/s, Redis commands per event - both as sent by the client (what Upstash bills; a
 * script is one command) and as executed by the server (INFO commandstats; commands inside
 * scripts included) - Postgres round trips per batch, and where the machine's CPU went
 * (bench/cpu.ts: this process, the stand-ins, Postgres, Redis). Then BullMQ processing the same
 * number of no-op jobs on the same Redis (ioredis, unique queue, obliterated after), as the
 * baseline ratio. Then publish-to-completed latency with the queue nudge and no cron: events
 * published at a steady rate through ingest's wake-up gate (src/ingest/wake.ts) into a
 * simulated Cloudflare Queue (max_batch_size / max_batch_timeout from wrangler.toml) whose
 * deliveries run the consumer.
 *
 * Then the same workload with EVENT_BACKEND=postgres (no Redis: Postgres store, advisory
 * locks, Postgres filter state), per batch size next to the Redis figure, and pg-boss
 * processing the same number of no-op jobs as the Postgres-queue baseline
 * (bench/drain-postgres.ts). --skip-postgres leaves that part out.
 *
 * Numbers are from one machine, with Redis, Postgres, the stand-ins and the consumer sharing
 * its cores: compare ratios, not absolutes, with production.
 */
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { neonConfig } from "@neondatabase/serverless";
import { Queue, Worker } from "bullmq";
import IORedis from "ioredis";
import ws from "ws";
import type { Env, WakeMessage } from "../src/config";
import type { EventEnvelope } from "../src/events/envelope";
import { afterPublish, wakeOptions } from "../src/ingest/wake";
import { redisCommandsIn } from "../src/obs/usage";
import { filters as f } from "../src/triggers";
import { TriggerRegistry } from "../src/triggers/registry";
import { cpuSample, formatCpu } from "./cpu";
import { drainPostgres, pgBossBaseline } from "./drain-postgres";
import { type BenchInfra, benchInfra, runMain } from "./infra";
import { type CeilingRow, formatFigures, insertCeiling, snapshot, writeFigures } from "./pg-writes";
import { redisDrain } from "./redis-drain";

const { values: args } = parseArgs({
  options: {
    events: { type: "string", default: "10000" },
    sizes: { type: "string", default: "100,500,1000" },
    consumers: { type: "string", default: "1" },
    sources: { type: "string", default: "100" },
    "bullmq-concurrency": { type: "string", default: "100" },
    "pgboss-workers": { type: "string", default: "4" },
    "pgboss-batch": { type: "string" },
    "skip-postgres": { type: "boolean", default: false },
    "skip-redis": { type: "boolean", default: false },
    "pg-variants": { type: "string", default: "all" },
    rounds: { type: "string", default: "1" },
    "latency-rate": { type: "string", default: "2000" },
    "latency-seconds": { type: "string", default: "5" },
    "queue-batch-timeout": { type: "string", default: "1" },
    adaptive: { type: "boolean", default: false },
  },
});
const N = Number(args.events);
const SIZES = args.sizes!.split(",").map(Number);
const CONSUMERS = Number(args.consumers);
const SOURCES = Number(args.sources);

neonConfig.webSocketConstructor = ws;

// --- Redis command counting --------------------------------------------------------------
let gatewayUrl = "";
let clientCommands = 0;
const realFetch = globalThis.fetch;
globalThis.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
  const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
  if (gatewayUrl && url.startsWith(gatewayUrl) && typeof init?.body === "string")
    clientCommands += redisCommandsIn(JSON.parse(init.body));
  return realFetch(input, init);
}) as typeof fetch;

async function serverCommands(r: IORedis): Promise<number> {
  const info = await r.info("commandstats");
  let n = 0;
  for (const m of info.matchAll(/^cmdstat_[^:]+:calls=(\d+)/gm)) n += Number(m[1]);
  return n - 1; // this INFO itself
}

function event(i: number, t = Date.now()): EventEnvelope {
  return {
    id: crypto.randomUUID(),
    type: "bench.noop",
    source: `bench-${i % SOURCES}`,
    timestamp: new Date(t).toISOString(),
    meta: { trace_id: randomBytes(16).toString("hex") },
    seq: i,
    body: { text: "a small payload of a realistic size for a webhook-ish event", n: i },
  };
}

/** An event as history stores it, for the raw-insert ceiling. */
function ceilingRow(e: EventEnvelope): CeilingRow {
  const { id, type, source, timestamp, meta, ...rest } = e;
  return { id, type, source, timestamp, payload: JSON.stringify(rest), meta: JSON.stringify(meta) };
}

/** The ceiling for a batch size, measured once and reused by both backends' lines. */
const ceilings = new Map<number, number>();
async function ceiling(dbUrl: string, size: number): Promise<number> {
  let c = ceilings.get(size);
  if (c === undefined) {
    c = await insertCeiling(
      dbUrl,
      Array.from({ length: N }, (_, i) => ceilingRow(event(i))),
      size,
    );
    ceilings.set(size, c);
  }
  return c;
}

const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? NaN;
const fmt = (n: number, d = 0) => n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });

/** A fixed claim size (adaptive claims off). */
const fixedSize = (size: number) => ({ CONSUMER_BATCH_SIZE: String(size), CONSUMER_BATCH_ADAPTIVE: "false" });

/** The worker env of one drain run: the bench's stand-ins, its own key prefix, no run limits. */
function benchEnv(infra: BenchInfra) {
  return (prefix: string, extra: Record<string, string> = {}): Env => ({
    UPSTASH_REDIS_REST_URL: infra.standIns.gatewayUrl,
    UPSTASH_REDIS_REST_TOKEN: infra.token,
    DATABASE_URL: infra.dbUrl,
    NEON_WS_PROXY: infra.standIns.proxyAddress,
    REDIS_PREFIX: prefix,
    CONSUMER_TIME_BUDGET_MS: "120000",
    CONSUMER_MAX_BATCHES: "100000",
    LOG_LEVEL: "warn",
    ...extra,
  });
}

/**
 * The Redis backend as one drain run uses it: its config, pool and store, run() for one
 * consumer run, consumers() for --consumers of them at once, and prefill() for the
 * pre-filled stream (history emptied, --events events published).
 */
function redisBench(env: Env, dbUrl: string) {
  const { cfg, db, store, run } = redisDrain(env, dbUrl);
  return {
    cfg,
    db,
    store,
    run,
    consumers: (triggers: TriggerRegistry) => Promise.all(Array.from({ length: CONSUMERS }, () => run(triggers))),
    async prefill() {
      await db.db.execute("TRUNCATE events");
      const evs = Array.from({ length: N }, (_, i) => event(i));
      for (let i = 0; i < evs.length; i += 1000) await store.publish(evs.slice(i, i + 1000));
    },
  };
}

async function main() {
  if (args.adaptive) return adaptiveBench();
  const infra = await benchInfra();
  const { standIns, dbUrl, ioredis, prefixBase } = infra;
  gatewayUrl = standIns.gatewayUrl;

  const envFor = benchEnv(infra);

  const noop = new TriggerRegistry().register({ name: "noop", filter: f.type("bench.*"), handler: () => {} });
  const results: string[] = [];
  /** Prints lines now and keeps them for the summary at the end (null: a figure not measured here). */
  const report = (...lines: Array<string | null>) => {
    const kept = lines.filter((l): l is string => l !== null);
    results.push(...kept);
    console.log(kept.join("\n"));
  };
  let ours = 0;
  const redisRates = new Map<number, number>();

  try {
    // --- drain throughput per batch size ------------------------------------------------
    for (const size of args["skip-redis"] ? [] : SIZES) {
      const b = redisBench(envFor(`${prefixBase}:b${size}`, fixedSize(size)), dbUrl);
      const { db } = b;
      let pgQueries = 0;
      const q = db.pool.query.bind(db.pool);
      (db.pool as unknown as { query: unknown }).query = (...a: unknown[]) => {
        pgQueries++;
        return (q as (...x: unknown[]) => unknown)(...a);
      };
      await b.prefill();

      const w0 = await snapshot(dbUrl);
      const c0 = clientCommands;
      const s0 = await serverCommands(ioredis);
      pgQueries = 0;
      const cpu0 = cpuSample();
      const t0 = performance.now();
      const reports = await b.consumers(noop);
      const secs = (performance.now() - t0) / 1000;
      const cpu = formatCpu("  events,", cpu0, cpuSample(), N);
      const roundTrips = pgQueries; // before the check below adds its own
      const s1 = await serverCommands(ioredis);
      const sent = clientCommands - c0;
      const batches = reports.reduce((a, r) => a + r.batches, 0);
      const r = await db.db.execute<{ n: number }>("select count(*)::int as n from events where status = 'completed'");
      const completed = Number(r.rows[0]?.n);
      if (completed !== N) throw new Error(`batch ${size}: ${completed} of ${N} completed`);
      const rate = N / secs;
      ours = Math.max(ours, rate);
      redisRates.set(size, rate);
      report(
        `batch ${String(size).padStart(5)}: ${fmt(rate).padStart(7)} events/s | Redis cmds/event: ${fmt(sent / N, 4)} sent, ` +
          `${fmt((s1 - s0) / N, 4)} executed | Postgres round trips/batch: ${fmt(roundTrips / batches, 2)} (${batches} batches)`,
        cpu,
      );
      await db.close();
      const writes = await writeFigures(w0, await snapshot(dbUrl), N);
      const top = await ceiling(dbUrl, size);
      report(
        formatFigures(`  history writes`, writes),
        `  raw ceiling (INSERT ... unnest of the same rows, batch ${size}, same indexes): ${fmt(top)} rows/s; drain = ${fmt((rate / top) * 100, 1)}% of it`,
      );
    }

    // --- BullMQ baseline ------------------------------------------------------------------
    if (!args["skip-redis"]) {
      const qname = `reflex-bench-${randomBytes(4).toString("hex")}`;
      const queue = new Queue(qname, { connection: ioredis });
      for (let i = 0; i < N; i += 1000) {
        await queue.addBulk(
          Array.from({ length: Math.min(1000, N - i) }, (_, k) => ({ name: "noop", data: event(i + k) })),
        );
      }
      const b0 = await serverCommands(ioredis);
      let done = 0;
      const cpu0 = cpuSample();
      const t0 = performance.now();
      const finished = new Promise<void>((resolve) => {
        const worker = new Worker(qname, async () => {}, {
          connection: new IORedis({ host: "127.0.0.1", port: 6379, maxRetriesPerRequest: null }),
          concurrency: Number(args["bullmq-concurrency"]),
        });
        worker.on("completed", () => {
          if (++done === N) {
            void worker.close().then(() => resolve());
          }
        });
      });
      await finished;
      const bsecs = (performance.now() - t0) / 1000;
      const cpu = formatCpu("  jobs,", cpu0, cpuSample(), N);
      const b1 = await serverCommands(ioredis);
      const brate = N / bsecs;
      await queue.obliterate({ force: true });
      await queue.close();
      report(
        `BullMQ (concurrency ${args["bullmq-concurrency"]}): ${fmt(brate)} jobs/s | Redis cmds/job executed: ${fmt((b1 - b0) / N, 2)}`,
        cpu,
        `ratio (best Reflex Edge / BullMQ): ${fmt(ours / brate, 2)}x`,
      );
    }

    // --- EVENT_BACKEND=postgres, and pg-boss as the Postgres-queue baseline ----------------
    if (!args["skip-postgres"]) {
      let pgBest = 0;
      // Variants ("all", or "-index,-index,ff=70"): each drain runs without the named
      // indexes (dropped on the empty table, rebuilt after) and with that fillfactor for the
      // events table (reset after), and every round runs each
      // variant and pg-boss once, so noise falls on all of them alike.
      const variants = args["pg-variants"]!.split(";").map((v) => v.trim());
      const rounds = Number(args.rounds);
      const rates = new Map<string, number[]>();
      const pgbRates: number[] = [];
      const pgbBatch = Number(args["pgboss-batch"] ?? Math.max(...SIZES));
      for (let round = 1; round <= rounds; round++) {
        for (const size of SIZES) {
          for (const variant of variants) {
            const parts = variant === "all" ? [] : variant.split(",");
            const drop = parts.filter((x) => x.startsWith("-")).map((x) => x.slice(1));
            const ff = parts.find((x) => x.startsWith("ff="));
            const r = await drainPostgres({
              env: envFor(`${prefixBase}:pg${size}`, fixedSize(size)),
              events: Array.from({ length: N }, (_, i) => event(i)),
              consumers: CONSUMERS,
              triggers: noop,
              dropIndexes: drop,
              ...(ff ? { fillfactor: Number(ff.slice(3)) } : {}),
            });
            const key = `batch ${size}, ${variant}`;
            rates.set(key, [...(rates.get(key) ?? []), r.rate]);
            if (variant === "all") pgBest = Math.max(pgBest, r.rate);
            const top = await ceiling(dbUrl, size);
            report(
              `postgres batch ${String(size).padStart(5)}${variant === "all" ? "" : ` [${variant}]`}${rounds > 1 ? ` (round ${round})` : ""}: ` +
                `${fmt(r.rate).padStart(7)} events/s (redis ${fmt(redisRates.get(size) ?? NaN)}, ` +
                `postgres/redis ${fmt(r.rate / (redisRates.get(size) ?? NaN), 2)}x) | Postgres round trips/batch: ` +
                `${fmt(r.storeTripsPerBatch, 2)} store + ${fmt(r.lockTripsPerBatch, 2)} lock (${r.batches} batches), Redis: none`,
              r.cpu,
              formatFigures(`  publish writes`, r.publishWrites),
              formatFigures(`  drain writes`, r.drainWrites),
              `  raw ceiling (INSERT ... unnest of the same rows, batch ${size}, all indexes): ${fmt(top)} rows/s; drain = ${fmt((r.rate / top) * 100, 1)}% of it`,
            );
          }
        }
        const pgb = await pgBossBaseline({
          connectionString: dbUrl,
          n: N,
          batchSize: pgbBatch,
          workers: Number(args["pgboss-workers"]),
          data: (i) => event(i),
        });
        pgbRates.push(pgb.rate);
        report(
          `pg-boss (${args["pgboss-workers"]} workers, batchSize ${pgbBatch}, polling 0.5 s)${rounds > 1 ? ` (round ${round})` : ""}: ${fmt(pgb.rate)} jobs/s`,
          pgb.cpu,
        );
      }
      const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? NaN;
      const pgbMedian = median(pgbRates);
      const allMedians = SIZES.map((size) => median(rates.get(`batch ${size}, all`) ?? []));
      report(
        ...[...rates].map(
          ([key, xs]) =>
            `postgres ${key}: median ${fmt(median(xs))} events/s = ${fmt(median(xs) / pgbMedian, 2)}x pg-boss (median ${fmt(pgbMedian)})`,
        ),
        `ratio (postgres backend, all indexes, best batch size by median / median pg-boss): ${fmt(Math.max(...allMedians) / pgbMedian, 2)}x; ` +
          `(best postgres / best redis): ${fmt(pgBest / ours, 2)}x`,
      );
    }

    // --- publish-to-completed latency, queue nudge only ----------------------------------
    if (!args["skip-redis"]) report(await latency(envFor(`${prefixBase}:lat`), dbUrl, noop));
  } finally {
    await infra.close();
  }
  console.log(`\n${N} events per run, ${CONSUMERS} concurrent consumer(s), ${SOURCES} sources (scopes)`);
  console.log(results.join("\n"));
}

/**
 * Steady publishing (requests of 10 events) through ingest's wake-up gate into a simulated
 * Cloudflare Queue: a delivery happens when max_batch_size messages are waiting or
 * max_batch_timeout after the first one, and each delivery is one consumer invocation.
 */
async function latency(
  env: Env,
  dbUrl: string,
  triggers: TriggerRegistry,
  extra: Record<string, string> = {},
): Promise<string> {
  const b = redisBench({ ...env, CONSUMER_TIME_BUDGET_MS: "20000", ...fixedSize(500), ...extra }, dbUrl);
  const { cfg, db, store } = b;
  await db.db.execute("TRUNCATE events");
  const batchTimeoutMs = Number(args["queue-batch-timeout"]) * 1000;
  const maxBatch = 100;
  let waiting = 0;
  let timer: NodeJS.Timeout | undefined;
  const runs: Promise<unknown>[] = [];
  let invocations = 0;
  let closed = false;
  const delayed = new Set<NodeJS.Timeout>();
  const deliver = () => {
    if (closed) return;
    clearTimeout(timer);
    timer = undefined;
    waiting = 0;
    invocations++;
    runs.push(b.run(triggers));
  };
  const enqueue = () => {
    waiting++;
    if (waiting >= maxBatch) deliver();
    else timer ??= setTimeout(deliver, batchTimeoutMs);
  };
  const queue = {
    async sendBatch(msgs: Array<{ body: WakeMessage; delaySeconds?: number }>) {
      for (const m of msgs) {
        if (m.delaySeconds) {
          const t = setTimeout(() => {
            delayed.delete(t);
            enqueue();
          }, m.delaySeconds * 1000);
          delayed.add(t);
        } else enqueue();
      }
    },
  } as unknown as Env["WAKE_QUEUE"];
  const wenv: Env = { ...env, WAKE_QUEUE: queue };

  const rate = Number(args["latency-rate"]);
  const seconds = Number(args["latency-seconds"]);
  const total = rate * seconds;
  const perRequest = 10;
  const start = Date.now();
  for (let sent = 0; sent < total; sent += perRequest) {
    const due = start + (sent / rate) * 1000;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const evs = Array.from({ length: perRequest }, (_, k) => event(sent + k));
    const receipt = await store.publish(evs, wakeOptions(cfg));
    afterPublish(wenv, cfg, receipt, (p) => void p);
  }
  // wait for every event to complete (the trailing wake-up picks up the tail)
  for (;;) {
    const r = await db.db.execute<{ n: number }>("select count(*)::int as n from events where status = 'completed'");
    if (Number(r.rows[0]?.n) >= total) break;
    if (Date.now() - start > (seconds + 30) * 1000) throw new Error("latency run: events not completed within 30 s");
    await new Promise((r) => setTimeout(r, 100));
  }
  // Stop the simulated queue (pending trailing wake-ups) before closing the pool.
  closed = true;
  clearTimeout(timer);
  for (const t of delayed) clearTimeout(t);
  await Promise.all(runs);
  const r = await db.db.execute<{ ms: number }>(
    `select extract(epoch from (processed_at - "timestamp")) * 1000 as ms from events order by 1`,
  );
  const ms = r.rows.map((x) => Number(x.ms));
  await db.close();
  return (
    `latency publish->completed (${fmt(rate)} events/s for ${seconds} s, queue nudge only, ` +
    `max_batch_timeout ${batchTimeoutMs / 1000} s, ${invocations} consumer invocations): ` +
    `p50 ${fmt(pct(ms, 50))} ms, p99 ${fmt(pct(ms, 99))} ms, max ${fmt(ms[ms.length - 1] ?? NaN)} ms`
  );
}

/**
 * --adaptive: CONSUMER_BATCH_ADAPTIVE (most: the largest of --sizes) against the fixed
 * sizes, run alternately --rounds times in one invocation (the machine is shared: compare
 * the medians' ratios), then publish-to-completed latency, adaptive against fixed 500,
 * alternately too. Redis backend, --consumers consumers.
 */
async function adaptiveBench(): Promise<void> {
  const infra = await benchInfra();
  const { dbUrl, prefixBase } = infra;
  const rounds = Number(args.rounds);
  const most = Math.max(...SIZES);
  const envFor = benchEnv(infra);
  const noop = new TriggerRegistry().register({ name: "noop", filter: f.type("bench.*"), handler: () => {} });
  const variants = [
    ...SIZES.map((size) => ({ name: `fixed ${size}`, env: fixedSize(size) })),
    { name: `adaptive ${most}`, env: { CONSUMER_BATCH_SIZE: String(most), CONSUMER_BATCH_ADAPTIVE: "true" } },
  ];
  const rates = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  try {
    for (let round = 0; round < rounds; round++) {
      // Rotated each round, so that no variant always runs first (or after the same one).
      const order = variants.map((_, i) => variants[(i + round) % variants.length]!);
      for (const v of order) {
        const b = redisBench(envFor(`${prefixBase}:a${round}:${v.name.replace(/\s/g, "")}`, v.env), dbUrl);
        const { db } = b;
        await b.prefill();
        const t0 = performance.now();
        await b.consumers(noop);
        const rate = N / ((performance.now() - t0) / 1000);
        const r = await db.db.execute<{ n: number }>(
          "select count(*)::int as n from events where status = 'completed'",
        );
        if (Number(r.rows[0]?.n) !== N) throw new Error(`${v.name}: ${r.rows[0]?.n} of ${N} completed`);
        rates.get(v.name)!.push(rate);
        console.log(`round ${round + 1} ${v.name.padEnd(14)} ${fmt(rate).padStart(7)} events/s`);
        await db.close();
      }
    }
    const fixed = variants.slice(0, -1).map((v) => ({ name: v.name, rate: median(rates.get(v.name)!) }));
    const best = fixed.reduce((a, b) => (b.rate > a.rate ? b : a));
    const adaptive = median(rates.get(variants[variants.length - 1]!.name)!);
    const lines = [
      ...fixed.map((x) => `${x.name.padEnd(14)} median ${fmt(x.rate).padStart(7)} events/s`),
      `adaptive ${most} median ${fmt(adaptive).padStart(7)} events/s`,
      `throughput ratio (adaptive / best fixed, ${best.name}): ${fmt(adaptive / best.rate, 2)}x`,
    ];
    console.log(lines.slice(-1)[0]);
    const p99 = (line: string) => Number(/p99 ([\d,]+) ms/.exec(line)?.[1]?.replace(/,/g, "") ?? NaN);
    const lat = { fixed: [] as number[], adaptive: [] as number[] };
    for (let round = 0; round < rounds; round++) {
      for (const kind of round % 2 ? (["adaptive", "fixed"] as const) : (["fixed", "adaptive"] as const)) {
        const extra: Record<string, string> =
          kind === "fixed" ? {} : { CONSUMER_BATCH_SIZE: String(most), CONSUMER_BATCH_ADAPTIVE: "true" };
        const line = await latency(envFor(`${prefixBase}:al${round}${kind}`, {}), dbUrl, noop, extra);
        lat[kind].push(p99(line));
        console.log(`round ${round + 1} ${kind === "fixed" ? "fixed 500" : `adaptive ${most}`}: ${line}`);
      }
    }
    lines.push(
      `latency p99 median: fixed 500 ${fmt(median(lat.fixed))} ms, adaptive ${most} ${fmt(median(lat.adaptive))} ms ` +
        `(adaptive / fixed ${fmt(median(lat.adaptive) / median(lat.fixed), 2)}x)`,
    );
    console.log(`\n${N} events per drain run, ${CONSUMERS} consumer(s), ${rounds} rounds, ${SOURCES} sources`);
    console.log(lines.join("\n"));
  } finally {
    await infra.close();
  }
}

runMain(main);
