/**
 * `npm run dev`: the whole system on this machine.
 *
 *   npm run dev                        Redis + PostgreSQL when a Redis answers, else PostgreSQL alone
 *   npm run dev -- --backend redis     EVENT_BACKEND=redis (needs a Redis: says how to start one)
 *   npm run dev -- --backend postgres  EVENT_BACKEND=postgres (no Redis at all)
 *
 *  1. creates .dev.vars from .dev.vars.example when absent (never overwrites your values),
 *     and refuses to start, naming each bad variable, when the configuration is invalid;
 *  2. picks the services: the Redis on 127.0.0.1:6379 and the PostgreSQL of DATABASE_URL
 *     when they answer; when no PostgreSQL answers, an embedded one (data in .reflex/pg,
 *     kept across restarts). Non-local URLs in .dev.vars (Upstash, Neon) are used as they are.
 *     EVENT_BACKEND in .dev.vars, or --backend, decides the backend; else Redis if it answers;
 *  3. starts the stand-ins for Upstash and Neon in front of the local ones (local/);
 *  4. creates and migrates the database; 5. runs `wrangler dev` with the local queue and the
 *     scheduled-event test endpoint, on PORT (8787).
 * Ctrl-C, SIGTERM or SIGHUP stops every child (wrangler, workerd, stand-ins, PostgreSQL).
 * REFLEX_LOCAL_REDIS / REFLEX_LOCAL_POSTGRES move the probed addresses (local/services.ts).
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { configProblems } from "./config-check";
import { DEV_VARS, ensureDevVars, ROOT, readDevVars } from "./dev-vars";
import { migrateDatabase } from "./migrate";
import { type NeonProxy, startNeonProxy } from "./neon-proxy";
import {
  type Address,
  ensureDatabase,
  isLocalUrl,
  localPostgres,
  localRedis,
  type Provided,
  providePostgres,
  redisAnswers,
  redisStartCommand,
  withDatabase,
} from "./services";
import { type Gateway, startUpstashGateway } from "./upstash-gateway";
import { startWranglerDev, type WranglerDev } from "./wrangler-dev";

const PORT = Number(process.env.PORT ?? 8787);
const DATA = path.join(ROOT, ".reflex", "pg");

/** Everything started so far; stopped in reverse order, at most once. */
const running: { wrangler?: WranglerDev; gateway?: Gateway; proxy?: NeonProxy; pg?: Provided } = {};
let stopping = false;

async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    // Whatever happens below, this process is gone within five seconds (the embedded
    // PostgreSQL's process stops on its own when our end of its stdin closes).
    setTimeout(() => process.exit(code || 1), 4500).unref();
    await running.wrangler?.stop();
    await Promise.allSettled([running.gateway?.close(), running.proxy?.close()]);
    await running.pg?.stop();
    process.exit(code);
  }
  return new Promise<never>(() => {});
}

for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, () => void stop(0));

function fail(message: string): Promise<never> {
  console.error(message);
  return stop(1);
}

/** "host:port/token" -> its parts. */
function proxyParts(value: string | undefined): { port: number; token: string } | null {
  const m = /^[\w.-]+:(\d+)\/([\w-]+)$/.exec(value ?? "");
  return m ? { port: Number(m[1]), token: m[2] } : null;
}

async function main() {
  const { values } = parseArgs({ options: { backend: { type: "string" } } });
  const existed = fs.existsSync(DEV_VARS);
  const added = ensureDevVars();
  if (!existed) console.log(".dev.vars: created from .dev.vars.example, with a random token for the stand-ins");
  else if (added.length) console.log(`.dev.vars: wrote ${added.join(", ")}`);
  const vars = readDevVars();

  const asked = values.backend ?? (vars.EVENT_BACKEND || undefined);
  if (asked !== undefined && asked !== "redis" && asked !== "postgres")
    return fail(`--backend / EVENT_BACKEND must be redis or postgres, not "${asked}"`);
  const askedBy = values.backend ? `--backend ${asked}` : `EVENT_BACKEND=${asked} in .dev.vars`;

  // Redis: a real Upstash named in .dev.vars, else the local one when it answers.
  const upstashUrl = vars.UPSTASH_REDIS_REST_URL ?? "";
  const remoteRedis = upstashUrl !== "" && !isLocalUrl(upstashUrl);
  let redis: Address | null = null;
  if (!remoteRedis && asked !== "postgres" && (await redisAnswers(localRedis()))) redis = localRedis();
  if (asked === "redis" && !remoteRedis && !redis) {
    const { host, port } = localRedis();
    return fail(
      [
        `Redis is not answering on ${host}:${port} (${askedBy} needs it). Start it with:`,
        `  ${redisStartCommand()}`,
        "or run on PostgreSQL alone: npm run dev -- --backend postgres",
      ].join("\n"),
    );
  }
  const withRedis = remoteRedis || redis !== null;
  const backend = asked ?? (withRedis ? "redis" : "postgres");

  // A bad setting stops dev here, naming it, before any service starts.
  const checked: Record<string, string> = { ...vars, EVENT_BACKEND: backend };
  if (!withRedis) {
    delete checked.UPSTASH_REDIS_REST_URL;
    delete checked.UPSTASH_REDIS_REST_TOKEN;
  }
  const bad = configProblems(checked);
  if (bad.length) return fail(`.dev.vars: invalid configuration, not starting:\n  - ${bad.join("\n  - ")}`);

  // Postgres: a real Neon named in .dev.vars, else the local one, else an embedded one.
  const named = vars.DATABASE_URL;
  if (!named) return fail("DATABASE_URL is empty in .dev.vars");
  let databaseUrl = named;
  let pgLabel = `PostgreSQL ${new URL(named).host} (DATABASE_URL)`;
  if (isLocalUrl(named)) {
    const proxyAt = proxyParts(vars.NEON_WS_PROXY);
    if (!proxyAt) return fail(`NEON_WS_PROXY in .dev.vars must be host:port/token, not "${vars.NEON_WS_PROXY ?? ""}"`);
    running.pg = await providePostgres({ probe: localPostgres(named), dir: DATA });
    pgLabel = running.pg.label;
    databaseUrl = withDatabase(running.pg.address, new URL(named).pathname.slice(1));
    await ensureDatabase(databaseUrl);
    const server = new URL(running.pg.address);
    running.proxy = await startNeonProxy({
      port: proxyAt.port,
      token: proxyAt.token,
      pgHost: server.hostname,
      pgPort: Number(server.port || 5432),
    });
  }
  await migrateDatabase(databaseUrl, running.proxy?.address);

  if (redis) {
    running.gateway = await startUpstashGateway({
      port: Number(new URL(upstashUrl).port),
      token: vars.UPSTASH_REDIS_REST_TOKEN ?? "",
      redisHost: redis.host,
      redisPort: redis.port,
    });
  }

  const redisLabel = remoteRedis
    ? `Upstash ${new URL(upstashUrl).host}`
    : redis
      ? `Redis ${redis.host}:${redis.port}`
      : "";
  const services = backend === "redis" ? `${redisLabel} + ${pgLabel}` : pgLabel;
  const other = backend === "redis" ? "npm run dev -- --backend postgres" : "npm run dev -- --backend redis";
  console.log(`\nmode: EVENT_BACKEND=${backend} on ${services}. The other backend: ${other}\n`);

  // The worker's variables: .dev.vars with the services picked above. Without Redis the
  // Upstash variables are left out, so nothing in the worker tries to reach one.
  const workerVars: Record<string, string> = { ...vars, EVENT_BACKEND: backend, DATABASE_URL: databaseUrl };
  if (running.proxy) workerVars.NEON_WS_PROXY = running.proxy.address;
  if (!withRedis) {
    delete workerVars.UPSTASH_REDIS_REST_URL;
    delete workerVars.UPSTASH_REDIS_REST_TOKEN;
  }
  for (const [k, v] of Object.entries(workerVars)) if (v === "") delete workerVars[k];

  running.wrangler = await startWranglerDev({
    vars: workerVars,
    port: PORT,
    testScheduled: true,
    inheritOutput: true,
    logLevel: "log",
    graceMs: 3000,
    readyTimeoutMs: 120_000,
    // Up as soon as it answers at all: /ready (printed below) may still wait for a service.
    ready: (url) => fetch(`${url}/health`).then(() => true),
  });
  void running.wrangler.exited.then((code) => stop(code ?? 1));
  const url = running.wrangler.url;
  const ready = await fetch(`${url}/ready`).then(
    async (r) => `${r.status}${r.ok ? "" : ` ${await r.text()}`}`,
    (e: Error) => e.message,
  );
  console.log(`
Reflex Edge is running on ${url} (GET /ready: ${ready})
  health:          curl ${url}/ready
  API reference:   ${url}/docs
  a webhook:       curl -X POST ${url}/webhooks/demo -H 'content-type: application/json' -d '{"hello":"world"}'
  run the consumer cron now:  curl "${url}/__scheduled?cron=*+*+*+*+*"
  (other crons: "*/2 * * * *" replay runner, "*/5 * * * *" DLQ sweeper; URL-encode spaces as +)
Ctrl-C stops everything.
`);
}

main().catch((e) => fail(e instanceof Error ? e.message : String(e)));
