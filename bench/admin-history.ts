/**
 * Admin listing and replay chunks over a large history: p50/p99 per query shape.
 *
 *   npx tsx bench/admin-history.ts                          # 1,000,000 rows, 60 samples per shape
 *   npx tsx bench/admin-history.ts --rows 1000000 --samples 100 \
 *     --variants "all;-events_type_timestamp_idx;-events_source_timestamp_idx;-events_timestamp_id_idx"
 *
 * Seeds the events table of a throwaway migrated database with generate_series (types and
 * sources skewed: a few very common, a long tail, one rare type; 30 days of timestamps;
 * mostly completed, some dlq and open rows), then runs the queries behind GET /admin/events
 * (src/reads/event-queries.ts listEvents: type, source, status, time range, cursor pages, both
 * directions) and the replay runner's chunk read (src/reads/replay-queries.ts readChunk), through the
 * same Neon driver and WebSocket stand-in as the worker.
 *
 * --variants: each variant runs in a transaction that is rolled back after, so the indexes
 * it drops ("-name") or creates ("+name:definition", e.g.
 * "+bloom:CREATE INDEX bloom ON events USING brin (type text_bloom_ops)") are back as they
 * were for the next one. The shapes are sampled round-robin across variants, so machine
 * noise falls on all of them alike. Target: p99 <= 50 ms for every shape.
 */
import { parseArgs } from "node:util";
import { neonConfig } from "@neondatabase/serverless";
import { sql } from "drizzle-orm";
import pg from "pg";
import ws from "ws";
import { loadConfig } from "../src/config";
import { type Db, openDb } from "../src/db/client";
import type { EventStatus } from "../src/db/schema";
import { type Cursor, decodeCursor, type HistoryFilter, listEvents } from "../src/reads/event-queries";
import { type ReplayJob, readChunk } from "../src/reads/replay-queries";
import { benchInfra, runMain } from "./infra";

neonConfig.webSocketConstructor = ws;

const { values: args } = parseArgs({
  options: {
    rows: { type: "string", default: "1000000" },
    samples: { type: "string", default: "60" },
    variants: { type: "string", default: "all" },
    chunk: { type: "string", default: "500" },
    /** "neon": the worker's driver through the WebSocket stand-in; "pg": plain TCP, the query alone. */
    driver: { type: "string", default: "neon" },
  },
});
const ROWS = Number(args.rows);
const SAMPLES = Number(args.samples);
const DAYS = 30;
const TYPES = 40;
const SOURCES = 1000;
const DAY_MS = 86_400_000;

const fmt = (n: number, d = 1) => n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};

/** Seeds over plain TCP (pg): a 250k-row statement outlasts the Neon driver's read timeout. */
async function seed(url: string, end: number) {
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  const start = end - DAYS * DAY_MS;
  // One statement per 250k rows: the ids, types, sources and statuses as the SQL below spreads them.
  for (let from = 1; from <= ROWS; from += 250_000) {
    const to = Math.min(ROWS, from + 249_999);
    await db.query(
      `INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts,
                          next_retry_at, processed_at, created_at, updated_at)
      SELECT gen_random_uuid(), t.type, t.source, t.ts,
             jsonb_build_object('n', i, 'text', 'a small payload of a realistic size for a webhook-ish event'),
             jsonb_build_object('trace_id', md5(i::text)), t.source, t.status, 1,
             CASE WHEN t.status = 'pending' THEN t.ts + interval '1 hour' END,
             CASE WHEN t.status IN ('completed', 'dlq') THEN t.ts + interval '20 milliseconds' END,
             t.ts + interval '5 milliseconds', t.ts + interval '20 milliseconds'
        FROM generate_series($1::int, $2::int) AS i,
        LATERAL (SELECT
          CASE WHEN i % 10000 = 0 THEN 'rare.type' ELSE 'type-' || floor(${TYPES} * random() ^ 3)::int END AS type,
          'src-' || floor(${SOURCES} * random() ^ 2)::int AS source,
          to_timestamp((${start}::float8 + (i::float8 / ${ROWS}) * ${DAYS * DAY_MS}::float8 + random() * 2000) / 1000) AS ts,
          (CASE WHEN i % 100 = 7 THEN 'dlq' WHEN i % 1000 = 3 THEN 'pending'
                WHEN i % 5000 = 11 THEN 'processing' ELSE 'completed' END)::event_status AS status) t`,
      [from, to],
    );
  }
  await db.query("VACUUM ANALYZE events");
  await db.end();
}

/** A query shape; one that answers an array of durations (ms) counts each as a sample. */
type Shape = { name: string; run: (db: Db) => Promise<unknown> };

function shapes(end: number): Shape[] {
  const start = end - DAYS * DAY_MS;
  const at = () => start + Math.random() * DAYS * DAY_MS;
  const iso = (ms: number) => new Date(ms).toISOString();
  const anyType = () => (Math.random() < 0.1 ? "rare.type" : `type-${Math.floor(Math.random() * TYPES)}`);
  const anySource = () => `src-${Math.floor(Math.random() * SOURCES)}`;
  const list = (db: Db, f: HistoryFilter, order: "asc" | "desc" = "desc", cursor?: Cursor) =>
    listEvents(db, f, { limit: 100, order, ...(cursor ? { cursor } : {}) });
  /** Five pages in a row from a random point: each page's time counts as one sample of its own. */
  const pages = async (db: Db, f: HistoryFilter, order: "asc" | "desc") => {
    const t = at();
    const ms: number[] = [];
    let cursor: Cursor | undefined = { ts: iso(t), id: "00000000-0000-0000-0000-000000000000" };
    for (let i = 0; i < 5 && cursor; i++) {
      const t0 = performance.now();
      const r = await list(db, f, order, cursor);
      ms.push(performance.now() - t0);
      cursor = r.next_cursor ? (decodeCursor(r.next_cursor) ?? undefined) : undefined;
    }
    return ms;
  };
  const job = (over: Partial<ReplayJob>): ReplayJob => {
    const from = at() - DAY_MS;
    return {
      id: "00000000-0000-0000-0000-000000000001",
      status: "running",
      from: iso(from),
      to: iso(from + DAY_MS),
      types: null,
      sources: null,
      statusFilter: null,
      target: null,
      dryRun: false,
      rate: 1000,
      startAt: iso(end),
      cursorTs: iso(from + Math.random() * DAY_MS),
      cursorId: "00000000-0000-0000-0000-000000000000",
      scanned: 0,
      republished: 0,
      totalEstimate: null,
      errors: [],
      createdAt: iso(end),
      updatedAt: iso(end),
      startedAt: null,
      finishedAt: null,
      ...over,
    };
  };
  const chunk = Number(args.chunk);
  const status = (s: EventStatus): HistoryFilter => ({ status: s });
  return [
    { name: "list newest", run: (db) => list(db, {}) },
    { name: "list type", run: (db) => list(db, { type: anyType() }) },
    { name: "list rare type", run: (db) => list(db, { type: "rare.type" }) },
    { name: "list source", run: (db) => list(db, { source: anySource() }) },
    { name: "list status dlq", run: (db) => list(db, status("dlq")) },
    { name: "list status pending", run: (db) => list(db, status("pending")) },
    { name: "list status processing", run: (db) => list(db, status("processing")) },
    { name: "list status completed", run: (db) => list(db, status("completed")) },
    {
      name: "list 1h range",
      run: (db) => {
        const t = at();
        return list(db, { from: iso(t), to: iso(t + 3_600_000) });
      },
    },
    {
      name: "list type + 1d range",
      run: (db) => {
        const t = at();
        return list(db, { type: anyType(), from: iso(t), to: iso(t + DAY_MS) });
      },
    },
    {
      name: "list source + 1d range",
      run: (db) => {
        const t = at();
        return list(db, { source: anySource(), from: iso(t), to: iso(t + DAY_MS) });
      },
    },
    {
      name: "list type + status dlq",
      run: (db) => list(db, { type: anyType(), status: "dlq" }),
    },
    { name: "cursor page desc", run: (db) => pages(db, {}, "desc") },
    { name: "cursor page asc, type", run: (db) => pages(db, { type: anyType() }, "asc") },
    { name: "cursor page desc, source", run: (db) => pages(db, { source: anySource() }, "desc") },
    { name: `replay chunk ${chunk}, 1d`, run: (db) => readChunk(db, job({}), chunk) },
    {
      name: `replay chunk ${chunk}, 1d, type`,
      run: (db) => readChunk(db, job({ types: [anyType()] }), chunk),
    },
    {
      name: `replay chunk ${chunk}, 1d, source`,
      run: (db) => readChunk(db, job({ sources: [anySource()] }), chunk),
    },
    {
      name: `replay chunk ${chunk}, 1d, dlq`,
      run: (db) => readChunk(db, job({ statusFilter: "dlq" }), chunk),
    },
  ];
}

interface Variant {
  name: string;
  /** Indexes this variant drops, in its transaction. */
  drop: string[];
  /** Indexes this variant adds: name -> CREATE INDEX statement. */
  add: Map<string, string>;
}

function parseVariants(s: string): Variant[] {
  return s.split(";").map((v) => {
    const name = v.trim();
    const out: Variant = { name, drop: [], add: new Map() };
    if (name === "all") return out;
    for (const part of name.split(",")) {
      if (part.startsWith("-")) out.drop.push(part.slice(1));
      else if (part.startsWith("+") && part.includes(":"))
        out.add.set(part.slice(1, part.indexOf(":")), part.slice(part.indexOf(":") + 1));
      else throw new Error(`variant part "${part}": "-index" or "+name:CREATE INDEX name ..."`);
    }
    return out;
  });
}

async function main() {
  const infra = await benchInfra();
  try {
    const cfg = loadConfig({
      DATABASE_URL: infra.dbUrl,
      NEON_WS_PROXY: infra.standIns.proxyAddress,
      EVENT_BACKEND: "postgres",
      LOCK_BACKEND: "postgres",
      LOG_LEVEL: "warn",
    });
    const variants = parseVariants(args.variants!);
    const h = openDb(cfg);
    const end = Date.now();
    const t0 = performance.now();
    await seed(infra.dbUrl, end);
    console.log(`seeded ${fmt(ROWS, 0)} rows in ${fmt((performance.now() - t0) / 1000)} s`);
    // Added indexes are built once, committed; every variant that does not add one drops it.
    const added = new Map(variants.flatMap((v) => [...v.add]));
    for (const [, create] of added) await h.db.execute(sql.raw(create));
    if (added.size) await h.db.execute(sql`ANALYZE events`);
    const list = shapes(end);
    const times = variants.map(() => new Map<string, number[]>(list.map((s) => [s.name, []])));
    const schema = await import("../src/db/schema");
    let client: { query(q: string): Promise<unknown>; release(): void };
    let db: Db;
    if (args.driver === "pg") {
      const c = new pg.Client({ connectionString: infra.dbUrl });
      await c.connect();
      const { drizzle } = await import("drizzle-orm/node-postgres");
      db = drizzle(c, { schema }) as unknown as Db;
      client = { query: (q) => c.query(q), release: () => void c.end() };
    } else {
      const c = await h.pool.connect();
      const { drizzle } = await import("drizzle-orm/neon-serverless");
      db = drizzle(c, { schema }) as unknown as Db;
      client = c;
    }
    // Round-robin: one sample of every shape per variant, in a transaction that drops what
    // the variant lacks and is rolled back after (DROP INDEX locks the table: one at a time).
    for (let k = 0; k < SAMPLES; k++) {
      for (let v = 0; v < variants.length; v++) {
        const drop = [...variants[v]!.drop, ...[...added.keys()].filter((n) => !variants[v]!.add.has(n))];
        await client.query("BEGIN");
        for (const d of drop) await client.query(`DROP INDEX ${d}`);
        for (const s of list) {
          const t = performance.now();
          const r = await s.run(db);
          const own = Array.isArray(r) && typeof r[0] === "number" ? (r as number[]) : null;
          times[v]!.get(s.name)!.push(...(own ?? [performance.now() - t]));
        }
        await client.query("ROLLBACK");
      }
    }
    client.release();
    const lines = [
      `${fmt(ROWS, 0)} rows, ${SAMPLES} samples per shape, driver ${args.driver}, ms (p50 / p99); target p99 <= 50 ms`,
    ];
    const w = Math.max(...list.map((s) => s.name.length));
    lines.push(`${"".padEnd(w)}  ${variants.map((v) => v.name.slice(0, 34).padStart(34)).join("")}`);
    for (const s of list) {
      const cells = variants.map((_, v) => {
        const xs = times[v]!.get(s.name)!;
        const p99 = pct(xs, 99);
        return `${fmt(pct(xs, 50))} / ${fmt(p99)}${p99 > 50 ? " !" : "  "}`.padStart(34);
      });
      lines.push(`${s.name.padEnd(w)}  ${cells.join("")}`);
    }
    for (let v = 0; v < variants.length; v++) {
      const all = [...times[v]!.values()].flat();
      lines.push(
        `${variants[v]!.name}: all shapes p99 ${fmt(pct(all, 99))} ms, worst shape p99 ${fmt(Math.max(...[...times[v]!.values()].map((x) => pct(x, 99))))} ms`,
      );
    }
    console.log(lines.join("\n"));
    await h.close();
  } finally {
    await infra.close();
  }
}

runMain(main);
