/**
 * What a drain benchmark runs against: the stand-ins for Upstash and Neon in a process of
 * their own (as Upstash and Neon are remote, the consumer measured must not share its event
 * loop with them), a throwaway migrated database, a unique Redis key prefix, and an ioredis
 * client for server-side figures. close() removes the keys and the database.
 */
import { randomBytes } from "node:crypto";
import IORedis from "ioredis";
import pg from "pg";
import { migrateDatabase } from "../local/migrate";
import { type StandIns, spawnStandIns } from "../local/standins-process";
import type { EventEnvelope } from "../src/events/envelope";

export const PG = {
  host: process.env.PGHOST_TEST ?? "127.0.0.1",
  port: Number(process.env.PGPORT_TEST ?? 5432),
  user: process.env.PGUSER_TEST ?? "postgres",
};

export interface BenchInfra {
  /** The gateway's bearer token (UPSTASH_REDIS_REST_TOKEN). */
  token: string;
  standIns: StandIns;
  dbUrl: string;
  dbName: string;
  ioredis: IORedis;
  /** Every Redis key the benchmark makes starts with it. */
  prefixBase: string;
  close(): Promise<void>;
}

/** `redisPort`: a Redis of the bench's own (bench/redis-server.ts) instead of the shared one on 6379. */
export async function benchInfra(o: { redisPort?: number } = {}): Promise<BenchInfra> {
  const token = randomBytes(16).toString("hex");
  const redisPort = o.redisPort ?? 6379;
  const standIns = await spawnStandIns({ token, redisPort, pgHost: PG.host, pgPort: PG.port });
  const dbName = `reflex_bench_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ ...PG, database: "postgres" });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const dbUrl = `postgresql://${PG.user}@${PG.host}:${PG.port}/${dbName}`;
  await migrateDatabase(dbUrl, standIns.proxyAddress);
  const ioredis = new IORedis({ host: "127.0.0.1", port: redisPort, maxRetriesPerRequest: null });
  const prefixBase = `bench:${randomBytes(4).toString("hex")}`;
  return {
    token,
    standIns,
    dbUrl,
    dbName,
    ioredis,
    prefixBase,
    async close() {
      await ioredis.eval(
        "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do n = n + redis.call('DEL', k) end return n",
        0,
        `${prefixBase}:*`,
      );
      ioredis.disconnect();
      await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      await admin.end();
      await standIns.stop();
    },
  };
}

/** A live event of `type` (sequence `i`): 100 sources, a small payload of a realistic size. */
export function liveEvent(type: string, i: number): EventEnvelope {
  return {
    id: crypto.randomUUID(),
    type,
    source: `live-${i % 100}`,
    timestamp: new Date().toISOString(),
    meta: { trace_id: randomBytes(16).toString("hex") },
    seq: i,
    body: { text: "a small payload of a realistic size for a webhook-ish event", n: i },
  };
}

/** Runs a benchmark's main(): exit 0 when it ends, 1 with the error when it throws. */
export function runMain(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (e) => {
      console.error("bench failed:", e instanceof Error ? e.message : e);
      console.error(e);
      process.exit(1);
    },
  );
}
