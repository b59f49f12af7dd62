/**
 * One system in a process of its own, for bench/protocol.ts (which forks it): a warm-up run
 * of `warmup` items (discarded), then the measured run of `n`. Each run: fill the queue and
 * connect every client (outside the clock), then the clock from clients ready to every
 * outcome durable, with the CPU time of each component over that window (bench/cpu.ts
 * CpuMeter: this process, the stand-ins, the Postgres backends of the bench's database,
 * the bench's redis-server) and the Redis commands that redis-server executed. Answers the
 * measured run's figures to the parent over IPC and exits.
 */
import IORedis from "ioredis";
import pg from "pg";
import { CpuMeter } from "./cpu";
import { makeSystem, type SharedInfra, type SystemConfig } from "./protocol-systems";

export interface RunRequest {
  infra: SharedInfra;
  config: SystemConfig;
  n: number;
  warmup: number;
}

export interface RunResult {
  rate: number;
  secs: number;
  /** CPU ms per component over the measured window (null off Linux). */
  cpu: Record<string, number> | null;
  /** Commands the bench's redis-server executed in the window (scripts' inner commands included). */
  redisCommands: number;
}

async function redisCommands(r: IORedis): Promise<number> {
  const info = await r.info("commandstats");
  let n = 0;
  for (const m of info.matchAll(/^cmdstat_[^:]+:calls=(\d+)/gm)) n += Number(m[1]);
  return n;
}

async function main(): Promise<RunResult | undefined> {
  const req = JSON.parse(process.argv[2] ?? "") as RunRequest;
  const { infra } = req;
  const system = makeSystem(infra, req.config);
  const sampler = new pg.Client({ connectionString: infra.dbUrl });
  await sampler.connect();
  const backends = async () =>
    (
      await sampler.query<{ pid: number }>(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        [infra.dbName],
      )
    ).rows.map((r) => r.pid);
  const redis = new IORedis({ host: "127.0.0.1", port: infra.redisPort });
  let result: RunResult | undefined;
  try {
    for (const [n, measured] of [
      [req.warmup, false],
      [req.n, true],
    ] as const) {
      if (n === 0) continue;
      await system.fill(n);
      await system.ready();
      const meter = new CpuMeter(
        { consumer: [process.pid], "stand-ins": [infra.standInsPid], redis: [infra.redisPid] },
        { part: "postgres", poll: backends },
      );
      const c0 = await redisCommands(redis);
      await meter.start();
      const t0 = performance.now();
      await system.drain(n);
      const secs = (performance.now() - t0) / 1000;
      const cpu = await meter.stop();
      // Less the two INFO calls of this window.
      const commands = (await redisCommands(redis)) - c0 - 1;
      await system.verify(n);
      await system.cleanup();
      if (measured) result = { rate: n / secs, secs, cpu, redisCommands: commands };
    }
  } finally {
    await system.close();
    redis.disconnect();
    await sampler.end();
  }
  return result;
}

main().then(
  (result) => (process.send ? process.send(result ?? null, () => process.exit(0)) : process.exit(0)),
  (e) => {
    console.error("protocol run failed:", e);
    process.exit(1);
  },
);
