/**
 * Throughput against the baselines at their best, under a protocol a skeptic can check.
 *
 *   npx tsx bench/protocol.ts                     # 100,000 items per run, 7 rounds
 *   npx tsx bench/protocol.ts --preloaded 1000000 # history already holds a million rows
 *   npx tsx bench/protocol.ts --aof               # the bench's Redis with AOF, appendfsync everysec
 *   npx tsx bench/protocol.ts --quick             # smoke run: small N, 3 rounds, short sweeps
 *
 * Systems (bench/protocol-systems.ts): our consumer on each backend at production limits,
 * pg-boss driven by fetch/complete loops (no polling sleep), BullMQ with a no-op processor
 * (completed jobs kept, and removed), and BullMQ doing our work (the same history upsert
 * into the same `events` table before a job completes).
 *
 * 1. Setup: a redis-server of the bench's own (bench/redis-server.ts: its pid is measured,
 *    AOF is set on it alone), the stand-ins, a throwaway migrated database, pg-boss's schema
 *    in it, and with --preloaded the completed rows in `events` and in pg-boss's job table.
 * 2. Sweeps: pg-boss over batch size and loops, BullMQ over concurrency (each way of
 *    removeOnComplete, and with the history upsert): a size or a count grows until the rate
 *    stops rising (two points in a row within 3% of the best), and the best is what the
 *    rounds use. Each point is one run in a fresh process; the sweeps are printed.
 * 3. Rounds: every system once per round, in an order rotated each round, each in a fresh
 *    process (bench/protocol-run.ts: a discarded warm-up, then the measured run, the clock
 *    from clients ready to outcomes durable, nothing closed inside it).
 * 4. Summary: per system the median rate, the CPU of each component per 1,000 items, and the
 *    Redis commands executed per item; per pair the ratio of medians with a paired bootstrap
 *    95% interval (bench/stats.ts), and a lead claimed only where the interval excludes 1.0.
 */
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import PgBoss from "pg-boss";
import { childPid } from "./cpu";
import { preloadEvents, preloadPgBoss } from "./history-state";
import { benchInfra, runMain } from "./infra";
import type { RunRequest, RunResult } from "./protocol-run";
import { describe, type SharedInfra, type SystemConfig, type SystemName } from "./protocol-systems";
import { startRedisServer } from "./redis-server";
import { bootstrapRatio, median, verdict } from "./stats";

const { values: args } = parseArgs({
  options: {
    events: { type: "string" },
    rounds: { type: "string" },
    warmup: { type: "string" },
    preloaded: { type: "string", default: "0" },
    aof: { type: "boolean", default: false },
    quick: { type: "boolean", default: false },
    consumers: { type: "string", default: "1" },
    systems: { type: "string", default: "ours-redis,ours-postgres,pgboss,bullmq,bullmq-history" },
    "ours-env": { type: "string", default: "" },
    "skip-sweep": { type: "boolean", default: false },
  },
});
const QUICK = args.quick;
const N = Number(args.events ?? (QUICK ? 2000 : 100_000));
const ROUNDS = Number(args.rounds ?? (QUICK ? 3 : 7));
const WARMUP = Number(args.warmup ?? Math.max(200, Math.round(N / 10)));
const PRELOADED = Number(args.preloaded);
const SYSTEMS = new Set(args.systems!.split(",") as SystemName[]);
const OURS_ENV = Object.fromEntries(
  args["ours-env"]!.split(",")
    .filter(Boolean)
    .map((kv) => kv.split("=") as [string, string]),
);
const RUNNER = fileURLToPath(new URL("./protocol-run.ts", import.meta.url));
const fmt = (n: number, d = 0) => n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });

/** One run of `config` in a fresh process. */
function runOnce(infra: SharedInfra, config: SystemConfig, n = N): Promise<RunResult> {
  const req: RunRequest = { infra, config, n, warmup: WARMUP };
  return new Promise((resolve, reject) => {
    const child = fork(RUNNER, [JSON.stringify(req)], { execArgv: ["--import", "tsx"], stdio: "inherit" });
    let result: RunResult | undefined;
    child.on("message", (m) => (result = m as RunResult));
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0 && result ? resolve(result) : reject(new Error(`${describe(config)}: runner exited ${code}`)),
    );
  });
}

/**
 * Grows one setting along `values` while the rate rises: stops after two points in a row
 * that do not beat the best so far by 3%. Answers the best point and prints every one.
 */
async function sweep(
  label: string,
  values: number[],
  at: (v: number) => SystemConfig,
  run: (c: SystemConfig) => Promise<number>,
): Promise<{ config: SystemConfig; rate: number }> {
  let best: { config: SystemConfig; rate: number } | undefined;
  let flat = 0;
  for (const v of values) {
    const config = at(v);
    const rate = await run(config);
    console.log(`  sweep ${label}: ${describe(config)}: ${fmt(rate)}/s`);
    if (!best || rate > best.rate * 1.03) flat = 0;
    else if (++flat >= 2) break;
    if (!best || rate > best.rate) best = { config, rate };
  }
  return best!;
}

async function main(): Promise<void> {
  const redis = await startRedisServer({ aof: args.aof });
  const infra0 = await benchInfra({ redisPort: redis.port });
  const pgbossSchema = "pgboss_protocol";
  const pgbossQueue = "protocol";
  try {
    const boss = new PgBoss({
      connectionString: infra0.dbUrl,
      schema: pgbossSchema,
      supervise: false,
      schedule: false,
    });
    await boss.start();
    await boss.createQueue(pgbossQueue);
    await boss.stop({ graceful: false, wait: true });
    if (PRELOADED > 0) {
      console.log(`preloading ${fmt(PRELOADED)} completed rows into events and into pg-boss's job table...`);
      await preloadEvents(infra0.dbUrl, PRELOADED);
      await preloadPgBoss(infra0.dbUrl, pgbossSchema, pgbossQueue, PRELOADED);
    }
    const infra: SharedInfra = {
      dbUrl: infra0.dbUrl,
      dbName: infra0.dbName,
      redisPort: redis.port,
      redisPid: redis.pid,
      token: infra0.token,
      gatewayUrl: infra0.standIns.gatewayUrl,
      proxyAddress: infra0.standIns.proxyAddress,
      standInsPid: childPid(process.pid, "standins-process"),
      pgbossSchema,
      pgbossQueue,
    };
    console.log(
      `${fmt(N)} items per run, warm-up ${fmt(WARMUP)}, ${ROUNDS} rounds, history preloaded with ${fmt(PRELOADED)} rows, ` +
        `Redis ${redis.aof ? "AOF appendfsync everysec" : "without persistence"} (own redis-server, port ${redis.port})`,
    );

    // --- baselines at their best -----------------------------------------------------------
    const rateOf = async (c: SystemConfig) => (await runOnce(infra, c)).rate;
    const configs: Array<{ key: string; config: SystemConfig }> = [];
    const consumers = Number(args.consumers);
    for (const s of ["ours-redis", "ours-postgres"] as const)
      if (SYSTEMS.has(s)) configs.push({ key: s, config: { system: s, consumers, oursEnv: OURS_ENV } });
    const skip = args["skip-sweep"];
    if (SYSTEMS.has("pgboss")) {
      // Without a sweep: the best point of the last full sweep on this machine (docs/benchmarks.md).
      let best = { config: { system: "pgboss", loops: 2, batchSize: 5000 } as SystemConfig, rate: 0 };
      if (!skip) {
        // Batch sizes grow by the same rule as the loops within each: two in a row flat, stop.
        let flat = 0;
        for (const batchSize of QUICK ? [1000] : [100, 500, 1000, 2000, 5000, 10_000, 20_000]) {
          const b = await sweep(
            `pg-boss batch ${batchSize}`,
            QUICK ? [1, 2] : [1, 2, 4, 8, 16],
            (loops) => ({ system: "pgboss", loops, batchSize }),
            rateOf,
          );
          if (b.rate > best.rate * 1.03) flat = 0;
          else if (++flat >= 2) break;
          if (b.rate > best.rate) best = b;
        }
      }
      configs.push({ key: "pgboss", config: best.config });
    }
    const concurrencies = QUICK ? [50, 200] : [10, 50, 100, 200, 500, 1000, 2000];
    if (SYSTEMS.has("bullmq")) {
      for (const removeOnComplete of [false, true]) {
        const at = (concurrency: number): SystemConfig => ({ system: "bullmq", concurrency, removeOnComplete });
        const best = skip ? at(50) : (await sweep("BullMQ", concurrencies, at, rateOf)).config;
        configs.push({ key: `bullmq${removeOnComplete ? "-removed" : "-kept"}`, config: best });
      }
    }
    if (SYSTEMS.has("bullmq-history")) {
      const at = (concurrency: number): SystemConfig => ({
        system: "bullmq-history",
        concurrency,
        removeOnComplete: true,
      });
      const best = skip
        ? at(500)
        : (await sweep("BullMQ + history", QUICK ? [100] : [50, 100, 250, 500, 1000, 2000], at, rateOf)).config;
      configs.push({ key: "bullmq-history", config: best });
    }

    // --- rounds ------------------------------------------------------------------------------
    const results = new Map<string, RunResult[]>(configs.map((c) => [c.key, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const order = configs.map((_, i) => configs[(i + round) % configs.length]!);
      for (const c of order) {
        const r = await runOnce(infra, c.config);
        results.get(c.key)!.push(r);
        console.log(`round ${round + 1} ${describe(c.config)}: ${fmt(r.rate)}/s`);
      }
    }

    // --- summary -------------------------------------------------------------------------------
    console.log(`\n${fmt(N)} items per run, ${ROUNDS} rounds, preloaded ${fmt(PRELOADED)}, Redis AOF ${redis.aof}`);
    for (const c of configs) {
      const rs = results.get(c.key)!;
      const per = (ms: number) => fmt((ms * 1000) / N);
      const parts = rs[0]?.cpu ? Object.keys(rs[0].cpu) : [];
      const cpu = parts.map((p) => `${p} ${per(median(rs.map((r) => r.cpu?.[p] ?? 0)))}`);
      const all = median(rs.map((r) => Object.values(r.cpu ?? {}).reduce((a, b) => a + b, 0)));
      console.log(
        `${describe(c.config)}\n  median ${fmt(median(rs.map((r) => r.rate)))}/s ` +
          `(runs: ${rs.map((r) => fmt(r.rate)).join(", ")})\n` +
          (parts.length ? `  CPU ms per 1,000 (medians): ${cpu.join(", ")}; all ${per(all)}\n` : "") +
          `  Redis commands executed per item: ${fmt(median(rs.map((r) => r.redisCommands)) / N, 2)}`,
      );
    }
    const pairs: Array<[string, string, string]> = [
      ["ours-redis", "bullmq-kept", "Redis backend / BullMQ, completed jobs kept"],
      ["ours-redis", "bullmq-removed", "Redis backend / BullMQ, removeOnComplete"],
      ["ours-redis", "bullmq-history", "Redis backend / BullMQ doing the same history upsert (equal work)"],
      ["ours-postgres", "pgboss", "Postgres backend / pg-boss fetch-complete loops"],
    ];
    console.log("");
    for (const [a, b, label] of pairs) {
      const ra = results.get(a);
      const rb = results.get(b);
      if (!ra || !rb) continue;
      const x = bootstrapRatio(
        ra.map((r) => r.rate),
        rb.map((r) => r.rate),
      );
      console.log(
        `${label}: ratio of medians ${fmt(x.ratio, 2)}x, 95% interval [${fmt(x.low, 2)}, ${fmt(x.high, 2)}]: ${verdict(x, ROUNDS)}`,
      );
    }
  } finally {
    await infra0.close();
    await redis.stop();
  }
}

runMain(main);
