/**
 * The systems bench/protocol.ts compares, each as the runner (bench/protocol-run.ts) drives
 * it: fill() puts `n` items in its queue (outside the clock), ready() makes every client
 * connect, drain() runs from there until every outcome is durable (our history committed and
 * the stream acknowledged; a pg-boss completion committed; a BullMQ job moved to completed
 * by its script), cleanup() removes what the run added. No close() falls inside drain().
 *
 * - ours-redis: the real consumer, EVENT_BACKEND=redis, production limits (time budget, batches
 *   per invocation, adaptive claims) unless --ours-env says otherwise; invocations follow
 *   one another until the stream is drained, as queue deliveries would.
 * - ours-postgres: the same with EVENT_BACKEND=postgres (LOCK_BACKEND=postgres).
 * - pgboss: `loops` loops of fetch({ batchSize }) then complete(ids), no polling sleep.
 * - bullmq: a no-op processor at `concurrency`, removeOnComplete as given.
 * - bullmq-history: BullMQ doing our work: the processor micro-batches the jobs in flight
 *   into our history upsert (src/backends/redis/outcome-writes.ts recordOutcomes, the statement our
 *   Redis backend settles with) into the same `events` table, and a job completes only after
 *   that statement committed. Postgres over plain TCP (node-postgres), as BullMQ would use it.
 */
import { randomBytes } from "node:crypto";
import { neonConfig } from "@neondatabase/serverless";
import { Queue, Worker } from "bullmq";
import { drizzle } from "drizzle-orm/node-postgres";
import IORedis from "ioredis";
import pg from "pg";
import PgBoss from "pg-boss";
import ws from "ws";
import { PgFilterState } from "../src/backends/postgres/filter-state";
import { PgScopeLocks } from "../src/backends/postgres/locks";
import { PostgresEventStore } from "../src/backends/postgres/store";
import { recordOutcomes } from "../src/backends/redis/outcome-writes";
import { type Env, loadConfig } from "../src/config";
import { runConsumer } from "../src/consume/consumer";
import { type Db, openDb } from "../src/db/client";
import * as schema from "../src/db/schema";
import type { EventEnvelope } from "../src/events/envelope";
import { filters as f } from "../src/triggers";
import { TriggerRegistry } from "../src/triggers/registry";
import { analyze, RUN_TYPE, resetEvents, resetPgBoss } from "./history-state";
import { liveEvent } from "./infra";
import { redisDrain } from "./redis-drain";

neonConfig.webSocketConstructor = ws;

export type SystemName = "ours-redis" | "ours-postgres" | "pgboss" | "bullmq" | "bullmq-history";

/** What the orchestrator started, handed to every runner. */
export interface SharedInfra {
  dbUrl: string;
  dbName: string;
  redisPort: number;
  redisPid: number;
  token: string;
  gatewayUrl: string;
  proxyAddress: string;
  standInsPid?: number;
  pgbossSchema: string;
  pgbossQueue: string;
}

/** One system and its settings (sweep parameters, env overrides). */
export interface SystemConfig {
  system: SystemName;
  consumers?: number;
  oursEnv?: Record<string, string>;
  loops?: number;
  batchSize?: number;
  concurrency?: number;
  removeOnComplete?: boolean;
}

export interface System {
  fill(n: number): Promise<void>;
  ready(): Promise<void>;
  drain(n: number): Promise<void>;
  /** Throws unless `n` outcomes are recorded. */
  verify(n: number): Promise<void>;
  cleanup(): Promise<void>;
  close(): Promise<void>;
}

export function describe(c: SystemConfig): string {
  switch (c.system) {
    case "ours-redis":
    case "ours-postgres": {
      const extra = Object.entries(c.oursEnv ?? {}).map(([k, v]) => `${k}=${v}`);
      return `${c.system} (${c.consumers ?? 1} consumer${extra.length ? `, ${extra.join(" ")}` : ", production limits"})`;
    }
    case "pgboss":
      return `pg-boss (${c.loops} fetch/complete loops, batchSize ${c.batchSize})`;
    case "bullmq":
      return `BullMQ (concurrency ${c.concurrency}, removeOnComplete ${c.removeOnComplete})`;
    case "bullmq-history":
      return `BullMQ + history upsert (concurrency ${c.concurrency}, removeOnComplete ${c.removeOnComplete})`;
  }
}

const noop = () => new TriggerRegistry().register({ name: "noop", filter: f.type("bench.*"), handler: () => {} });
const events = (n: number) => Array.from({ length: n }, (_, i) => liveEvent(RUN_TYPE, i));

/** Throws unless history holds `n` completed events of this run (naming what it holds instead). */
async function verifyEvents(dbUrl: string, n: number, what: string): Promise<void> {
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  try {
    const r = await c.query<{ status: string; n: number }>(
      "SELECT status::text, count(*)::int AS n FROM events WHERE type = $1 GROUP BY 1",
      [RUN_TYPE],
    );
    const by = Object.fromEntries(r.rows.map((x) => [x.status, Number(x.n)]));
    if (by.completed !== n || r.rows.length !== 1)
      throw new Error(`${what}: history holds ${JSON.stringify(by)} of ${n} events, not all completed`);
  } finally {
    await c.end();
  }
}

function oursEnv(infra: SharedInfra, c: SystemConfig, prefix: string): Env {
  return {
    UPSTASH_REDIS_REST_URL: infra.gatewayUrl,
    UPSTASH_REDIS_REST_TOKEN: infra.token,
    DATABASE_URL: infra.dbUrl,
    NEON_WS_PROXY: infra.proxyAddress,
    REDIS_PREFIX: prefix,
    LOG_LEVEL: "warn",
    ...c.oursEnv,
  };
}

/**
 * Invocations of `run` (up to `consumers` at a time) until `n` events completed: each stops at
 * its production limits and the next one follows at once.
 */
async function invokeUntil(n: number, consumers: number, run: () => Promise<{ completed: number; claimed: number }>) {
  let completed = 0;
  await Promise.all(
    Array.from({ length: consumers }, async () => {
      while (completed < n) {
        const r = await run();
        completed += r.completed;
        if (r.claimed === 0 && completed < n) await new Promise((res) => setTimeout(res, 5));
      }
    }),
  );
}

function oursRedis(infra: SharedInfra, c: SystemConfig): System {
  // cleanup() empties the whole Redis: only ever the bench's own instance.
  if (infra.redisPort === 6379) throw new Error("ours-redis: the protocol runs on its own redis-server, not 6379");
  let b: ReturnType<typeof redisDrain> | undefined;
  const triggers = noop();
  return {
    async fill(n) {
      await resetEvents(infra.dbUrl);
      b = redisDrain(oursEnv(infra, c, `protocol:${randomBytes(4).toString("hex")}`), infra.dbUrl);
      const evs = events(n);
      for (let i = 0; i < n; i += 1000) await b.store.publish(evs.slice(i, i + 1000));
    },
    async ready() {
      await b!.db.pool.query("SELECT 1");
    },
    async drain(n) {
      await invokeUntil(n, c.consumers ?? 1, () => b!.run(triggers));
    },
    verify: (n) => verifyEvents(infra.dbUrl, n, "ours-redis"),
    async cleanup() {
      const r = new IORedis({ host: "127.0.0.1", port: infra.redisPort });
      await r.flushall();
      r.disconnect();
      await b?.db.close();
      b = undefined;
    },
    async close() {},
  };
}

function oursPostgres(infra: SharedInfra, c: SystemConfig): System {
  const env: Env = { ...oursEnv(infra, c, "protocol-pg"), EVENT_BACKEND: "postgres", LOCK_BACKEND: "postgres" };
  delete env.UPSTASH_REDIS_REST_URL;
  delete env.UPSTASH_REDIS_REST_TOKEN;
  const cfg = loadConfig(env);
  const consumers = c.consumers ?? 1;
  const triggers = noop();
  let db: ReturnType<typeof openDb> | undefined;
  let lockDbs: Array<ReturnType<typeof openDb>> = [];
  let locks: PgScopeLocks[] = [];
  return {
    async fill(n) {
      await resetEvents(infra.dbUrl);
      const pub = openDb(cfg);
      const store = new PostgresEventStore(cfg, pub.db);
      const evs = events(n);
      for (let i = 0; i < n; i += 1000) await store.publish(evs.slice(i, i + 1000));
      await pub.close();
      await analyze(infra.dbUrl, "events");
      db = openDb(cfg);
      lockDbs = Array.from({ length: consumers }, () => openDb(cfg));
    },
    async ready() {
      await db!.pool.query("SELECT 1");
      for (const l of lockDbs) await l.pool.query("SELECT 1");
      locks = lockDbs.map((l) => new PgScopeLocks(l.pool));
    },
    async drain(n) {
      const store = new PostgresEventStore(cfg, db!.db);
      let next = 0;
      await invokeUntil(n, consumers, () => {
        const lk = locks[next++ % locks.length]!;
        return runConsumer({ store, triggers, config: cfg, env, locks: lk, filterState: new PgFilterState(db!.db) });
      });
    },
    verify: (n) => verifyEvents(infra.dbUrl, n, "ours-postgres"),
    async cleanup() {
      for (const l of locks) await l.close();
      locks = [];
      for (const l of lockDbs) await l.close();
      await db?.close();
      db = undefined;
      lockDbs = [];
    },
    async close() {},
  };
}

function pgBoss(infra: SharedInfra, c: SystemConfig): System {
  const loops = c.loops ?? 4;
  const batchSize = c.batchSize ?? 1000;
  const queue = infra.pgbossQueue;
  const boss = new PgBoss({
    connectionString: infra.dbUrl,
    schema: infra.pgbossSchema,
    max: loops + 2,
    supervise: false,
    schedule: false,
  });
  boss.on("error", (e) => console.error("pg-boss:", e));
  let started = false;
  return {
    async fill(n) {
      if (!started) await boss.start();
      started = true;
      await resetPgBoss(infra.dbUrl, infra.pgbossSchema, queue);
      const evs = events(n);
      for (let i = 0; i < n; i += 1000)
        await boss.insert(evs.slice(i, i + 1000).map((data) => ({ name: queue, data })));
      // ANALYZEd after the insert, as our table is after publishing.
      await analyze(infra.dbUrl, `${infra.pgbossSchema}.job`);
    },
    async ready() {
      // One connection per loop, open before the clock.
      const db = boss.getDb() as { executeSql(text: string): Promise<unknown> };
      await Promise.all(Array.from({ length: loops }, () => db.executeSql("SELECT pg_sleep(0.05)")));
    },
    async drain() {
      await Promise.all(
        Array.from({ length: loops }, async () => {
          for (;;) {
            const jobs = await boss.fetch(queue, { batchSize });
            if (jobs.length === 0) return;
            await boss.complete(
              queue,
              jobs.map((j) => j.id),
            );
          }
        }),
      );
    },
    async verify(n) {
      const c2 = new pg.Client({ connectionString: infra.dbUrl });
      await c2.connect();
      const r = await c2.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${infra.pgbossSchema}.job
          WHERE name = $1 AND state = 'completed' AND NOT coalesce(data ? 'pre', false)`,
        [queue],
      );
      await c2.end();
      if (Number(r.rows[0]?.n) !== n) throw new Error(`pg-boss: ${r.rows[0]?.n} of ${n} completed`);
    },
    async cleanup() {},
    async close() {
      if (started) await boss.stop({ graceful: false, wait: true });
    },
  };
}

/**
 * Collects the jobs in flight into one history upsert: flushed when `most` are waiting or
 * `lingerMs` after the first; each job's promise settles when its statement has committed.
 */
function historyBatcher(db: Db, most: number, lingerMs = 2) {
  let waiting: Array<{ e: EventEnvelope; attempts: number; done: (err?: unknown) => void }> = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    const batch = waiting;
    waiting = [];
    if (batch.length === 0) return;
    recordOutcomes(
      db,
      "bullmq",
      batch.map((x) => ({ event: x.e, attempts: x.attempts, status: "completed" as const })),
      new Date(),
      { ids: false },
    ).then(
      () => {
        for (const x of batch) x.done();
      },
      (err) => {
        for (const x of batch) x.done(err);
      },
    );
  };
  return (e: EventEnvelope, attempts: number) =>
    new Promise<void>((resolve, reject) => {
      waiting.push({ e, attempts, done: (err) => (err ? reject(err) : resolve()) });
      if (waiting.length >= most) flush();
      else timer ??= setTimeout(flush, lingerMs);
    });
}

function bullmq(infra: SharedInfra, c: SystemConfig, history: boolean): System {
  const connection = () => new IORedis({ host: "127.0.0.1", port: infra.redisPort, maxRetriesPerRequest: null });
  const concurrency = c.concurrency ?? 100;
  const pool = history ? new pg.Pool({ connectionString: infra.dbUrl, max: 8 }) : undefined;
  const upsert = pool ? historyBatcher(drizzle(pool, { schema }) as unknown as Db, concurrency) : undefined;
  const qconn = connection();
  let queue: Queue | undefined;
  let worker: Worker | undefined;
  let done = 0;
  let target = 0;
  let finish: () => void = () => {};
  return {
    async fill(n) {
      if (history) await resetEvents(infra.dbUrl);
      const name = `protocol-${randomBytes(4).toString("hex")}`;
      queue = new Queue(name, { connection: qconn });
      const evs = events(n);
      for (let i = 0; i < n; i += 1000)
        await queue.addBulk(
          evs.slice(i, i + 1000).map((data) => ({
            name: "noop",
            data,
            opts: { removeOnComplete: c.removeOnComplete ?? false },
          })),
        );
      const processor = upsert
        ? async (job: { data: EventEnvelope; attemptsMade: number }) => upsert(job.data, job.attemptsMade + 1)
        : async () => {};
      worker = new Worker(name, processor, { connection: connection(), concurrency, autorun: false });
      worker.on("error", (e) => console.error("bullmq:", e));
      worker.on("completed", () => {
        if (++done === target) finish();
      });
    },
    async ready() {
      await worker!.waitUntilReady();
      if (pool) await Promise.all(Array.from({ length: 8 }, () => pool.query("SELECT pg_sleep(0.05)")));
    },
    async drain(n) {
      done = 0;
      target = n;
      const finished = new Promise<void>((r) => (finish = r));
      void worker!.run();
      await finished;
    },
    async verify(n) {
      if (done !== n) throw new Error(`BullMQ: ${done} of ${n} completed`);
      if (history) await verifyEvents(infra.dbUrl, n, "BullMQ + history");
    },
    async cleanup() {
      await worker?.close();
      await queue?.obliterate({ force: true });
      await queue?.close();
      worker = undefined;
      queue = undefined;
    },
    async close() {
      qconn.disconnect();
      await pool?.end();
    },
  };
}

export function makeSystem(infra: SharedInfra, c: SystemConfig): System {
  switch (c.system) {
    case "ours-redis":
      return oursRedis(infra, c);
    case "ours-postgres":
      return oursPostgres(infra, c);
    case "pgboss":
      return pgBoss(infra, c);
    case "bullmq":
      return bullmq(infra, c, false);
    case "bullmq-history":
      return bullmq(infra, c, true);
  }
}
