/**
 * Dashboard benchmark against `wrangler dev`: render time and size of every page with a
 * large history.
 *
 *   npx tsx bench/dashboard.ts                       # 100,000 events in the last hour, 30 requests per page
 *   npx tsx bench/dashboard.ts --hours 24            # the same history spread over a day
 *   npx tsx bench/dashboard.ts --events 1000000 --requests 50
 *
 * On a throwaway database and Redis prefix (removed at the end), with the stand-ins in a
 * process of their own (./infra.ts): seeds --events history rows in one
 * statement, spread over the last --hours (default 1: the overview's per-minute scan then
 * reads every one of them, its worst case), about 1% in the DLQ across a few error groups, a tenth of them
 * derived, delivery attempts for two destinations, some finished replay jobs and 50 ordered
 * scopes parked behind a held head in the DLQ (3 events waiting behind each). Then signs
 * in and times each page, one request at a time (wall clock at the client: the worker's
 * queries and rendering, and the local stand-ins), next to the admin API route that reads
 * the same data as JSON and to GET /health:
 *
 *   page                           baseline
 *   /dashboard                     GET /metrics (the other live figures; /health/detailed
 *                                  keeps its figures per isolate, so it is no baseline)
 *   /dashboard/events              GET /events?limit=50
 *   /dashboard/events?type=...     GET /events?type=...&limit=50
 *   /dashboard/events?correlation  (none: the admin API has no correlation filter)
 *   /dashboard/events/:id          GET /events/:id
 *   /dashboard/dlq                 GET /events/dlq?limit=50
 *   /dashboard/replays             GET /replays
 *   /dashboard/destinations        GET /destinations
 *   /dashboard/scopes              GET /scopes/parked
 *
 * Printed: p50 and p95 per page, the ratio of its p50 to its baseline's and to /health's,
 * and the page's size (the dashboard keeps every page under 100 KB). One machine, every
 * process on the same cores: read the ratios. Nothing is asserted.
 */
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import pg from "pg";
import { startWranglerDev } from "../local/wrangler-dev";
import { benchInfra } from "./infra";

const { values: args } = parseArgs({
  options: {
    events: { type: "string", default: "100000" },
    requests: { type: "string", default: "30" },
    hours: { type: "string", default: "1" },
  },
});
const EVENTS = Number(args.events);
const REQUESTS = Number(args.requests);
const HOURS = Number(args.hours);

const ADMIN_TOKEN = `bench-admin-${randomBytes(12).toString("hex")}`;

async function seed(db: pg.Client) {
  const started = Date.now();
  // One correlation id shared by a thread of 20 events, to search for.
  await db.query(
    `INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts, last_error, errors,
                         created_at, updated_at, processed_at)
     SELECT gen_random_uuid(), t.type, t.source, ts,
            jsonb_build_object('order_id', 'o-' || n, 'total_cents', n % 10000, 'lines',
                               jsonb_build_array(jsonb_build_object('sku', 'sku-' || (n % 500), 'qty', 1 + n % 3))),
            jsonb_build_object('trace_id', md5(n::text))
              || CASE WHEN n % 10 = 0 THEN jsonb_build_object('causation_id', gen_random_uuid()::text) ELSE '{}' END
              || CASE WHEN n % 5000 < 20 THEN jsonb_build_object('correlation_id', 'thread-42') ELSE '{}' END,
            t.source, CASE WHEN n % 97 = 0 THEN 'dlq' ELSE 'completed' END::event_status,
            CASE WHEN n % 97 = 0 THEN 3 ELSE 1 END, CASE WHEN n % 97 = 0 THEN t.err END,
            CASE WHEN n % 97 = 0 THEN jsonb_build_array(jsonb_build_object('attempt', 3, 'error', t.err, 'at', ts)) ELSE '[]' END,
            ts, ts + interval '1 second', ts + interval '1 second'
       FROM generate_series(1, $1::int) AS n,
            LATERAL (SELECT now() - (n::float8 / $1::int) * $2::float8 * interval '59 minutes' AS ts) s,
            LATERAL (SELECT (ARRAY['order.created', 'order.paid', 'github.push', 'invoice.sent', 'timer.tick'])[1 + n % 5] AS type,
                            (ARRAY['shopify', 'shopify', 'github', 'billing', 'scheduler'])[1 + n % 5] AS source,
                            (ARRAY['timeout after 5000 ms', 'duplicate key order_id', 'HTTP 502', 'template not found',
                                   'HTTP 500'])[1 + n % 5] AS err) t`,
    [EVENTS, HOURS],
  );
  await db.query(
    `INSERT INTO delivery_attempts (event_id, destination, attempt, status_code, error, duration_ms, response_body, at)
     SELECT gen_random_uuid(), (ARRAY['fulfilment', 'crm'])[1 + n % 2], 1, CASE WHEN n % 20 = 0 THEN 503 ELSE 200 END,
            CASE WHEN n % 20 = 0 THEN 'HTTP 503' END, 5 + n % 200, '{"ok":true}', now() - (n % 3600) * interval '1 second'
       FROM generate_series(1, $1::int) AS n`,
    [Math.max(1, Math.floor(EVENTS / 5))],
  );
  await db.query(
    `INSERT INTO replay_jobs (id, status, from_ts, to_ts, rate, scanned, republished, total_estimate, started_at, finished_at)
     SELECT gen_random_uuid(), 'done', now() - interval '1 hour', now(), 200, 1000, 1000, 1000, now(), now()
       FROM generate_series(1, 20)`,
  );
  // Parked scopes: a held head (a DLQ event) each, and three arrivals behind it that have no
  // history row yet (open, so counted as waiting).
  await db.query(
    `WITH heads AS (SELECT id, row_number() OVER (ORDER BY id) AS k FROM events WHERE status = 'dlq' LIMIT 50)
     INSERT INTO ordered_events (scope, event_id, arrival, hold, parked_at)
     SELECT 'parked-' || k, id, lpad(k::text, 15, '0') || '-0000000000', true, now() - k * interval '1 minute' FROM heads
     UNION ALL
     SELECT 'parked-' || k, gen_random_uuid(), lpad(k::text, 15, '0') || '-' || lpad(w::text, 10, '0'), true, NULL
       FROM heads, generate_series(1, 3) AS w`,
  );
  await db.query("VACUUM ANALYZE events");
  await db.query("VACUUM ANALYZE delivery_attempts");
  await db.query("VACUUM ANALYZE ordered_events");
  return Date.now() - started;
}

interface Timing {
  p50: number;
  p95: number;
  bytes: number;
  status: number;
}

async function time(base: string, path: string, headers: Record<string, string>): Promise<Timing> {
  const ms: number[] = [];
  let bytes = 0;
  let status = 0;
  for (let i = 0; i < REQUESTS + 3; i++) {
    const t0 = performance.now();
    const res = await fetch(`${base}${path}`, { headers, redirect: "manual" });
    const body = await res.arrayBuffer();
    const t = performance.now() - t0;
    if (i >= 3) ms.push(t); // three warm-up requests: JIT, pools, caches
    bytes = body.byteLength;
    status = res.status;
  }
  ms.sort((a, b) => a - b);
  const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))]!;
  return { p50: at(0.5), p95: at(0.95), bytes, status };
}

async function main() {
  const cleanups: Array<() => Promise<unknown>> = [];
  try {
    const infra = await benchInfra();
    cleanups.push(() => infra.close());
    const { token, standIns, dbUrl } = infra;
    const prefix = `${infra.prefixBase}:dash`;
    const db = new pg.Client({ connectionString: dbUrl });
    await db.connect();
    cleanups.push(() => db.end());
    const seededMs = await seed(db);
    const sample = (await db.query<{ id: string }>("SELECT id FROM events WHERE status = 'dlq' LIMIT 1")).rows[0]!.id;

    const wrangler = await startWranglerDev({
      ready: "/health",
      vars: {
        UPSTASH_REDIS_REST_URL: standIns.gatewayUrl,
        UPSTASH_REDIS_REST_TOKEN: token,
        DATABASE_URL: dbUrl,
        NEON_WS_PROXY: standIns.proxyAddress,
        ADMIN_TOKEN,
        REDIS_PREFIX: prefix,
        // Every page reads live figures: no cached health or event detail in the comparison.
        CACHE_ENABLED: "false",
        DESTINATIONS: JSON.stringify([
          { name: "fulfilment", url: "http://127.0.0.1:9/hooks", filter: { types: ["order.*"] } },
          { name: "crm", url: "http://127.0.0.1:9/crm", filter: {} },
        ]),
        LOG_LEVEL: "error",
      },
    });
    cleanups.push(() => wrangler.stop());
    const base = wrangler.url;

    const login = await fetch(`${base}/dashboard/login`, {
      method: "POST",
      redirect: "manual",
      headers: { origin: base, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: ADMIN_TOKEN, next: "/dashboard" }),
    });
    const cookie = login.headers.get("set-cookie")!.split(";")[0]!;
    const page = { cookie, accept: "text/html" };
    const api = { authorization: `Bearer ${ADMIN_TOKEN}` };

    console.log(
      `${EVENTS.toLocaleString("en-US")} events in history over the last ${HOURS} h (seeded in ${(seededMs / 1000).toFixed(1)} s), ` +
        `${REQUESTS} requests per page, one at a time, against wrangler dev\n`,
    );
    const health = await time(base, "/health", {});
    const rows: Array<[string, string | null]> = [
      ["/dashboard", "/metrics"],
      ["/dashboard/events", "/events?limit=50"],
      ["/dashboard/events?type=order.paid", "/events?type=order.paid&limit=50"],
      ["/dashboard/events?status=dlq", "/events?status=dlq&limit=50"],
      ["/dashboard/events?correlation=thread-42", null],
      [`/dashboard/events/${sample}`, `/events/${sample}`],
      ["/dashboard/dlq", "/events/dlq?limit=50"],
      ["/dashboard/replays", "/replays"],
      ["/dashboard/destinations", "/destinations"],
      ["/dashboard/scopes", "/scopes/parked"],
    ];
    const pad = (s: string, n: number) => s.padEnd(n);
    const num = (n: number, w = 8) => n.toFixed(1).padStart(w);
    console.log(
      `${pad("page", 42)}${"p50 ms".padStart(8)}${"p95 ms".padStart(8)}${"KB".padStart(8)}   ${pad("baseline", 34)}${"p50 ms".padStart(8)}${"ratio".padStart(7)}${"x health".padStart(10)}`,
    );
    console.log(`${pad("GET /health", 42)}${num(health.p50)}${num(health.p95)}`);
    let largest = 0;
    for (const [path, baseline] of rows) {
      const t = await time(base, path, page);
      if (t.status !== 200) throw new Error(`${path} answered ${t.status}`);
      const b = baseline ? await time(base, baseline, api) : null;
      largest = Math.max(largest, t.bytes);
      const shown = path.length > 40 ? `${path.slice(0, 37)}...` : path;
      console.log(
        `${pad(shown, 42)}${num(t.p50)}${num(t.p95)}${num(t.bytes / 1024)}   ${pad(baseline ? (baseline.length > 32 ? `${baseline.slice(0, 29)}...` : baseline) : "-", 34)}${b ? num(b.p50) : "       -"}${b ? (t.p50 / b.p50).toFixed(2).padStart(7) : "      -"}${(t.p50 / health.p50).toFixed(1).padStart(10)}`,
      );
    }
    console.log(`\nlargest page: ${(largest / 1024).toFixed(1)} KB (limit 100 KB)`);
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  }
}

await main();
