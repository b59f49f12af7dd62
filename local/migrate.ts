/**
 * Applies the Drizzle migrations in drizzle/ with the same Neon driver the worker uses.
 *
 *   npm run db:migrate                      # DATABASE_URL from the environment or .dev.vars
 *
 * For a local database (localhost / 127.0.0.1) it starts the WebSocket proxy in-process,
 * so the driver reaches Postgres exactly as it does inside the worker.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { neonConfig, Pool } from "@neondatabase/serverless";
import { drizzle } from "drizzle-orm/neon-serverless";
import { migrate } from "drizzle-orm/neon-serverless/migrator";
import ws from "ws";
import { readDevVars } from "./dev-vars";
import { startNeonProxy } from "./neon-proxy";

export const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "drizzle");

export function isLocalDatabase(url: string): boolean {
  const host = new URL(url).hostname;
  return host === "localhost" || host === "127.0.0.1" || host === "::1" || host === "[::1]";
}

/** Runs pending migrations against `url`. `proxyAddress` is a running local proxy, if any. */
export async function migrateDatabase(url: string, proxyAddress?: string): Promise<void> {
  neonConfig.webSocketConstructor = ws;
  let ownProxy: Awaited<ReturnType<typeof startNeonProxy>> | undefined;
  if (isLocalDatabase(url)) {
    if (!proxyAddress) {
      const u = new URL(url);
      ownProxy = await startNeonProxy({ pgHost: u.hostname, pgPort: Number(u.port || 5432) });
      proxyAddress = ownProxy.address;
    }
    neonConfig.wsProxy = (host, port) => `${proxyAddress}/v1?address=${host}:${port}`;
    neonConfig.useSecureWebSocket = false;
    neonConfig.pipelineTLS = false;
    neonConfig.pipelineConnect = false;
  }
  const pool = new Pool({ connectionString: url, max: 1 });
  try {
    await migrate(drizzle({ client: pool }), { migrationsFolder: MIGRATIONS_DIR });
  } finally {
    await pool.end();
    await ownProxy?.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const url = process.env.DATABASE_URL ?? readDevVars().DATABASE_URL;
  if (!url) {
    console.error("DATABASE_URL is not set (environment or .dev.vars)");
    process.exit(1);
  }
  migrateDatabase(url).then(
    () => console.log(`migrations applied to ${new URL(url).host}${new URL(url).pathname}`),
    (e) => {
      console.error("migration failed:", e instanceof Error ? e.message : e);
      process.exit(1);
    },
  );
}
