/**
 * A consumer rig for either backend, built from the deployment's own bundle (openBackend:
 * store, scope locks, filter state, replay lane) as src/consume/entry.ts builds it, with the
 * database handle the consumer needs for durable steps. With `postgres` the environment has
 * no Redis variable at all.
 */
import type { SQL } from "drizzle-orm";
import { afterEach } from "vitest";
import { type Backend, openBackend } from "../../src/backends";
import type { Clock } from "../../src/clock";
import { type Config, loadConfig } from "../../src/config";
import { type ConsumerOptions, type RunReport, runConsumer } from "../../src/consume/consumer";
import { type DbHandle, openDb } from "../../src/db/client";
import { defaultRegistry } from "../../src/events/event-types";
import type { EventRegistry } from "../../src/events/type-registry";
import { advanceReplays } from "../../src/jobs/replay-runner";
import { TriggerRegistry } from "../../src/triggers/registry";
import { ADMIN_TOKEN } from "./admin";
import { freshEnv, type TestEnv } from "./env";

export type BackendName = "redis" | "postgres";

export interface BackendRig {
  backend: BackendName;
  env: TestEnv;
  cfg: Config;
  db: DbHandle;
  bundle: Backend;
  triggers: TriggerRegistry;
  /**
   * The event types the consumers check derived events and replay copies against: the
   * deployment's, plus what a test registers for its own handlers.
   */
  eventTypes: EventRegistry;
  /**
   * The consumers' clock: real time plus what advance() added. Retries back off 10 ms here
   * (EVENT_RETRY_*_DELAY), so advance(100) makes one due; keep the total under
   * VISIBILITY_TIMEOUT_MS, as Postgres-side claim leases are set on real time and compared
   * with this clock.
   */
  clock: Clock & { advance(ms: number): void };
  run(o?: Partial<ConsumerOptions>): Promise<RunReport>;
  /** One replay-runner pass, then the replay lane drained (what the replay cron does). */
  replay(): Promise<void>;
  rows<T = Record<string, unknown>>(q: SQL): Promise<T[]>;
  close(): Promise<void>;
}

export async function backendRig(backend: BackendName, overrides: Record<string, unknown> = {}): Promise<BackendRig> {
  const env = await freshEnv({
    EVENT_BACKEND: backend,
    VISIBILITY_TIMEOUT_MS: "1000",
    EVENT_RETRY_BASE_DELAY: "0.01",
    EVENT_RETRY_MAX_DELAY: "0.01",
    WAKE_QUEUE: undefined,
    LOG_LEVEL: "warn",
    ADMIN_TOKEN,
    ...overrides,
  });
  if (backend === "postgres") {
    delete env.UPSTASH_REDIS_REST_URL;
    delete env.UPSTASH_REDIS_REST_TOKEN;
  }
  const cfg = loadConfig(env);
  const db = openDb(cfg);
  const bundle = openBackend(cfg, db);
  const triggers = new TriggerRegistry();
  const eventTypes = defaultRegistry();
  let offset = 0;
  const clock = { now: () => Date.now() + offset, advance: (ms: number) => void (offset += ms) };
  const run = async (o: Partial<ConsumerOptions> = {}) => {
    const locks = o.locks ?? bundle.scopeLocks();
    try {
      return await runConsumer({
        store: bundle.store,
        triggers,
        locks,
        filterState: bundle.filterState(),
        config: cfg,
        env,
        db: db.db,
        clock,
        eventTypes,
        ...o,
      });
    } finally {
      await locks.close().catch(() => {});
    }
  };
  return {
    backend,
    env,
    cfg,
    db,
    bundle,
    triggers,
    eventTypes,
    clock,
    run,
    async replay() {
      const lane = bundle.replayLane();
      await advanceReplays({ db: db.db, lane, config: cfg, eventTypes });
      await run({ lanes: [lane.name], skipDue: true });
    },
    async rows<T>(q: SQL) {
      return (await db.db.execute(q)).rows as T[];
    },
    close: () => db.close(),
  };
}

/** For a test file: `make(backend, overrides)` gives a rig that is closed after the test. */
export function rigsClosedAfterEach(): (
  backend: BackendName,
  overrides?: Record<string, unknown>,
) => Promise<BackendRig> {
  const open: BackendRig[] = [];
  afterEach(async () => {
    for (const r of open.splice(0)) await r.close();
  });
  return async (backend, overrides = {}) => {
    const r = await backendRig(backend, overrides);
    open.push(r);
    return r;
  };
}
