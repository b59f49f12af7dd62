/**
 * Destination queries: delivery attempts and circuit-breaker rows (src/destinations).
 *
 * Cost: a consumer batch that delivers to destinations makes two round trips for them - one
 * to read (and create) the breaker rows, one to record every attempt and update every
 * breaker (flushDeliveries) - whatever the number of events.
 */
import { sql } from "drizzle-orm";
import type { Db } from "./client";

export type BreakerState = "closed" | "open" | "half-open";

export interface BreakerRow {
  destination: string;
  state: BreakerState;
  failures: number;
  openedAt: Date | null;
  nextProbeAt: Date | null;
  cooldownMs: number;
  probeOwner: string | null;
}

export interface AttemptRow {
  eventId: string;
  destination: string;
  attempt: number;
  statusCode: number | null;
  error: string | null;
  durationMs: number;
  responseBody: string | null;
  probe: boolean;
  at: Date;
}

/** What one batch saw of a destination, for the breaker update. */
export interface BreakerTally {
  destination: string;
  /** Successful deliveries in the batch. */
  successes: number;
  /** Failures after the batch's last success (all of them when none succeeded), the probe's included. */
  trailingFailures: number;
  /** Outcome of the probe this invocation sent (it owned the half-open breaker), if any. */
  probe: "ok" | "failed" | null;
}

export interface BreakerPolicy {
  /** Consecutive failures that open a closed breaker. */
  threshold: number;
  cooldownMs: number;
  maxCooldownMs: number;
}

type RawBreaker = {
  destination: string;
  state: BreakerState;
  failures: number | string;
  opened_at: string | Date | null;
  next_probe_at: string | Date | null;
  cooldown_ms: number | string;
  probe_owner: string | null;
};

const date = (x: string | Date | null) => (x === null ? null : new Date(x));
function breaker(r: RawBreaker): BreakerRow {
  return {
    destination: r.destination,
    state: r.state,
    failures: Number(r.failures),
    openedAt: date(r.opened_at),
    nextProbeAt: date(r.next_probe_at),
    cooldownMs: Number(r.cooldown_ms),
    probeOwner: r.probe_owner,
  };
}
const COLUMNS = sql.raw(`destination, state, failures, opened_at, next_probe_at, cooldown_ms, probe_owner`);

/** The breaker rows of `names`, created (closed) where missing - one statement. */
export async function loadBreakers(db: Db, names: string[]): Promise<BreakerRow[]> {
  if (names.length === 0) return [];
  const r = await db.execute<RawBreaker>(sql`
    WITH ins AS (
      INSERT INTO destination_breakers (destination) SELECT unnest(${sql.param(names)}::text[])
      ON CONFLICT (destination) DO NOTHING
      RETURNING ${COLUMNS})
    SELECT ${COLUMNS} FROM ins
    UNION ALL
    SELECT ${COLUMNS} FROM destination_breakers WHERE destination = ANY(${sql.param(names)}::text[])`);
  return r.rows.map(breaker);
}

/** Breaker rows as stored (no row: never used, closed). */
export async function readBreakers(db: Db, names: string[]): Promise<BreakerRow[]> {
  if (names.length === 0) return [];
  const r = await db.execute<RawBreaker>(sql`
    SELECT ${COLUMNS} FROM destination_breakers WHERE destination = ANY(${sql.param(names)}::text[])`);
  return r.rows.map(breaker);
}

/**
 * Tries to become the one prober of an open breaker whose cool-down is over (or of a
 * half-open one whose prober's lease ran out). Returns the row as it is afterwards and
 * whether we won; the row lock makes exactly one concurrent caller win.
 */
export async function claimProbe(
  db: Db,
  destination: string,
  owner: string,
  now: Date,
  leaseUntil: Date,
): Promise<{ won: boolean; row: BreakerRow | undefined }> {
  const r = await db.execute<RawBreaker & { won: boolean }>(sql`
    WITH c AS (
      UPDATE destination_breakers
         SET state = 'half-open', probe_owner = ${owner}, next_probe_at = ${leaseUntil.toISOString()}::timestamptz,
             updated_at = now()
       WHERE destination = ${destination} AND state IN ('open', 'half-open')
         AND next_probe_at <= ${now.toISOString()}::timestamptz
      RETURNING ${COLUMNS})
    SELECT ${COLUMNS}, true AS won FROM c
    UNION ALL
    SELECT ${COLUMNS}, false AS won FROM destination_breakers
     WHERE destination = ${destination} AND NOT EXISTS (SELECT 1 FROM c)`);
  const x = r.rows[0];
  return { won: x?.won === true, row: x ? breaker(x) : undefined };
}

/**
 * Records a batch's attempts (one multi-row insert) and folds its tallies into the breakers,
 * in ONE statement. The breaker update reads the row as it is when locked, so concurrent
 * invocations' tallies add up:
 *  - the owner's probe result: ok closes the breaker, failed reopens it with the cool-down
 *    doubled (up to the maximum);
 *  - consecutive failures: the tally's trailing failures, added to the stored count unless
 *    the batch saw a success; a closed breaker reaching the threshold opens for the base
 *    cool-down;
 *  - while open or half-open under another invocation's probe, only the count moves.
 */
export async function flushDeliveries(
  db: Db,
  owner: string,
  attempts: AttemptRow[],
  tallies: BreakerTally[],
  now: Date,
  p: BreakerPolicy,
): Promise<BreakerRow[]> {
  if (attempts.length === 0 && tallies.length === 0) return [];
  const a = <T>(f: (x: AttemptRow) => T) => sql.param(attempts.map(f));
  const t = <T>(f: (x: BreakerTally) => T) => sql.param(tallies.map(f));
  const at = now.toISOString();
  const r = await db.execute<RawBreaker>(sql`
    WITH ins AS (
      INSERT INTO delivery_attempts (event_id, destination, attempt, status_code, error, duration_ms, response_body, probe, at)
      SELECT * FROM unnest(
        ${a((x) => x.eventId)}::uuid[], ${a((x) => x.destination)}::text[], ${a((x) => x.attempt)}::int[],
        ${a((x) => x.statusCode)}::int[], ${a((x) => x.error)}::text[], ${a((x) => Math.round(x.durationMs))}::int[],
        ${a((x) => x.responseBody)}::text[], ${a((x) => x.probe)}::boolean[], ${a((x) => x.at.toISOString())}::timestamptz[])
      RETURNING 1
    ),
    v AS (
      SELECT * FROM unnest(${t((x) => x.destination)}::text[], ${t((x) => x.successes)}::int[],
                           ${t((x) => x.trailingFailures)}::int[], ${t((x) => x.probe)}::text[])
        AS v(destination, successes, trail, probe)
    ),
    -- FOR UPDATE returns each row's latest committed version (after waiting for a concurrent
    -- flush): the tallies are folded into fresh counts, never into a stale snapshot.
    cur AS (
      SELECT * FROM destination_breakers WHERE destination IN (SELECT destination FROM v) FOR UPDATE
    ),
    s AS (
      SELECT c.*, v.probe AS probe_result, m.mine,
             CASE WHEN m.mine AND v.probe = 'ok' THEN 'closed'
                  WHEN m.mine AND v.probe = 'failed' THEN 'open'
                  ELSE c.state END AS st,
             CASE WHEN v.successes > 0 THEN v.trail ELSE c.failures + v.trail END AS nf,
             least(greatest(c.cooldown_ms, ${p.cooldownMs}::int) * 2, ${p.maxCooldownMs}::int) AS doubled
        FROM cur c JOIN v USING (destination),
             LATERAL (SELECT v.probe IS NOT NULL AND c.state = 'half-open' AND c.probe_owner = ${owner} AS mine) m
    ),
    n AS (
      SELECT s.*, (s.st = 'closed' AND s.nf >= ${p.threshold}::int) AS trip FROM s
    )
    UPDATE destination_breakers AS b SET
      state = CASE WHEN n.trip THEN 'open' ELSE n.st END,
      failures = n.nf,
      opened_at = CASE WHEN n.trip THEN ${at}::timestamptz WHEN n.st = 'closed' THEN NULL ELSE n.opened_at END,
      next_probe_at = CASE
        WHEN n.trip THEN ${at}::timestamptz + ${p.cooldownMs}::int * interval '1 millisecond'
        WHEN n.mine AND n.probe_result = 'failed' THEN ${at}::timestamptz + n.doubled * interval '1 millisecond'
        WHEN n.st = 'closed' THEN NULL
        ELSE n.next_probe_at END,
      cooldown_ms = CASE
        WHEN n.trip THEN ${p.cooldownMs}::int
        WHEN n.mine AND n.probe_result = 'failed' THEN n.doubled
        WHEN n.st = 'closed' THEN 0
        ELSE n.cooldown_ms END,
      probe_owner = CASE WHEN n.mine THEN NULL ELSE n.probe_owner END,
      updated_at = now()
    FROM n
    WHERE b.destination = n.destination
    RETURNING b.destination, b.state, b.failures, b.opened_at, b.next_probe_at, b.cooldown_ms, b.probe_owner`);
  return r.rows.map(breaker);
}

export interface DeliveryAttempt {
  destination: string;
  attempt: number;
  status_code: number | null;
  error: string | null;
  duration_ms: number;
  /** Truncated to a few KiB. */
  response_body: string | null;
  /** This attempt was a circuit-breaker probe (a failed probe does not count as an attempt). */
  probe: boolean;
  at: string;
}

/** Every delivery attempt of one event, oldest first (admin API: GET /events/:id). */
export async function deliveryAttemptsFor(db: Db, eventId: string): Promise<DeliveryAttempt[]> {
  const r = await db.execute<Omit<DeliveryAttempt, "at"> & { at: string | Date }>(sql`
    SELECT destination, attempt, status_code, error, duration_ms, response_body, probe, at
      FROM delivery_attempts WHERE event_id = ${eventId}::uuid
     ORDER BY at, id`);
  return r.rows.map((x) => ({
    destination: x.destination,
    attempt: Number(x.attempt),
    status_code: x.status_code === null ? null : Number(x.status_code),
    error: x.error,
    duration_ms: Number(x.duration_ms),
    response_body: x.response_body,
    probe: x.probe,
    at: new Date(x.at).toISOString(),
  }));
}
