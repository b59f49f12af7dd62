/**
 * The Postgres half of bench/drain.ts: the same workload drained with
 * EVENT_BACKEND=postgres (PostgresEventStore, LOCK_BACKEND=postgres advisory locks, the
 * Postgres filter state - no Redis involved), and pg-boss processing the same number of
 * no-op jobs as the Postgres-queue baseline.
 *
 * bench/drain.ts calls these after its Redis runs, so both backends print in one run. Our
 * store reaches Postgres through the Neon WebSocket stand-in (as the worker does); pg-boss
 * uses the `pg` driver over plain TCP (as it does in production): the comparison favours
 * pg-boss by that hop.
 */
import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import PgBoss from "pg-boss";
import { PgFilterState } from "../src/backends/postgres/filter-state";
import { PgScopeLocks } from "../src/backends/postgres/locks";
import { PostgresEventStore } from "../src/backends/postgres/store";
import { type Env, loadConfig } from "../src/config";
import { runConsumer } from "../src/consume/consumer";
import { openDb } from "../src/db/client";
import type { EventEnvelope } from "../src/events/envelope";
import type { TriggerRegistry } from "../src/triggers/registry";
import { cpuSample, formatCpu } from "./cpu";
import { snapshot, type WriteFigures, writeFigures } from "./pg-writes";

export interface PgDrainResult {
  rate: number;
  batches: number;
  /** Store statements (claim, claimDue, settle) per batch. */
  storeTripsPerBatch: number;
  /** Scope-lock round trips per batch (advisory locks on the invocation's lock connection). */
  lockTripsPerBatch: number;
  /** events-table writes per event: publishing, and the drain (claims and settles). */
  publishWrites: WriteFigures;
  drainWrites: WriteFigures;
  /** Where the machine's CPU went over the drain (bench/cpu.ts), or null off Linux. */
  cpu: string | null;
}

/** Drains N pre-published events with `consumers` concurrent consumer runs on Postgres alone. */
export async function drainPostgres(o: {
  env: Env;
  events: EventEnvelope[];
  consumers: number;
  triggers: TriggerRegistry;
  /** Indexes of events to drop for this run (on the empty table), rebuilt after it. */
  dropIndexes?: string[];
  /** fillfactor of events for this run (reset after). */
  fillfactor?: number;
}): Promise<PgDrainResult> {
  const env: Env = { ...o.env, EVENT_BACKEND: "postgres", LOCK_BACKEND: "postgres" };
  delete env.UPSTASH_REDIS_REST_URL;
  delete env.UPSTASH_REDIS_REST_TOKEN;
  const cfg = loadConfig(env);
  const db = openDb(cfg);
  let trips = 0;
  const q = db.pool.query.bind(db.pool);
  (db.pool as unknown as { query: unknown }).query = (...a: unknown[]) => {
    trips++;
    return (q as (...x: unknown[]) => unknown)(...a);
  };
  const lockDbs = Array.from({ length: o.consumers }, () => openDb(cfg));
  let closed = false;
  try {
    const store = new PostgresEventStore(cfg, db.db);
    await db.db.execute("TRUNCATE events");
    const rebuild: string[] = [];
    for (const name of o.dropIndexes ?? []) {
      const d = await db.db.execute<{ def: string }>(sql`SELECT pg_get_indexdef(${name}::regclass) AS def`);
      rebuild.push(String(d.rows[0]?.def));
      await db.db.execute(sql.raw(`DROP INDEX ${name}`));
    }
    if (o.fillfactor) await db.db.execute(sql.raw(`ALTER TABLE events SET (fillfactor = ${Number(o.fillfactor)})`));
    const s0 = await snapshot(cfg.DATABASE_URL);
    // Published through a pool of its own, ended before the snapshot (its counters flush).
    const pub = openDb(cfg);
    const publisher = new PostgresEventStore(cfg, pub.db);
    for (let i = 0; i < o.events.length; i += 1000) await publisher.publish(o.events.slice(i, i + 1000));
    await pub.close();
    const s1 = await snapshot(cfg.DATABASE_URL);
    await db.db.execute("VACUUM ANALYZE events");
    const s1v = await snapshot(cfg.DATABASE_URL);

    trips = 0;
    const cpu0 = cpuSample();
    const t0 = performance.now();
    const reports = await Promise.all(
      lockDbs.map(async (l) => {
        const locks = new PgScopeLocks(l.pool);
        try {
          return await runConsumer({
            store,
            triggers: o.triggers,
            config: cfg,
            env,
            locks,
            filterState: new PgFilterState(db.db),
          });
        } finally {
          await locks.close();
        }
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    const cpu = formatCpu("  events,", cpu0, cpuSample(), o.events.length);
    const storeTrips = trips; // before the check below adds its own
    const r = await db.db.execute<{ n: number }>("select count(*)::int as n from events where status = 'completed'");
    if (Number(r.rows[0]?.n) !== o.events.length)
      throw new Error(`postgres: ${r.rows[0]?.n} of ${o.events.length} completed`);
    const batches = reports.reduce((a, x) => a + x.batches, 0);
    const lockCalls = reports.reduce((a, x) => a + x.lockCalls, 0);
    for (const l of lockDbs) await l.close();
    await db.close();
    closed = true;
    const s2 = await snapshot(cfg.DATABASE_URL);
    const fix = openDb(cfg);
    for (const def of rebuild) await fix.db.execute(sql.raw(def));
    if (o.fillfactor) await fix.db.execute(sql`ALTER TABLE events RESET (fillfactor)`);
    await fix.close();
    return {
      rate: o.events.length / secs,
      batches,
      storeTripsPerBatch: storeTrips / batches,
      lockTripsPerBatch: lockCalls / batches,
      publishWrites: await writeFigures(s0, s1, o.events.length),
      drainWrites: await writeFigures(s1v, s2, o.events.length),
      cpu,
    };
  } finally {
    if (!closed) {
      for (const l of lockDbs) await l.close();
      await db.close();
    }
  }
}

/**
 * pg-boss (v10) processing `n` no-op jobs: inserted in bulk first (like our pre-filled
 * queue), then `workers` polling workers fetching `batchSize` jobs at a time, at pg-boss's
 * shortest polling interval (0.5 s). Its own schema in the bench database.
 */
export async function pgBossBaseline(o: {
  connectionString: string;
  n: number;
  batchSize: number;
  workers: number;
  data: (i: number) => object;
}): Promise<{ rate: number; cpu: string | null }> {
  const schema = `pgboss_${randomBytes(3).toString("hex")}`;
  const boss = new PgBoss({
    connectionString: o.connectionString,
    schema,
    max: o.workers + 2,
    supervise: false,
    schedule: false,
  });
  boss.on("error", (e) => console.error("pg-boss:", e));
  await boss.start();
  const queue = "noop";
  await boss.createQueue(queue);
  for (let i = 0; i < o.n; i += 1000) {
    await boss.insert(
      Array.from({ length: Math.min(1000, o.n - i) }, (_, k) => ({ name: queue, data: o.data(i + k) })),
    );
  }
  let done = 0;
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  const cpu0 = cpuSample();
  const t0 = performance.now();
  for (let w = 0; w < o.workers; w++) {
    await boss.work(queue, { batchSize: o.batchSize, pollingIntervalSeconds: 0.5 }, async (jobs) => {
      // The batch is completed by pg-boss when the handler resolves; counted here first.
      done += jobs.length;
      if (done >= o.n) setImmediate(finish);
    });
  }
  await finished;
  // Wait for the last batch's completion to be written, as our drain waits for settle.
  for (;;) {
    const left = await boss.getQueueSize(queue, { before: "completed" });
    if (left === 0) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  const secs = (performance.now() - t0) / 1000;
  const cpu = formatCpu("  jobs,", cpu0, cpuSample(), o.n);
  await boss.offWork(queue);
  await boss.stop({ graceful: false, wait: true });
  return { rate: o.n / secs, cpu };
}
