/**
 * Destinations: events POSTed to HTTP endpoints, declared in DESTINATIONS (src/config/destination-specs.ts),
 * run as triggers beside the code triggers (./runtime.ts), signed with Standard Webhooks and
 * recorded per attempt (./deliver.ts, ./delivery-records.ts), behind a circuit breaker per
 * destination (./breaker.ts).
 */
import type { Config } from "../config";
import type { Db } from "../db/client";
import { type BreakerState, readBreakers } from "./delivery-records";
import { oldestHeld } from "./held";

export { type Destination, parseDestinations } from "../config/destination-specs";
export { type DeliveryAttempt, deliveryAttemptsFor } from "./delivery-records";
export { type DestinationRuntime, openDestinations } from "./runtime";

export interface BreakerStatus {
  destination: string;
  state: BreakerState;
  /** Consecutive failed deliveries. */
  failures: number;
  opened_at: string | null;
  /** When the next probe may go (open), or when the running probe's claim runs out (half-open). */
  next_probe_at: string | null;
  /**
   * With `held`: the event waiting longest behind this breaker (not closed), since when (its
   * storing or the breaker's opening, the later) and for how long; null when none waits.
   * DESTINATION_MAX_HOLD_S ends such waits (the sweeper moves them to the DLQ).
   */
  oldest_held?: { event_id: string; held_since: string; held_s: number } | null;
}

/**
 * The circuit breaker of every configured destination, for health and the admin API. A
 * destination never used, or one removed from the table, reads closed. An open breaker whose
 * cool-down is over reads half-open: the next matching event is its probe.
 */
export async function breakerStates(
  db: Db,
  cfg: Pick<Config, "DESTINATIONS">,
  now: Date = new Date(),
  o: { held?: boolean } = {},
): Promise<BreakerStatus[]> {
  const names = cfg.DESTINATIONS.map((d) => d.name);
  const rows = new Map((await readBreakers(db, names)).map((r) => [r.destination, r]));
  const states = names.map((name): BreakerStatus => {
    const r = rows.get(name);
    if (!r) return { destination: name, state: "closed", failures: 0, opened_at: null, next_probe_at: null };
    const due = r.state === "open" && r.nextProbeAt !== null && r.nextProbeAt.getTime() <= now.getTime();
    return {
      destination: name,
      state: due ? "half-open" : r.state,
      failures: r.failures,
      opened_at: r.openedAt?.toISOString() ?? null,
      next_probe_at: r.nextProbeAt?.toISOString() ?? null,
    };
  });
  if (!o.held) return states;
  // One query per breaker that is not closed: none at all in the usual case.
  return Promise.all(
    states.map(async (b, i) => {
      if (b.state === "closed" || !b.opened_at) return b;
      const e = await oldestHeld(db, cfg.DESTINATIONS[i]!);
      if (!e) return { ...b, oldest_held: null };
      const since = Math.max(e.storedAt.getTime(), Date.parse(b.opened_at));
      return {
        ...b,
        oldest_held: {
          event_id: e.id,
          held_since: new Date(since).toISOString(),
          held_s: Math.max(0, Math.round((now.getTime() - since) / 1000)),
        },
      };
    }),
  );
}
