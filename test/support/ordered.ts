/**
 * Driving ordered scopes in tests (a Rig): events published one at a time, so their
 * arrival order is the order given, and consumer runs until nothing is open.
 */
import { sql } from "drizzle-orm";
import type { EventEnvelope } from "../../src/events/envelope";
import type { Rig } from "./rig";

/** Publishes one event at a time (each acknowledged before the next: a defined arrival order). */
export async function publishInOrder(r: Rig, evs: EventEnvelope[]): Promise<void> {
  for (const e of evs) await r.bundle.store.publish([e]);
}

/** Events pending or processing in history. */
export const openEvents = async (r: Rig) =>
  Number(
    (
      await r.rows<{ n: number }>(sql`select count(*)::int as n from events where status in ('pending','processing')`)
    )[0]?.n,
  );

/** Consumer runs, `parallel` at a time, until nothing is open (or `until` says stop). */
export async function drain(r: Rig, parallel = 3, until?: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    await Promise.all(Array.from({ length: parallel }, () => r.run()));
    if (until ? await until() : (await openEvents(r)) === 0) return;
    await new Promise((x) => setTimeout(x, 15));
  }
  throw new Error("did not drain within a minute");
}
