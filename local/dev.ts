/**
 * `npm run dev`: the whole system on this machine.
 *
 *  1. creates .dev.vars from .dev.vars.example when absent (never overwrites your values);
 *  2. checks that Redis and Postgres answer on localhost (prints how to start them if not);
 *  3. starts the Upstash REST gateway and the Neon WebSocket proxy (local/);
 *  4. applies migrations; 5. runs `wrangler dev` with the local queue and the
 *     scheduled-event test endpoint. Ctrl-C stops every child.
 */
import { spawn } from "node:child_process";
import { ensureDevVars, readDevVars } from "./dev-vars";
import { migrateDatabase } from "./migrate";
import { startNeonProxy } from "./neon-proxy";
import { adminUrlFor, ensureDatabase, postgresAnswers, redisAnswers, START_HINTS } from "./services";
import { startUpstashGateway } from "./upstash-gateway";

const PORT = Number(process.env.PORT ?? 8787);

async function main() {
  const added = ensureDevVars();
  if (added.length) console.log(`.dev.vars: added ${added.join(", ")}`);
  const vars = readDevVars();

  const problems: string[] = [];
  if (!(await redisAnswers())) problems.push(START_HINTS.redis);
  if (!vars.DATABASE_URL) problems.push("DATABASE_URL is empty in .dev.vars");
  else if (!(await postgresAnswers(adminUrlFor(vars.DATABASE_URL)))) problems.push(START_HINTS.postgres);
  if (problems.length) {
    console.error(problems.join("\n\n"));
    process.exit(1);
  }

  const gatewayPort = Number(new URL(vars.UPSTASH_REDIS_REST_URL).port);
  const proxyPort = Number((vars.NEON_WS_PROXY ?? "").split(":")[1]);
  const gateway = await startUpstashGateway({ port: gatewayPort, token: vars.UPSTASH_REDIS_REST_TOKEN });
  const proxy = await startNeonProxy({ port: proxyPort });
  console.log(`Upstash REST gateway  ${gateway.url}  -> redis 127.0.0.1:6379`);
  console.log(`Neon WebSocket proxy  ${proxy.address}  -> postgres 127.0.0.1:5432`);

  await ensureDatabase(vars.DATABASE_URL);
  await migrateDatabase(vars.DATABASE_URL, proxy.address);
  console.log(`migrations applied to ${new URL(vars.DATABASE_URL).pathname.slice(1)}`);

  const wrangler = spawn(
    "npx",
    [
      "wrangler",
      "dev",
      "--port",
      String(PORT),
      "--ip",
      "127.0.0.1",
      "--test-scheduled",
      "--show-interactive-dev-session=false",
    ],
    { stdio: "inherit", env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" } },
  );
  console.log(`
Reflex Edge is starting on http://127.0.0.1:${PORT}
  health:          curl http://127.0.0.1:${PORT}/health
  API reference:   http://127.0.0.1:${PORT}/docs
  run the consumer cron now:  curl "http://127.0.0.1:${PORT}/__scheduled?cron=*+*+*+*+*"
  (other crons: "*/2 * * * *" replay runner, "*/5 * * * *" DLQ sweeper; URL-encode spaces as +)
Ctrl-C stops everything.
`);

  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    wrangler.kill("SIGINT");
    await Promise.all([gateway.close(), proxy.close()]);
    process.exit(code);
  };
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));
  wrangler.on("exit", (code) => void stop(code ?? 0));
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
