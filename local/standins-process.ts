/**
 * The two stand-ins (Upstash REST gateway, Neon WebSocket proxy) in a process of their own.
 *
 * In production Upstash and Neon are remote: their work costs the worker nothing. A
 * benchmark that ran them in its own Node process would make the load generator (or the
 * consumer under test) share one event loop with them and measure that contention instead.
 * `spawnStandIns()` gives them their own process and event loop.
 *
 *   const s = await spawnStandIns({ token, redisPort, pgHost, pgPort });
 *   s.gatewayUrl  // UPSTASH_REDIS_REST_URL
 *   s.proxyAddress // NEON_WS_PROXY
 *   await s.stop();
 *
 * Run directly (what spawnStandIns does), it starts both, prints one JSON line with their
 * addresses, and runs until SIGTERM or until its stdin closes (its parent exited).
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startNeonProxy } from "./neon-proxy";
import { startUpstashGateway } from "./upstash-gateway";

export interface StandInOptions {
  token: string;
  redisPort?: number;
  pgHost?: string;
  pgPort?: number;
  /** Gateway connections to Redis, at most. */
  maxConnections?: number;
}

export interface StandIns {
  gatewayUrl: string;
  proxyAddress: string;
  stop(): Promise<void>;
}

const SELF = fileURLToPath(import.meta.url);

export async function spawnStandIns(o: StandInOptions): Promise<StandIns> {
  const args = ["--import", "tsx", SELF, "--token", o.token];
  if (o.redisPort) args.push("--redis-port", String(o.redisPort));
  if (o.pgHost) args.push("--pg-host", o.pgHost);
  if (o.pgPort) args.push("--pg-port", String(o.pgPort));
  if (o.maxConnections) args.push("--max-connections", String(o.maxConnections));
  const child = spawn(process.execPath, args, { stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const first = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once("line", resolve);
    child.once("exit", (code) => reject(new Error(`stand-ins exited (code ${code}) before starting`)));
  });
  const { gatewayUrl, proxyAddress } = JSON.parse(first) as { gatewayUrl: string; proxyAddress: string };
  return {
    gatewayUrl,
    proxyAddress,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      token: { type: "string" },
      "redis-port": { type: "string" },
      "pg-host": { type: "string" },
      "pg-port": { type: "string" },
      "max-connections": { type: "string" },
    },
  });
  if (!values.token) throw new Error("--token is required");
  const gateway = await startUpstashGateway({
    token: values.token,
    ...(values["redis-port"] ? { redisPort: Number(values["redis-port"]) } : {}),
    ...(values["max-connections"] ? { maxConnections: Number(values["max-connections"]) } : {}),
  });
  const proxy = await startNeonProxy({
    ...(values["pg-host"] ? { pgHost: values["pg-host"] } : {}),
    ...(values["pg-port"] ? { pgPort: Number(values["pg-port"]) } : {}),
  });
  const stop = () => void Promise.all([gateway.close(), proxy.close()]).finally(() => process.exit(0));
  process.once("SIGTERM", stop);
  process.stdin.on("end", stop).resume();
  process.stdout.write(`${JSON.stringify({ gatewayUrl: gateway.url, proxyAddress: proxy.address })}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
