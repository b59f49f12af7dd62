/**
 * The consumer rig, for either backend: a fresh environment (own database, own Redis prefix)
 * and the deployment's own bundle (openBackend: store, scope locks, filter state, replay
 * lane) as src/consume/entry.ts builds it, with the database handle the consumer needs for
 * durable steps. Each run() is one invocation: its own consumer name and its own scope locks.
 * With `postgres` the environment has no Redis variable at all.
 */
import type { SQL } from "drizzle-orm";
import { afterEach } from "vitest";
import { type Backend, openBackend, openUpstash } from "../../src/backends";
import type { Redis } from "../../src/backends/redis/client";
import { redisKeys } from "../../src/backends/redis/keys";
import type { RedisStreamStore } from "../../src/backends/redis/store";
import type { EventStore } from "../../src/backends/types";
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

export interface Rig<B extends BackendName = BackendName> {
  backend: B;
  env: TestEnv;
  cfg: Config;
  db: DbHandle;
  bundle: Backend;
  /** The bundle's store; with `redis`, the Redis Streams store with its own methods. */
  store: [B] extends ["redis"] ? RedisStreamStore : EventStore;
  /** Upstash, when configured (always with `redis`), whatever the bundle uses it for. */
  redis: [B] extends ["redis"] ? Redis : Redis | undefined;
  keys: ReturnType<typeof redisKeys>;
  triggers: TriggerRegistry;
  /**
   * The event types the consumers check derived events and replay copies against: the
   * deployment's, plus what a test registers for its own handlers.
   */
  eventTypes: EventRegistry;
  /**
   * The consumers' clock: real time plus what advance() added. Retries back off 10 ms here
   * (EVENT_RETRY_*_DELAY, unless AS_CONFIGURED), so advance(100) makes one due; keep the
   * total under VISIBILITY_TIMEOUT_MS, as Postgres-side claim leases are set on real time and
   * compared with this clock.
   */
  clock: Clock & { advance(ms: number): void };
  run(o?: Partial<ConsumerOptions>): Promise<RunReport>;
  /** One replay-runner pass, then the replay lane drained (what the replay cron does). */
  replay(): Promise<void>;
  rows<T = Record<string, unknown>>(q: SQL): Promise<T[]>;
  close(): Promise<void>;
}

/**
 * Overrides that take back the rig's conveniences: the configuration's own retry backoff
 * (EVENT_RETRY_* defaults, not 10 ms) and no ADMIN_TOKEN. An override of `undefined`
 * restores a variable's default.
 */
export const AS_CONFIGURED = {
  EVENT_RETRY_BASE_DELAY: undefined,
  EVENT_RETRY_MAX_DELAY: undefined,
  ADMIN_TOKEN: undefined,
};

export async function rig<B extends BackendName>(backend: B, overrides: Record<string, unknown> = {}): Promise<Rig<B>> {
  const env = await freshEnv({
    EVENT_BACKEND: backend,
    VISIBILITY_TIMEOUT_MS: "1000",
    EVENT_RETRY_BASE_DELAY: "0.01",
    EVENT_RETRY_MAX_DELAY: "0.01",
    // No queue binding: wake-ups would reach the test worker's own queue consumer.
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
    store: bundle.store as Rig<B>["store"],
    redis: (bundle.redis ?? openUpstash(cfg)) as Rig<B>["redis"],
    keys: redisKeys(cfg.REDIS_PREFIX),
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
export function rigsClosedAfterEach(): <B extends BackendName>(
  backend: B,
  overrides?: Record<string, unknown>,
) => Promise<Rig<B>> {
  const open: Rig[] = [];
  afterEach(async () => {
    for (const r of open.splice(0)) await r.close();
  });
  return async (backend, overrides = {}) => {
    const r = await rig(backend, overrides);
    open.push(r);
    return r;
  };
}
