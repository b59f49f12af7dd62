/**
 * A DLQ-sweeper rig for a test file: `make(overrides)` gives the consumer rig (Redis backend),
 * its stream lanes and `run(o)`, one sweep with the rig's configuration; rigs are closed
 * after each test.
 */
import { afterEach } from "vitest";
import { RedisLanes } from "../../src/backends/redis/lanes";
import { type SweepOptions, sweep } from "../../src/jobs/dlq-sweeper";
import { AS_CONFIGURED, type Rig, rig } from "./rig";

export function sweepRigsClosedAfterEach() {
  const open: Rig<"redis">[] = [];
  afterEach(async () => {
    while (open.length) await open.pop()!.close();
  });
  return async (overrides: Record<string, unknown> = {}) => {
    const r = await rig("redis", { ...AS_CONFIGURED, ...overrides });
    open.push(r);
    const lanes = new RedisLanes(r.redis, r.cfg.REDIS_PREFIX);
    const run = (o: Partial<SweepOptions> = {}) => sweep({ db: r.db.db, store: r.store, lanes, config: r.cfg, ...o });
    return { r, lanes, run };
  };
}
