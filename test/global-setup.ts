/**
 * Vitest global setup of the projects that talk to the services (workers and node, in
 * vitest.config.ts; the unit project has none). Runs in Node; when several projects declare
 * it, the first provisions and the others are given the same services, torn down after the
 * last project is done, so one `vitest run` provisions once.
 *
 * Finds or starts what the tests need (local/services.ts): the Redis and PostgreSQL that
 * answer on the usual local addresses, else a redis-server of its own on a free port and an
 * embedded, throwaway PostgreSQL. Then starts the local stand-ins on free ports in front of
 * them and builds a template database with every migration applied. Each test file makes
 * its own database from the template and its own Redis key prefix (test/support/env.ts),
 * so files are isolated from each other and from other runs on the same machine.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import type { ProvidedContext } from "vitest";
import type { TestProject } from "vitest/node";
import { migrateDatabase } from "../local/migrate";
import { startNeonProxy } from "../local/neon-proxy";
import {
  localPostgres,
  optionalSkippedLine,
  PGBOUNCER,
  type Provided,
  providePostgres,
  provideRedis,
  skipsWithout,
  withDatabase,
} from "../local/services";
import { startUpstashGateway } from "../local/upstash-gateway";
import { startFaultControl } from "./support/fault-control";
import { type PgBouncer, startPgBouncer } from "./support/pgbouncer";
import { startReceiver } from "./support/receiver";

declare module "vitest" {
  export interface ProvidedContext {
    upstashUrl: string;
    upstashToken: string;
    neonProxy: string;
    pgAdminUrl: string;
    templateDb: string;
    runId: string;
    /** "host:port" of the Redis behind the stand-ins (for tools that start their own gateway). */
    redisAddress: string;
    /** test/support/receiver.ts: controllable HTTP receiver for destination tests. */
    receiverUrl: string;
    /** test/support/fault-control.ts: private stand-in pairs with switchable faults. */
    faultControlUrl: string;
    /**
     * PgBouncer in transaction mode in front of the test server (test/support/pgbouncer.ts),
     * "postgresql://user@127.0.0.1:<port>", reached through `neonProxy` like the server; "" without it.
     */
    bouncerUrl: string;
    /** Why there is no PgBouncer ("" when there is). */
    bouncerError: string;
    /** PgBouncer is not installed and this is not CI: its tests skip (local/services.ts). */
    bouncerSkip: boolean;
  }
}

type Services = Partial<ProvidedContext>;
interface Provisioned {
  ready: Promise<{ provided: Services; teardown: () => Promise<void> }>;
  users: number;
}
// Each project imports this file through its own module runner: the shared state lives on
// globalThis, which all of them (in the one Vitest process) see.
const SHARED = Symbol.for("reflex-edge.test-services");
const shared = globalThis as { [SHARED]?: Provisioned };

export default async function setup(project: TestProject) {
  let p = shared[SHARED];
  if (!p) {
    p = { ready: provision(), users: 0 };
    shared[SHARED] = p;
    // A failed provisioning is not reused: the next project (or a rerun) tries again.
    p.ready.catch(() => {
      if (shared[SHARED] === p) delete shared[SHARED];
    });
  }
  const { provided, teardown } = await p.ready;
  p.users += 1;
  for (const [k, v] of Object.entries(provided)) project.provide(k as keyof Services, v as never);
  const mine = p;
  return async () => {
    mine.users -= 1;
    if (mine.users > 0) return;
    if (shared[SHARED] === mine) delete shared[SHARED];
    await teardown();
    // Last, so it is the run's last line: what was skipped and the command that enables it.
    const skipped = optionalSkippedLine();
    if (skipped) console.log(skipped);
  };
}

async function provision(): Promise<{ provided: Services; teardown: () => Promise<void> }> {
  // Redis first: when none can be had, the run stops here, in its first seconds.
  const started: Provided[] = [];
  const redis = await provideRedis();
  started.push(redis);
  let postgres: Provided;
  try {
    postgres = await providePostgres({ probe: localPostgres() });
  } catch (e) {
    await redis.stop();
    throw e;
  }
  started.push(postgres);
  console.log(`test services: ${redis.label}; ${postgres.label}`);

  const adminUrl = postgres.address;
  const server = new URL(adminUrl);
  const pgAt = { host: server.hostname, port: Number(server.port || 5432) };
  const [redisHost, redisPort] = redis.address.split(":");
  const admin = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };

  const runId = randomBytes(4).toString("hex");
  const token = randomBytes(16).toString("hex");
  const templateDb = `reflex_tpl_${runId}`;
  const gateway = await startUpstashGateway({ token, redisHost, redisPort: Number(redisPort) });
  // PgBouncer for the tests of Postgres scope locks behind a transaction-mode pooler: the
  // Neon stand-in routes connection strings naming its address to it.
  let bouncer: PgBouncer | undefined;
  let bouncerError = "";
  try {
    bouncer = await startPgBouncer({ ...pgAt, user: server.username || "postgres" });
  } catch (e) {
    bouncerError = (e as Error).message;
  }
  const proxy = await startNeonProxy({
    pgHost: pgAt.host,
    pgPort: pgAt.port,
    ...(bouncer ? { routes: { [`${bouncer.host}:${bouncer.port}`]: bouncer } } : {}),
  });

  await admin((c) => c.query(`CREATE DATABASE ${templateDb}`));
  await migrateDatabase(withDatabase(adminUrl, templateDb), proxy.address);

  const receiver = await startReceiver();
  const faultControl = await startFaultControl({ ...pgAt, redisHost, redisPort: Number(redisPort) });
  const provided: Services = {
    upstashUrl: gateway.url,
    upstashToken: token,
    neonProxy: proxy.address,
    pgAdminUrl: adminUrl,
    templateDb,
    runId,
    redisAddress: redis.address,
    receiverUrl: receiver.url,
    faultControlUrl: faultControl.url,
    bouncerUrl: bouncer?.url ?? "",
    bouncerError,
    bouncerSkip: skipsWithout(PGBOUNCER),
  };

  const teardown = async () => {
    await bouncer?.stop();
    await receiver.close();
    await faultControl.close();
    await gateway.close();
    await proxy.close();
    if (postgres.own) {
      // A throwaway cluster: its databases go with it.
      for (const s of started.reverse()) await s.stop();
      return;
    }
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
    for (const s of started.reverse()) await s.stop();
  };
  return { provided, teardown };
}
