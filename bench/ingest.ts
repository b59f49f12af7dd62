/**
 * Ingest benchmark against `wrangler dev`:
 *
 *   npx tsx bench/ingest.ts                          # 5 s per phase, 32 connections
 *   npx tsx bench/ingest.ts --seconds 10 --connections 64 --batch 500
 *
 * Starts its own Redis (redis-server on a free port, so INFO commandstats counts only this
 * run; falls back to 127.0.0.1:6379 with a warning), the Upstash REST gateway and Neon
 * proxy stand-ins, a throwaway database, and `wrangler dev` with the worker, all removed
 * at the end. Then, in one run, with rate limiting off:
 *
 *   GET  /health                 baseline requests/s, p50, p99
 *   POST /events                 one event per request        -> ratio to /health
 *   POST /webhooks/bench         signed (standard-webhooks)   -> ratio to /health
 *   POST /events/batch           --batch events per request   -> events/s
 *   GET  /ws, 1 socket and 8     one event per frame, --window frames in flight per socket
 *                                (acknowledged in order, after the append) -> events/s
 *   GET  /ws, --batch-connections sockets, --batch events per frame (2 in flight) -> events/s
 *
 * then, in a second `wrangler dev`, the floor: a bare worker (bench/floor/worker.ts) that
 * does only the one Upstash request a single event needs. /events is printed against it too:
 * locally a subrequest from workerd to the gateway costs more than a whole /health.
 * And Redis commands per accepted event from INFO commandstats deltas (server-executed,
 * commands run inside scripts included; for webhooks the client sends one EVALSHA and the
 * script runs GET/XADD/SET inside it).
 *
 * The consumer is configured to do almost nothing (one tiny batch per wake-up) so that it
 * does not compete with ingest for workerd's thread; wake-ups are still sent.
 * Numbers come from one machine where the load generator, workerd, the gateway and Redis
 * share the cores: read the ratios, not the absolutes. No target is asserted.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import http from "node:http";
import net from "node:net";
import { parseArgs } from "node:util";
import pg from "pg";
import { Webhook } from "standardwebhooks";
import WebSocket from "ws";
import { migrateDatabase } from "../local/migrate";
import { freePort } from "../local/sockets";
import { spawnStandIns } from "../local/standins-process";
import { startWranglerDev } from "../local/wrangler-dev";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    connections: { type: "string", default: "32" },
    batch: { type: "string", default: "500" },
    "batch-connections": { type: "string", default: "8" },
    window: { type: "string", default: "16" },
  },
});
const SECONDS = Number(args.seconds);
const CONNECTIONS = Number(args.connections);
const BATCH = Number(args.batch);
const BATCH_CONNECTIONS = Number(args["batch-connections"]);
const WINDOW = Number(args.window);

const PG = {
  host: process.env.PGHOST_TEST ?? "127.0.0.1",
  port: Number(process.env.PGPORT_TEST ?? 5432),
  user: process.env.PGUSER_TEST ?? "postgres",
};
const API_KEY = `bench-${randomBytes(12).toString("hex")}`;
const WH_SECRET = `whsec_${randomBytes(24).toString("base64")}`;
const fmt = (n: number, d = 0) => n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

// --- a dedicated Redis, so commandstats deltas are this run's alone ----------------------
async function startRedis(): Promise<{ port: number; stop: () => void; dedicated: boolean }> {
  const port = await freePort();
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: "ignore" },
  );
  const failed = await new Promise<boolean>((resolve) => {
    child.once("error", () => resolve(true));
    setTimeout(() => resolve(false), 300);
  });
  if (failed) {
    console.warn("redis-server not found: using 127.0.0.1:6379 (commandstats may include other clients' commands)");
    return { port: 6379, stop: () => {}, dedicated: false };
  }
  await waitFor(() => redisCommand(port, "PING").then((r) => r.includes("PONG")), "redis-server");
  return { port, stop: () => child.kill("SIGTERM"), dedicated: true };
}

function redisCommand(port: number, ...cmd: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1");
    let out = "";
    s.on("data", (d) => {
      out += d.toString();
      const m = /^\$(\d+)\r\n/.exec(out);
      if ((m && out.length >= m[0].length + Number(m[1]) + 2) || /^[+\-:]/.test(out)) s.end();
    });
    s.on("end", () => resolve(out));
    s.on("error", reject);
    s.write(`*${cmd.length}\r\n${cmd.map((c) => `$${Buffer.byteLength(c)}\r\n${c}\r\n`).join("")}`);
  });
}

async function commandStats(port: number): Promise<Map<string, number>> {
  const info = await redisCommand(port, "INFO", "commandstats");
  const out = new Map<string, number>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out.set(m[1]!, Number(m[2]));
  return out;
}

function delta(a: Map<string, number>, b: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of b) {
    const d = v - (a.get(k) ?? 0) - (k === "info" ? 1 : 0);
    if (d > 0) out.set(k, d);
  }
  return out;
}

// --- load generator: N keep-alive connections, each sending back to back -----------------
interface Phase {
  name: string;
  requests: number;
  ok: number;
  failed: number;
  statuses: Map<number, number>;
  seconds: number;
  p50: number;
  p99: number;
  rps: number;
}

type RequestSpec = { method: string; path: string; headers?: Record<string, string>; body?: string };

async function load(
  base: URL,
  name: string,
  next: (i: number) => RequestSpec,
  connections: number,
  seconds: number,
  okStatus: number,
): Promise<Phase> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const tally = new Tally(okStatus);
  let i = 0;
  const end = tally.start + seconds * 1000;
  const one = (spec: RequestSpec) =>
    new Promise<number>((resolve) => {
      const req = http.request(
        {
          host: base.hostname,
          port: base.port,
          method: spec.method,
          path: spec.path,
          agent,
          headers: { ...spec.headers, ...(spec.body ? { "content-length": Buffer.byteLength(spec.body) } : {}) },
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        },
      );
      req.on("error", () => resolve(0));
      if (spec.body) req.write(spec.body);
      req.end();
    });
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < end) {
        const spec = next(i++);
        const t0 = performance.now();
        const status = await one(spec);
        tally.book(status, performance.now() - t0);
      }
    }),
  );
  agent.destroy();
  return tally.phase(name);
}

/** One phase's answers as they come: latencies, statuses, and how many were the expected one. */
class Tally {
  readonly start = performance.now();
  private readonly lat: number[] = [];
  private readonly statuses = new Map<number, number>();
  private ok = 0;
  private failed = 0;

  constructor(private readonly okStatus: number) {}

  book(status: number, ms?: number): void {
    if (ms !== undefined) this.lat.push(ms);
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
    if (status === this.okStatus) this.ok++;
    else this.failed++;
  }

  phase(name: string): Phase {
    const elapsed = (performance.now() - this.start) / 1000;
    const lat = this.lat.sort((a, b) => a - b);
    const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] ?? NaN;
    return {
      name,
      requests: lat.length,
      ok: this.ok,
      failed: this.failed,
      statuses: this.statuses,
      seconds: elapsed,
      p50: pct(50),
      p99: pct(99),
      rps: this.ok / elapsed,
    };
  }
}

// --- WebSocket load: N sockets, each keeping `window` frames in flight ---------------------
/**
 * Acknowledgements come in frame order, so each socket matches them to its sent times with a
 * queue. A socket the server closes with 1000 (idle, or WS_MAX_FRAMES reached) is replaced,
 * as a client would; its unacknowledged frames are not counted.
 */
async function wsLoad(
  base: URL,
  name: string,
  frame: (i: number) => string,
  sockets: number,
  seconds: number,
  window: number,
): Promise<Phase> {
  const tally = new Tally(202);
  let i = 0;
  const end = tally.start + seconds * 1000;
  const url = `${base.origin.replace(/^http/, "ws")}/ws`;
  const socket = () =>
    new Promise<void>((done) => {
      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${API_KEY}` } });
      const sent: number[] = [];
      const send = () => {
        while (ws.readyState === WebSocket.OPEN && sent.length < window && performance.now() < end) {
          sent.push(performance.now());
          ws.send(frame(i++));
        }
        if (sent.length === 0 && performance.now() >= end) ws.close(1000);
      };
      ws.on("open", send);
      ws.on("message", (data) => {
        const t0 = sent.shift()!;
        const m = JSON.parse(String(data)) as { status: string | number };
        tally.book(
          m.status === "accepted" ? 202 : typeof m.status === "number" ? m.status : 200,
          performance.now() - t0,
        );
        send();
      });
      ws.on("error", () => {
        tally.book(0);
        done();
      });
      ws.on("close", () => done());
    });
  await Promise.all(
    Array.from({ length: sockets }, async () => {
      while (performance.now() < end) await socket();
    }),
  );
  return tally.phase(name);
}

// --- request bodies ----------------------------------------------------------------------
const eventBody = (i: number) =>
  JSON.stringify({
    type: "ws.message",
    source: `client-${i % 100}`,
    connection_id: `c${i % 100}`,
    content: `message ${i}: a small chat-sized payload`,
  });

const hook = new Webhook(WH_SECRET);
function webhookRequest(i: number): RequestSpec {
  const body = JSON.stringify({ type: "invoice.paid", data: { id: `in_${i}`, amount: 4200 + i, customer: "cus_123" } });
  const id = `msg_${i}_${randomBytes(4).toString("hex")}`;
  const now = new Date();
  return {
    method: "POST",
    path: "/webhooks/bench",
    headers: {
      "content-type": "application/json",
      "webhook-id": id,
      "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
      "webhook-signature": hook.sign(id, now, body),
    },
    body,
  };
}

function batchBody(i: number): string {
  const events = Array.from({ length: BATCH }, (_, k) => ({
    type: "timer.tick",
    source: `timer-${(i * BATCH + k) % 100}`,
    timer_name: "bench",
    tick_count: i * BATCH + k,
  }));
  return JSON.stringify({ events });
}

// --- main --------------------------------------------------------------------------------
async function main() {
  const cleanups: Array<() => Promise<void> | void> = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
  };
  process.on("SIGINT", () => void cleanup().then(() => process.exit(130)));
  try {
    const redis = await startRedis();
    cleanups.push(redis.stop);
    const token = randomBytes(16).toString("hex");
    // Their own process: the load generator must not share an event loop with "Upstash".
    const standIns = await spawnStandIns({
      token,
      redisPort: redis.port,
      maxConnections: 128,
      pgHost: PG.host,
      pgPort: PG.port,
    });
    cleanups.push(() => standIns.stop());

    const dbName = `reflex_bench_ingest_${randomBytes(4).toString("hex")}`;
    const admin = new pg.Client({ ...PG, database: "postgres" });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${dbName}`);
    cleanups.push(async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      await admin.end();
    });
    const dbUrl = `postgresql://${PG.user}@${PG.host}:${PG.port}/${dbName}`;
    await migrateDatabase(dbUrl, standIns.proxyAddress);

    const prefix = `bench:${randomBytes(3).toString("hex")}`;
    const vars: Record<string, string> = {
      UPSTASH_REDIS_REST_URL: standIns.gatewayUrl,
      UPSTASH_REDIS_REST_TOKEN: token,
      DATABASE_URL: dbUrl,
      NEON_WS_PROXY: standIns.proxyAddress,
      REDIS_PREFIX: prefix,
      API_KEYS: API_KEY,
      WEBHOOK_SOURCES: JSON.stringify({ bench: { scheme: "standard-webhooks", secret: WH_SECRET } }),
      RATE_LIMIT_KEY_EVENTS: "0",
      RATE_LIMIT_SOURCE_REQUESTS: "0",
      LOG_LEVEL: "error",
      // The consumer does (almost) nothing: ingest is what is measured.
      CONSUMER_BATCH_SIZE: "1",
      CONSUMER_MAX_BATCHES: "1",
      CONSUMER_TIME_BUDGET_MS: "100",
      // One socket may send as fast as it can, as many frames as an invocation allows.
      WS_EVENTS_PER_S: "1000000",
      WS_MAX_FRAMES: "450",
    };
    const wrangler = await startWranglerDev({ vars, ready: "/health" });
    cleanups.push(() => wrangler.stop());
    const base = new URL(wrangler.url);
    console.log(
      `wrangler dev on ${base.href}, Redis ${redis.dedicated ? `dedicated :${redis.port}` : "shared :6379"}, ${SECONDS} s per phase, ${CONNECTIONS} connections\n`,
    );

    const auth = { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" };
    const single = (i: number): RequestSpec => ({ method: "POST", path: "/events", headers: auth, body: eventBody(i) });
    // Warm-up: JIT, connection pools, scripts loaded (EVALSHA hits).
    await load(base, "warm-up", () => ({ method: "GET", path: "/health" }), 8, 1, 200);
    await load(base, "warm-up", single, 8, 1, 202);
    await load(base, "warm-up", webhookRequest, 8, 1, 202);

    const results: Array<Phase & { cmds?: Map<string, number>; events: number }> = [];
    const run = async (
      name: string,
      next: (i: number) => RequestSpec,
      ok: number,
      eventsPerRequest: number,
      conns = CONNECTIONS,
    ) => {
      const before = await commandStats(redis.port);
      const r = await load(base, name, next, conns, SECONDS, ok);
      await new Promise((res) => setTimeout(res, 300)); // background work (wake-up sends) settles
      const cmds = delta(before, await commandStats(redis.port));
      results.push({ ...r, cmds, events: r.ok * eventsPerRequest });
      return r;
    };

    const health = await run("GET /health", () => ({ method: "GET", path: "/health" }), 200, 0);
    await run("POST /events", single, 202, 1);
    await run("POST /webhooks/:source (signed)", webhookRequest, 202, 1);
    await run(
      `POST /events/batch (${BATCH}/request)`,
      (i) => ({ method: "POST", path: "/events/batch", headers: auth, body: batchBody(i) }),
      202,
      BATCH,
      BATCH_CONNECTIONS,
    );

    const wsPhases: Array<[string, (i: number) => string, number, number]> = [
      [`GET /ws, 1 socket (${WINDOW} in flight)`, eventBody, 1, 1],
      [`GET /ws, 8 sockets (${WINDOW} in flight)`, eventBody, 8, 1],
      [`GET /ws, ${BATCH_CONNECTIONS} sockets, ${BATCH}/frame`, batchBody, BATCH_CONNECTIONS, BATCH],
    ];
    for (const [name, frame, sockets, perFrame] of wsPhases) {
      const before = await commandStats(redis.port);
      const r = await wsLoad(base, name, frame, sockets, SECONDS, perFrame > 1 ? 2 : WINDOW);
      await new Promise((res) => setTimeout(res, 300));
      results.push({ ...r, cmds: delta(before, await commandStats(redis.port)), events: r.ok * perFrame });
    }

    // The floor: a bare worker doing only the one Upstash round trip (bench/floor/worker.ts),
    // in its own `wrangler dev`, started once the app's phases are over.
    await wrangler.stop();
    const floorWrangler = await startWranglerDev({
      vars: { UPSTASH_REDIS_REST_URL: standIns.gatewayUrl, UPSTASH_REDIS_REST_TOKEN: token, STREAM: `${prefix}:floor` },
      config: "bench/floor/wrangler.toml",
      ready: (u) => fetch(u, { method: "POST", body: "{}" }).then((r) => r.status === 202),
    });
    cleanups.push(() => floorWrangler.stop());
    const floorBase = new URL(floorWrangler.url);
    const floorRequest = (i: number): RequestSpec => ({
      method: "POST",
      path: "/",
      headers: { "content-type": "application/json" },
      body: eventBody(i),
    });
    await load(floorBase, "warm-up", floorRequest, 8, 1, 202);
    const floor = await load(floorBase, "floor: bare worker, 1 XADD", floorRequest, CONNECTIONS, SECONDS, 202);
    results.push({ ...floor, events: 0 });

    console.log("route                                 req/s   ratio    p50 ms   p99 ms    events/s   non-2xx");
    console.log("  (for /ws, req/s counts acknowledged frames, and p50/p99 are frame-to-acknowledgement)");
    for (const r of results) {
      const ratio = r.name === "GET /health" ? "" : `${fmt((100 * r.rps) / health.rps)}%`;
      console.log(
        `${r.name.padEnd(34)} ${fmt(r.rps).padStart(8)} ${ratio.padStart(7)} ${fmt(r.p50, 2).padStart(9)} ${fmt(r.p99, 2).padStart(8)} ${(r.events ? fmt(r.events / r.seconds) : "-").padStart(11)} ${String(r.failed).padStart(9)}`,
      );
    }
    const events = results.find((r) => r.name === "POST /events")!;
    console.log(
      `\nPOST /events reaches ${fmt((100 * events.rps) / floor.rps)}% of the floor: a worker that does nothing but its one ` +
        `Upstash round trip runs at ${fmt((100 * floor.rps) / health.rps)}% of /health here.`,
    );
    console.log(
      "\nRedis commands per accepted event (INFO commandstats deltas, server-executed; scripts' inner commands included)",
    );
    for (const r of results) {
      if (!r.events || !r.cmds) continue;
      const total = [...r.cmds.values()].reduce((a, b) => a + b, 0);
      const parts = [...r.cmds]
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k} ${fmt(v / r.events, 3)}`)
        .join(", ");
      console.log(`  ${r.name.padEnd(34)} ${fmt(total / r.events, 3)}  (${parts})`);
    }
    console.log(
      "  (webhooks: the worker sends one EVALSHA per delivery; GET, XADD and SET run inside that script." +
        "\n   hincrbyfloat/eval, if present, are the request-metrics flush, not ingest.)",
    );
    const bad = results.filter((r) => r.failed);
    if (bad.length) {
      console.log("\nnon-2xx statuses:");
      for (const r of bad)
        console.log(
          `  ${r.name}: ${[...r.statuses]
            .filter(([s]) => s !== 200 && s !== 202)
            .map(([s, n]) => `${s || "conn error"} x${n}`)
            .join(", ")}`,
        );
    }
  } finally {
    await cleanup();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
