/**
 * Retention benchmark: what deleting a million old history rows costs, and what it costs
 * the traffic beside it.
 *
 *   npx tsx bench/retention.ts                                  # 1,000,000 old rows, Postgres backend
 *   npx tsx bench/retention.ts --rows 1000000 --seconds 15 --backend redis
 *
 * On a throwaway database (and Redis prefix), both removed at the end:
 *
 *   1. seed --rows completed events older than HISTORY_RETENTION_DAYS (and a tenth as many
 *      recent ones, which must stay), VACUUM ANALYZE;
 *   2. without retention: for --seconds, --publishers publish batches of --batch events as
 *      fast as they can while --consumers consumer runs drain back to back (a no-op trigger):
 *      ingest rate = events published / s, drain rate = events completed / s;
 *   3. with retention: the same load, and beside it the sweeper's retention step
 *      (applyRetention, RETENTION_BATCH_SIZE rows per statement) run back to back, as if the
 *      sweeper cron never paused - harsher than production, where one run does at most
 *      RETENTION_MAX_BATCHES statements every five minutes; it goes on after the window
 *      until the old rows are gone.
 * Printed: rows removed per second (during the window, and for the whole million), ingest
 * and drain rates with retention as ratios to the rates without. Nothing is asserted.
 *
 * The load and the retention reach Postgres through stand-ins of their own (local/), in
 * processes of their own, as separate invocations reach Neon. They share Postgres and the
 * machine's cores: compare the ratios, not the absolutes.
 */
import os from "node:os";
import { parseArgs } from "node:util";
import { neonConfig } from "@neondatabase/serverless";
import pg from "pg";
import ws from "ws";
import "../local/lua-text";
import { spawnStandIns } from "../local/standins-process";
import { type Env, loadConfig } from "../src/config";
import { runConsumer } from "../src/consume/consumer";
import { openDb } from "../src/db/client";
import { applyRetention } from "../src/jobs/retention";
import { filters as f } from "../src/triggers";
import { TriggerRegistry } from "../src/triggers/registry";
import { benchInfra, liveEvent, PG, runMain } from "./infra";

// The Redis backend imports its Lua scripts as .lua text: load it after local/lua-text.ts's hook.
const { openBackend } = await import("../src/backends");

const { values: args } = parseArgs({
  options: {
    rows: { type: "string", default: "1000000" },
    seconds: { type: "string", default: "15" },
    backend: { type: "string", default: "postgres" },
    publishers: { type: "string", default: "2" },
    consumers: { type: "string", default: "2" },
    batch: { type: "string", default: "100" },
    "retention-batch": { type: "string", default: "5000" },
  },
});

const RETENTION_DAYS = 90;

neonConfig.webSocketConstructor = ws;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (n: number, d = 0) => n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });

interface LoadResult {
  published: number;
  completed: number;
  seconds: number;
}

interface RetentionRun {
  windowDeleted: number;
  windowSeconds: number;
  totalDeleted: number;
  totalSeconds: number;
  statements: number;
}

async function main() {
  const rows = Number(args.rows);
  const seconds = Number(args.seconds);
  const backend = args.backend === "redis" ? "redis" : "postgres";
  const publishers = Number(args.publishers);
  const consumers = Number(args.consumers);
  const perPublish = Number(args.batch);
  const retentionBatch = Number(args["retention-batch"]);

  // The load's stand-ins, database and prefix (bench/infra.ts); the sweeper gets a pair of
  // its own: separate invocations.
  const infra = await benchInfra();
  const { dbUrl, token } = infra;
  const prefix = infra.prefixBase;
  const direct = new pg.Client({ connectionString: dbUrl });
  const loadStandIns = infra.standIns;
  const sweepStandIns = await spawnStandIns({ token, pgHost: PG.host, pgPort: PG.port });
  const envFor = (s: typeof loadStandIns): Env => ({
    DATABASE_URL: dbUrl,
    NEON_WS_PROXY: s.proxyAddress,
    EVENT_BACKEND: backend,
    ...(backend === "redis" ? { UPSTASH_REDIS_REST_URL: s.gatewayUrl, UPSTASH_REDIS_REST_TOKEN: token } : {}),
    REDIS_PREFIX: prefix,
    LOG_LEVEL: "error",
    CONSUMER_TIME_BUDGET_MS: "5000",
    DB_POOL_MAX: "5",
  });
  const loadCfg = loadConfig(envFor(loadStandIns));
  const sweepCfg = loadConfig(envFor(sweepStandIns));

  try {
    await direct.connect();
    const t0 = Date.now();
    const seedChunk = 250_000;
    for (let from = 0; from < rows + rows / 10; from += seedChunk) {
      const n = Math.min(seedChunk, rows + rows / 10 - from);
      await direct.query(
        `INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts, processed_at, created_at, updated_at)
         SELECT gen_random_uuid(), 'history.row', 'src-' || (g % 100), t, jsonb_build_object('n', g, 'text', 'a small payload of a realistic size for a webhook-ish event'),
                '{"trace_id":"seeded"}'::jsonb, 'src-' || (g % 100), 'completed', 1, t, t, t
           FROM generate_series($1::int + 1, $1::int + $2::int) AS g,
                LATERAL (SELECT CASE WHEN g <= $3::int
                  THEN now() - interval '${RETENTION_DAYS + 10} days' + g * interval '1 millisecond'
                  ELSE now() - interval '1 day' + g * interval '1 millisecond' END AS t) AS x`,
        [from, n, rows],
      );
    }
    await direct.query("VACUUM ANALYZE events");
    const size = await direct.query<{ s: string }>("SELECT pg_size_pretty(pg_total_relation_size('events')) AS s");
    console.log(
      `seeded ${fmt(rows)} old + ${fmt(rows / 10)} recent completed events in ${fmt((Date.now() - t0) / 1000, 1)} s ` +
        `(events with its indexes: ${size.rows[0]!.s}); EVENT_BACKEND=${backend}, ${publishers} publishers x ${perPublish} events, ${consumers} consumers, ${seconds} s per phase`,
    );

    const triggers = new TriggerRegistry().register({ name: "noop", filter: f.type("live.*"), handler: () => {} });
    const loadDb = openDb(loadCfg);
    const loadEnv = envFor(loadStandIns);

    /** Publishers and consumers for `seconds`; then the rest is drained, not measured. */
    const load = async (type: string, secs = seconds, onWindowEnd = () => {}): Promise<LoadResult> => {
      const end = Date.now() + secs * 1000;
      let published = 0;
      let completed = 0;
      const backendOf = () => openBackend(loadCfg, loadDb);
      const publisher = async () => {
        const store = backendOf().store;
        for (let i = 0; Date.now() < end; i++) {
          await store.publish(Array.from({ length: perPublish }, (_, k) => liveEvent(type, i * perPublish + k)));
          if (Date.now() < end) published += perPublish;
        }
      };
      const consumer = async (untilDrained: boolean) => {
        for (;;) {
          const b = backendOf();
          const locks = b.scopeLocks();
          try {
            const rep = await runConsumer({
              store: b.store,
              triggers,
              locks,
              filterState: b.filterState(),
              config: loadCfg,
              env: loadEnv,
            });
            if (!untilDrained && Date.now() <= end) completed += rep.completed;
            if (untilDrained ? rep.claimed === 0 : Date.now() >= end) return;
            if (rep.claimed === 0) await sleep(20);
          } finally {
            await locks.close();
          }
        }
      };
      const started = Date.now();
      await Promise.all([
        ...Array.from({ length: publishers }, publisher),
        ...Array.from({ length: consumers }, () => consumer(false)),
      ]);
      const took = (Date.now() - started) / 1000;
      onWindowEnd();
      await consumer(true);
      return { published, completed, seconds: took };
    };

    const retention = async (windowEnd: () => number | null): Promise<RetentionRun> => {
      const db = openDb(sweepCfg);
      const started = Date.now();
      const out: RetentionRun = { windowDeleted: 0, windowSeconds: 0, totalDeleted: 0, totalSeconds: 0, statements: 0 };
      try {
        for (;;) {
          const r = await applyRetention(
            db.db,
            {
              historyDays: RETENTION_DAYS,
              dlqDays: 0,
              attemptsDays: 0,
              replayJobsDays: 0,
              batchSize: retentionBatch,
              maxBatches: 1,
            },
            new Date(),
          );
          out.statements++;
          out.totalDeleted += r.events;
          const we = windowEnd();
          if (we === null || Date.now() <= we) {
            out.windowDeleted = out.totalDeleted;
            out.windowSeconds = (Date.now() - started) / 1000;
          }
          if (!r.more) break;
        }
      } finally {
        await db.close();
      }
      out.totalSeconds = (Date.now() - started) / 1000;
      return out;
    };

    // Warm-up, not measured.
    await load("live.warmup", 3);

    const without = await load("live.alone");
    console.log(
      `without retention: ingest ${fmt(without.published / without.seconds)}/s, drain ${fmt(without.completed / without.seconds)}/s`,
    );

    let windowEnd: number | null = null;
    const sweeping = retention(() => windowEnd);
    await sleep(200); // the first statement is under way when the load starts
    const beside = await load("live.with-retention", seconds, () => {
      windowEnd = Date.now();
    });
    const ret = await sweeping;
    const left = await direct.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM events WHERE type = 'history.row' AND "timestamp" < now() - interval '${RETENTION_DAYS} days'`,
    );
    const kept = await direct.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM events WHERE type = 'history.row' AND "timestamp" >= now() - interval '${RETENTION_DAYS} days'`,
    );

    const rate = (r: LoadResult, k: "published" | "completed") => r[k] / r.seconds;
    const ratio = (a: number, b: number) => `${fmt(a / b, 2)}x`;
    console.log(
      `
retention at ${fmt(rows)} old rows (EVENT_BACKEND=${backend}; ${fmt(retentionBatch)} rows per statement, statements back to back)
  rows removed per second: ${fmt(ret.windowDeleted / Math.max(ret.windowSeconds, 0.001))} while the load ran (${fmt(ret.windowDeleted)} in ${fmt(ret.windowSeconds, 1)} s), ` +
        `${fmt(ret.totalDeleted / ret.totalSeconds)} over the whole run (${fmt(ret.totalDeleted)} in ${fmt(ret.totalSeconds, 1)} s, ${ret.statements} statements)
  left behind: ${fmt(left.rows[0]!.n)} old rows (must be 0); recent rows kept: ${fmt(kept.rows[0]!.n)} of ${fmt(rows / 10)}

                    ingest/s    drain/s
  without retention ${fmt(rate(without, "published")).padStart(9)} ${fmt(rate(without, "completed")).padStart(10)}
  with retention    ${fmt(rate(beside, "published")).padStart(9)} ${fmt(rate(beside, "completed")).padStart(10)}
  ratio with/without ${ratio(rate(beside, "published"), rate(without, "published")).padStart(8)} ${ratio(rate(beside, "completed"), rate(without, "completed")).padStart(10)}
machine: ${os.cpus().length} cores shared by the load, the retention, Postgres${backend === "redis" ? ", Redis" : ""} and the stand-ins; load average ${fmt(os.loadavg()[0]!, 1)}`,
    );
    await loadDb.close();
  } finally {
    await direct.end().catch(() => {});
    await sweepStandIns.stop();
    await infra.close();
  }
}

runMain(main);
