/**
 * Durable steps benchmark: what ctx.step costs per handler.
 *
 *   npx tsx bench/steps.ts                        # 5,000 events, 0 / 1 / 3 steps, both backends
 *   npx tsx bench/steps.ts --events 20000 --steps 0,1,3,10 --batch 500 --skip-postgres
 *
 * Drains the same pre-published events with a trigger whose handler runs N trivial steps
 * (each returns a small object, so what is measured is the recording), for each N, with
 * EVENT_BACKEND=redis and =postgres. The real consumer code runs in Node against the local
 * Redis and Postgres through the stand-ins (in a process of their own,
 * local/standins-process.ts), on a throwaway database and a unique Redis prefix removed at
 * the end. Prints events/s and Postgres round trips per batch (every query the pools send:
 * claims, settles, locks, step reads and writes), each as a ratio to 0 steps in the same run,
 * and the round trips added per step and event.
 *
 * Numbers are from one machine where everything shares the cores: read the ratios.
 */
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { neonConfig } from "@neondatabase/serverless";
import ws from "ws";
import "../local/lua-text";
import { type Env, loadConfig } from "../src/config";
import { runConsumer } from "../src/consume/consumer";
import { openDb } from "../src/db/client";
import type { EventEnvelope } from "../src/events/envelope";
import { flush } from "../src/obs/metrics";
import { filters as f } from "../src/triggers";
import { TriggerRegistry } from "../src/triggers/registry";
import { benchInfra, runMain } from "./infra";

/** Loaded after local/lua-text.ts's hook is registered: the Redis backend imports .lua files as text. */
const { openBackend } = await import("../src/backends");

const { values: args } = parseArgs({
  options: {
    events: { type: "string", default: "5000" },
    steps: { type: "string", default: "0,1,3" },
    batch: { type: "string", default: "500" },
    sources: { type: "string", default: "100" },
    "skip-postgres": { type: "boolean", default: false },
  },
});
const N = Number(args.events);
const STEPS = args.steps!.split(",").map(Number);
const SOURCES = Number(args.sources);
neonConfig.webSocketConstructor = ws;

/** Postgres round trips counted by the pools (src/db/client.ts) since the last call. */
async function takeRoundTrips(): Promise<number> {
  let n = 0;
  await flush({
    add: async (deltas) => {
      for (const [series, by] of deltas) if (series === "reflex_pg_round_trips_total") n += by;
    },
    read: async () => [],
  });
  return n;
}

function event(i: number): EventEnvelope {
  return {
    id: crypto.randomUUID(),
    type: "bench.steps",
    source: `bench-${i % SOURCES}`,
    timestamp: new Date().toISOString(),
    meta: { trace_id: randomBytes(16).toString("hex") },
    body: { text: "a small payload of a realistic size for a webhook-ish event", n: i },
  };
}

function withSteps(n: number): TriggerRegistry {
  return new TriggerRegistry().register({
    name: "stepper",
    filter: f.type("bench.*"),
    handler: async (ctx) => {
      for (let s = 0; s < n; s++) await ctx.step(`step ${s}`, () => ({ s, at: ctx.event.id }));
    },
  });
}

interface Result {
  steps: number;
  rate: number;
  batches: number;
  trips: number;
}

async function drain(env: Env, steps: number): Promise<Result> {
  const cfg = loadConfig(env);
  const db = openDb(cfg);
  try {
    const b = openBackend(cfg, db);
    await db.db.execute("TRUNCATE events, steps");
    const evs = Array.from({ length: N }, (_, i) => event(i));
    for (let i = 0; i < evs.length; i += 1000) await b.store.publish(evs.slice(i, i + 1000));
    if (cfg.EVENT_BACKEND === "postgres") await db.db.execute("VACUUM ANALYZE events");
    const locks = b.scopeLocks();
    await takeRoundTrips();
    const t0 = performance.now();
    const report = await runConsumer({
      store: b.store,
      triggers: withSteps(steps),
      locks,
      filterState: b.filterState(),
      config: cfg,
      env,
      db: db.db,
    }).finally(() => locks.close());
    const secs = (performance.now() - t0) / 1000;
    const trips = await takeRoundTrips();
    const r = await db.db.execute<{ n: number }>("select count(*)::int as n from events where status = 'completed'");
    if (Number(r.rows[0]?.n) !== N) throw new Error(`${steps} steps: ${r.rows[0]?.n} of ${N} completed`);
    const s = await db.db.execute<{ n: number }>("select count(*)::int as n from steps");
    if (Number(s.rows[0]?.n) !== N * steps) throw new Error(`${steps} steps: ${s.rows[0]?.n} of ${N * steps} recorded`);
    return { steps, rate: N / secs, batches: report.batches, trips };
  } finally {
    await db.close();
  }
}

const fmt = (n: number, d = 0) => n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });

function table(backend: string, rs: Result[]): string {
  const base = rs.find((r) => r.steps === 0) ?? rs[0]!;
  const perBatch = (r: Result) => r.trips / r.batches;
  const lines = rs.map((r) => {
    const added = r.steps ? (r.trips - base.trips) / (N * r.steps) : 0;
    return (
      `${backend.padEnd(8)} ${String(r.steps).padStart(2)} steps: ${fmt(r.rate).padStart(7)} events/s ` +
      `(x${fmt(r.rate / base.rate, 2)}) | Postgres round trips/batch ${fmt(perBatch(r), 1).padStart(6)} ` +
      `(x${fmt(perBatch(r) / perBatch(base), 2)}) | added per step and event ${fmt(added, 3)}`
    );
  });
  return lines.join("\n");
}

async function main() {
  const infra = await benchInfra();
  const { token, standIns, dbUrl, prefixBase } = infra;
  const envFor = (backend: "redis" | "postgres", prefix: string): Env => ({
    ...(backend === "redis" ? { UPSTASH_REDIS_REST_URL: standIns.gatewayUrl, UPSTASH_REDIS_REST_TOKEN: token } : {}),
    EVENT_BACKEND: backend,
    DATABASE_URL: dbUrl,
    NEON_WS_PROXY: standIns.proxyAddress,
    REDIS_PREFIX: prefix,
    CONSUMER_BATCH_SIZE: args.batch,
    CONSUMER_TIME_BUDGET_MS: "600000",
    CONSUMER_MAX_BATCHES: "100000",
    LOG_LEVEL: "warn",
  });
  const out: string[] = [];
  try {
    for (const backend of args["skip-postgres"] ? ["redis" as const] : (["redis", "postgres"] as const)) {
      const rs: Result[] = [];
      for (const k of STEPS) {
        rs.push(await drain(envFor(backend, `${prefixBase}:${backend}:${k}`), k));
        console.log(`${backend}, ${k} steps: ${fmt(rs[rs.length - 1]!.rate)} events/s`);
      }
      out.push(table(backend, rs));
    }
  } finally {
    await infra.close();
  }
  console.log(`\n${N} events per run, batch ${args.batch}, ${SOURCES} sources (scopes), 1 consumer`);
  console.log(out.join("\n"));
}

runMain(main);
