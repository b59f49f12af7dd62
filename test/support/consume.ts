/**
 * Helpers for consumer tests on the Redis backend, around the one rig (./rig.ts): publishing
 * in pipelines, and what is delivered but not acknowledged.
 */
import type { RedisStreamStore } from "../../src/backends/redis/store";
import type { EventEnvelope } from "../../src/events/envelope";
import type { Rig } from "./rig";

export { event } from "./events";

/** Publishes in pipelines of `chunk` XADDs (one request each). */
export async function publishAll(store: RedisStreamStore, events: EventEnvelope[], chunk = 1000): Promise<void> {
  for (let i = 0; i < events.length; i += chunk) await store.publish(events.slice(i, i + chunk));
}

/** Entries delivered but not acknowledged, over the store's lanes. */
export async function pendingEntries(r: Rig<"redis">): Promise<number> {
  let n = 0;
  for (const lane of r.store.lanes()) n += (await r.store.laneStats(lane)).pending;
  return n;
}
