/**
 * Events in flight as the admin API shows them: claimed and not settled. On the Redis backend
 * a claim is an entry of a lane's pending-entries list (EventStore.inFlight) and history has
 * no row for the event until its outcome; Postgres-side claims (due retries, and the Redis
 * backend's reclaimed entries) are 'processing' rows. Both are merged here, one per event.
 */
import type { EventStore, InFlight } from "../backends/types";
import type { Db } from "../db/client";
import type { EventEnvelope } from "../events/envelope";
import { processingRows, statusesOf } from "../reads/event-queries";

/** How much of each lane's pending-entries list a look at one event reads at most. */
export const PEL_SCAN = 10_000;

export interface InFlightView {
  id: string;
  type: string;
  source: string;
  timestamp: string;
  status: "processing";
  /** The consumer (invocation) holding it; null for a Postgres-side claim that names none. */
  consumer: string | null;
  /** Deliveries so far (this one included): the attempt being made. */
  deliveries: number;
  /** Its latest delivery. */
  since: string;
  /** Stream and entry id (Redis); null for a claim made in Postgres. */
  lane: string | null;
  entry_id: string | null;
}

function fromPel(x: InFlight & { event: EventEnvelope }): InFlightView {
  return {
    id: x.event.id,
    type: x.event.type,
    source: x.event.source,
    timestamp: x.event.timestamp,
    status: "processing",
    consumer: x.consumer,
    deliveries: x.deliveries,
    since: x.since.toISOString(),
    lane: x.lane,
    entry_id: x.entryId,
  };
}

/**
 * The stream's claims whose outcome history does not hold yet (an entry whose outcome is
 * durable and whose acknowledgement is still owed is not in flight), up to `perLane` per lane.
 */
async function streamClaims(store: EventStore, db: Db, perLane: number): Promise<InFlightView[]> {
  if (!store.inFlight) return [];
  const pel = (await store.inFlight(perLane)).filter((x): x is InFlight & { event: EventEnvelope } => !!x.event);
  const statuses = await statusesOf(
    db,
    pel.map((x) => x.event.id),
  );
  return pel.filter((x) => (statuses.get(x.event.id) ?? "processing") === "processing").map(fromPel);
}

/** Everything in flight, oldest delivery first, at most `limit`. */
export async function inFlightEvents(store: EventStore, db: Db, limit: number): Promise<InFlightView[]> {
  const [stream, rows] = await Promise.all([streamClaims(store, db, limit), processingRows(db, limit)]);
  const byId = new Map(stream.map((x) => [x.id, x]));
  for (const r of rows) {
    if (byId.has(r.event.id)) continue;
    byId.set(r.event.id, {
      id: r.event.id,
      type: r.event.type,
      source: r.event.source,
      timestamp: r.event.timestamp,
      status: "processing",
      consumer: r.consumer,
      deliveries: r.attempts,
      since: r.since.toISOString(),
      lane: null,
      entry_id: null,
    });
  }
  return [...byId.values()].sort((a, b) => a.since.localeCompare(b.since)).slice(0, limit);
}

/** The stream's claim of event `id` (Redis), if one is pending; with its envelope. */
export async function streamClaimOf(
  store: EventStore,
  id: string,
): Promise<{ event: EventEnvelope; view: InFlightView } | null> {
  if (!store.inFlight) return null;
  const x = (await store.inFlight(PEL_SCAN)).find((p) => p.event?.id === id);
  return x?.event ? { event: x.event, view: fromPel({ ...x, event: x.event }) } : null;
}
