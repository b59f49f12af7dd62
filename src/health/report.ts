/**
 * The figures behind GET /ready and GET /health/detailed.
 *
 * ready: can we reach what serving needs (Postgres; Redis when the backend uses it)?
 * detailed: dependency latency, per-lane stream length and consumer-group lag, pending
 * (claimed, unacknowledged) count and oldest pending age, retry backlog, DLQ size, each
 * judged against its configured threshold. Counts come through the partial indexes of
 * open events and of the DLQ (src/reads/open-counts.ts), never a count of the whole history.
 */

import { pingRedis, type Redis } from "../backends/redis/client";
import type { EventStore, InFlight } from "../backends/types";
import type { Config } from "../config";
import { listParked } from "../consume/ordered-sql";
import { type DbHandle, pingDb } from "../db/client";
import { breakerStates } from "../destinations";
import { openCounts } from "../reads/open-counts";
import { defaultTriggers } from "../triggers/registry";
import { type Indicator, type Level, probe, threshold, worst } from "./checks";

export interface Deps {
  db: DbHandle;
  /** Present when the deployment uses Redis. */
  redis?: Redis;
  store: EventStore;
}

/** Entries of each lane's pending-entries list the in-flight indicator reads at most. */
const IN_FLIGHT_SCAN = 1_000;

const unhealthy = (e: Error): Indicator => ({ status: "unhealthy", error: e.message.slice(0, 200) });

/**
 * The stream claims (Redis: the pending-entries lists; history has no row for an event until
 * its outcome): how many, the oldest delivery, and per holding consumer its events and the
 * most deliveries among them (above 1: a consumer died or timed out on that event).
 */
function inFlightIndicator(claims: InFlight[], now: Date): Indicator {
  const holders = new Map<string, { consumer: string; events: number; max_deliveries: number }>();
  let oldest = now.getTime();
  for (const c of claims) {
    const h = holders.get(c.consumer) ?? { consumer: c.consumer, events: 0, max_deliveries: 0 };
    h.events++;
    h.max_deliveries = Math.max(h.max_deliveries, c.deliveries);
    holders.set(c.consumer, h);
    oldest = Math.min(oldest, c.since.getTime());
  }
  return {
    status: "healthy",
    value: claims.length,
    oldest_delivery_age_s: Math.max(0, Math.round((now.getTime() - oldest) / 1000)),
    holders: [...holders.values()],
  };
}

export interface ReadyReport {
  status: "ready" | "unavailable";
  checks: Record<string, Indicator>;
}

export async function readiness(cfg: Config, d: Deps): Promise<ReadyReport> {
  const checks: Record<string, Indicator> = {};
  const jobs: Promise<void>[] = [
    probe(() => pingDb(d.db), cfg.HEALTH_TIMEOUT_MS, cfg.HEALTH_LATENCY_DEGRADED_MS).then(
      (i) => void (checks.postgres = i),
    ),
  ];
  if (d.redis) {
    const redis = d.redis;
    jobs.push(
      probe(() => pingRedis(redis), cfg.HEALTH_TIMEOUT_MS, cfg.HEALTH_LATENCY_DEGRADED_MS).then(
        (i) => void (checks.redis = i),
      ),
    );
  }
  await Promise.all(jobs);
  const down = Object.values(checks).some((c) => c.status === "unhealthy");
  return { status: down ? "unavailable" : "ready", checks };
}

export interface DetailedReport {
  status: Level;
  backend: EventStore["backend"];
  checked_at: string;
  indicators: Record<string, Indicator | Indicator[]>;
}

export async function detailedHealth(cfg: Config, d: Deps, now = new Date()): Promise<DetailedReport> {
  const ready = await readiness(cfg, d);
  const indicators: DetailedReport["indicators"] = { ...ready.checks };

  const redisUp = d.store.backend === "redis" && ready.checks.redis?.status !== "unhealthy";
  const [lanes, counts, claims] = await Promise.all([
    redisUp
      ? Promise.all(d.store.lanes().map((l) => d.store.laneStats(l))).catch((e: Error) => e)
      : Promise.resolve(null),
    ready.checks.postgres.status !== "unhealthy"
      ? openCounts(d.db.db, now).catch((e: Error) => e)
      : Promise.resolve(null),
    redisUp && d.store.inFlight
      ? d.store.inFlight(IN_FLIGHT_SCAN, false).catch((e: Error) => e)
      : Promise.resolve(null),
  ]);
  if (claims) indicators.in_flight = claims instanceof Error ? unhealthy(claims) : inFlightIndicator(claims, now);

  let pendingClaimed: number | null = null;
  if (lanes instanceof Error) {
    indicators.lanes = { status: "unhealthy", error: lanes.message.slice(0, 200) };
  } else if (lanes) {
    indicators.lanes = lanes.map((l) => ({
      ...threshold(l.lag ?? 0, cfg.HEALTH_LAG_DEGRADED),
      lane: l.lane,
      length: l.length,
      lag: l.lag,
      pending: l.pending,
      consumers: l.consumers,
    }));
    pendingClaimed = lanes.reduce((n, l) => n + l.pending, 0);
  }

  if (counts instanceof Error) {
    indicators.history = { status: "unhealthy", error: counts.message.slice(0, 200) };
  } else if (counts) {
    // Claimed and unacknowledged: stream entries delivered but not acknowledged (Redis), or
    // events in 'processing' (Postgres backend, and due retries on either).
    const pending = (pendingClaimed ?? 0) + counts.processing;
    indicators.pending = threshold(pending, cfg.HEALTH_PENDING_DEGRADED);
    indicators.oldest_pending_age_s = threshold(
      Math.round(counts.oldestPendingAgeSeconds),
      cfg.HEALTH_OLDEST_PENDING_DEGRADED_S,
    );
    indicators.retry_backlog = { status: "healthy", value: counts.retryBacklog };
    indicators.dlq = threshold(counts.dlq, cfg.HEALTH_DLQ_DEGRADED);
  }

  // Circuit breakers of the destinations: an open (or probing) breaker means deliveries wait;
  // each shows the event waiting longest behind it.
  if (cfg.DESTINATIONS.length && ready.checks.postgres.status !== "unhealthy") {
    const breakers = await breakerStates(d.db.db, cfg, now, { held: true }).catch((e: Error) => e);
    indicators.destinations =
      breakers instanceof Error
        ? { status: "unhealthy", error: breakers.message.slice(0, 200) }
        : breakers.map((b) => ({ status: b.state === "closed" ? "healthy" : "degraded", ...b }));
  }

  // Ordered scopes parked behind a failing head: degraded while a dead head holds its scope
  // (only an operator moves it on); a head still retrying shows, healthy.
  if (ready.checks.postgres.status !== "unhealthy") {
    const parked = await listParked(d.db.db, 100).catch((e: Error) => e);
    indicators.parked_scopes =
      parked instanceof Error
        ? { status: "unhealthy", error: parked.message.slice(0, 200) }
        : {
            status: parked.some((p) => p.status === "dlq") ? "degraded" : "healthy",
            value: parked.length,
            waiting: parked.reduce((n, p) => n + p.waiting, 0),
            scopes: parked
              .slice(0, 5)
              .map((p) => ({ scope: p.scope, head: p.eventId, error: p.error, waiting: p.waiting, status: p.status })),
          };
  }

  // Triggers off for lack of configuration (an example agent without AGENT_MODEL): shown,
  // not degrading, as they are off by design until configured.
  const off = defaultTriggers.off(cfg);
  if (off.length) indicators.triggers_off = { status: "healthy", value: off.length, triggers: off };

  const levels = Object.values(indicators)
    .flatMap((i) => (Array.isArray(i) ? i : [i]))
    .map((i) => i.status);
  return { status: worst(levels), backend: d.store.backend, checked_at: now.toISOString(), indicators };
}
