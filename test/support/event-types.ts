/**
 * Event registries for tests whose handlers derive, or whose replays copy, event types of
 * their own: the deployment's types plus `names`, each accepting any fields. Derived events
 * and replay copies are checked against the registry as ingest input is, so a test that
 * publishes "order.confirmed" declares it, as a deployment would in src/events/event-types.ts.
 */
import { z } from "zod";
import { defaultRegistry } from "../../src/events/event-types";
import type { EventRegistry } from "../../src/events/type-registry";

export function typesWith(...names: string[]): EventRegistry {
  const r = defaultRegistry();
  for (const n of names) r.register(n, z.looseObject({}));
  return r;
}
