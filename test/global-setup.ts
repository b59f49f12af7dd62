/**
 * Vitest global setup (runs in Node, once per `vitest run`).
 *
 * Starts the local stand-ins on free ports in front of the real local Redis and Postgres,
 * and builds a template database with every migration applied. Each test file then makes
 * its own database from the template and its own Redis key prefix (test/support/env.ts),
 * so files are isolated from each other and from other runs on the same machine.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { migrateDatabase } from "../local/migrate";
import { startNeonProxy } from "../local/neon-proxy";
import { startUpstashGateway } from "../local/upstash-gateway";
import { startFaultControl } from "./support/fault-control";
import { startReceiver } from "./support/receiver";

const PG_HOST = process.env.PGHOST_TEST ?? "127.0.0.1";
const PG_PORT = Number(process.env.PGPORT_TEST ?? 5432);
const PG_USER = process.env.PGUSER_TEST ?? "postgres";

declare module "vitest" {
  export interface ProvidedContext {
    upstashUrl: string;
    upstashToken: string;
    neonProxy: string;
    pgAdminUrl: string;
    templateDb: string;
    runId: string;
    /** test/support/receiver.ts: controllable HTTP receiver for destination tests. */
    receiverUrl: string;
    /** test/support/fault-control.ts: private stand-in pairs with switchable faults. */
    faultControlUrl: string;
  }
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ host: PG_HOST, port: PG_PORT, user: PG_USER, database: "postgres" });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export default async function setup(project: TestProject) {
  const runId = randomBytes(4).toString("hex");
  const token = randomBytes(16).toString("hex");
  const templateDb = `reflex_tpl_${runId}`;
  const gateway = await startUpstashGateway({ token });
  const proxy = await startNeonProxy({ pgHost: PG_HOST, pgPort: PG_PORT });

  await admin((c) => c.query(`CREATE DATABASE ${templateDb}`));
  const base = `postgresql://${PG_USER}@${PG_HOST}:${PG_PORT}`;
  await migrateDatabase(`${base}/${templateDb}`, proxy.address);

  project.provide("upstashUrl", gateway.url);
  project.provide("upstashToken", token);
  project.provide("neonProxy", proxy.address);
  project.provide("pgAdminUrl", `${base}/postgres`);
  project.provide("templateDb", templateDb);
  project.provide("runId", runId);
  const receiver = await startReceiver();
  project.provide("receiverUrl", receiver.url);
  const faultControl = await startFaultControl({ host: PG_HOST, port: PG_PORT });
  project.provide("faultControlUrl", faultControl.url);

  return async () => {
    await receiver.close();
    await faultControl.close();
    await gateway.close();
    await proxy.close();
    const { rows } = await admin((c) =>
      c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1 OR datname = $2`, [
        `reflex_t_${runId}_%`,
        templateDb,
      ]),
    );
    // Every DROP DATABASE waits for a checkpoint; drops running side by side share them
    // (about 3x faster than one after another), so drop on several connections at once.
    const queue = [...rows.map((r) => r.datname)];
    await Promise.all(
      Array.from({ length: 8 }, () =>
        admin(async (c) => {
          for (let name = queue.shift(); name; name = queue.shift())
            await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        }),
      ),
    );
  };
}
