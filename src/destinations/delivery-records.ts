/**
 * Destination queries: delivery attempts and circuit-breaker rows (src/destinations).
 *
 * Cost: a consumer batch that delivers to destinations makes two round trips for them - one
 * to read (and create) the breaker rows, one to record every attempt and update every
 * breaker (flushDeliveries) - whatever the number of events.
 */
import { eq, sql } from "drizzle-orm";
import { alias } from "drizzle-orm/pg-core";
import type { Db } from "../db/client";
import { deliveryAttempts, destinationBreakers } from "../db/schema";
import { anyOf, arrayOf, assign, bare, columnNames, type RowOf, selection } from "../db/sql";

export type BreakerState = (typeof destinationBreakers.$inferSelect)["state"];

const breakerFields = {
  destination: destinationBreakers.destination,
  state: destinationBreakers.state,
  failures: destinationBreakers.failures,
  openedAt: destinationBreakers.openedAt,
  nextProbeAt: destinationBreakers.nextProbeAt,
  cooldownMs: destinationBreakers.cooldownMs,
  probeOwner: destinationBreakers.probeOwner,
};
const breakers = selection(breakerFields);

export type BreakerRow = RowOf<typeof breakerFields>;

export type AttemptRow = Omit<typeof deliveryAttempts.$inferSelect, "id">;

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

/** The breaker rows of `destinations`, created (closed) where missing - one statement. */
export async function loadBreakers(db: Db, destinations: string[]): Promise<BreakerRow[]> {
  if (destinations.length === 0) return [];
  const d = destinationBreakers.destination;
  const r = await db.execute(sql`
    WITH ins AS (
      INSERT INTO ${destinationBreakers} (${columnNames(d)}) SELECT unnest(${arrayOf(d, destinations)})
      ON CONFLICT (${bare(d)}) DO NOTHING
      RETURNING ${breakers.list})
    SELECT * FROM ins
    UNION ALL
    SELECT ${breakers.list} FROM ${destinationBreakers} WHERE ${anyOf(d, destinations)}`);
  return r.rows.map(breakers.read);
}

/** Breaker rows as stored (no row: never used, closed). */
export async function readBreakers(db: Db, destinations: string[]): Promise<BreakerRow[]> {
  if (destinations.length === 0) return [];
  return db.select(breakerFields).from(destinationBreakers).where(anyOf(destinationBreakers.destination, destinations));
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
  const t = destinationBreakers;
  const r = await db.execute<{ won: boolean }>(sql`
    WITH c AS (
      UPDATE ${t}
         SET ${assign(t, {
           state: sql`'half-open'`,
           probeOwner: owner,
           nextProbeAt: sql`${leaseUntil.toISOString()}::timestamptz`,
           updatedAt: sql`now()`,
         })}
       WHERE ${t.destination} = ${destination} AND ${t.state} IN ('open', 'half-open')
         AND ${t.nextProbeAt} <= ${now.toISOString()}::timestamptz
      RETURNING ${breakers.list})
    SELECT *, true AS won FROM c
    UNION ALL
    SELECT ${breakers.list}, false AS won FROM ${t}
     WHERE ${t.destination} = ${destination} AND NOT EXISTS (SELECT 1 FROM c)`);
  const x = r.rows[0];
  return { won: x?.won === true, row: x ? breakers.read(x) : undefined };
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
  policy: BreakerPolicy,
): Promise<BreakerRow[]> {
  if (attempts.length === 0 && tallies.length === 0) return [];
  const a = <T>(f: (x: AttemptRow) => T) => sql.param(attempts.map(f));
  const p = <T>(f: (x: BreakerTally) => T) => sql.param(tallies.map(f));
  const at = now.toISOString();
  const da = deliveryAttempts;
  const t = destinationBreakers;
  // cur, s and n carry a breaker row's columns (SELECT c.*, s.*), named through aliases of the table.
  const c = alias(t, "c");
  const n = alias(t, "n");
  const r = await db.execute(sql`
    WITH ins AS (
      INSERT INTO ${da} (${columnNames(
        da.eventId,
        da.destination,
        da.attempt,
        da.statusCode,
        da.error,
        da.durationMs,
        da.responseBody,
        da.probe,
        da.at,
      )})
      SELECT * FROM unnest(
        ${a((x) => x.eventId)}::uuid[], ${a((x) => x.destination)}::text[], ${a((x) => x.attempt)}::int[],
        ${a((x) => x.statusCode)}::int[], ${a((x) => x.error)}::text[], ${a((x) => Math.round(x.durationMs))}::int[],
        ${a((x) => x.responseBody)}::text[], ${a((x) => x.probe)}::boolean[], ${a((x) => x.at.toISOString())}::timestamptz[])
      RETURNING 1
    ),
    v AS (
      SELECT * FROM unnest(${p((x) => x.destination)}::text[], ${p((x) => x.successes)}::int[],
                           ${p((x) => x.trailingFailures)}::int[], ${p((x) => x.probe)}::text[])
        AS v(destination, successes, trail, probe)
    ),
    -- FOR UPDATE returns each row's latest committed version (after waiting for a concurrent
    -- flush): the tallies are folded into fresh counts, never into a stale snapshot.
    cur AS (
      SELECT * FROM ${t} WHERE ${t.destination} IN (SELECT destination FROM v) FOR UPDATE
    ),
    s AS (
      SELECT ${c}.*, v.probe AS probe_result, m.mine,
             CASE WHEN m.mine AND v.probe = 'ok' THEN 'closed'
                  WHEN m.mine AND v.probe = 'failed' THEN 'open'
                  ELSE ${c.state} END AS st,
             CASE WHEN v.successes > 0 THEN v.trail ELSE ${c.failures} + v.trail END AS nf,
             least(greatest(${c.cooldownMs}, ${policy.cooldownMs}::int) * 2, ${policy.maxCooldownMs}::int) AS doubled
        FROM cur ${c} JOIN v ON v.destination = ${c.destination},
             LATERAL (SELECT v.probe IS NOT NULL AND ${c.state} = 'half-open' AND ${c.probeOwner} = ${owner} AS mine) m
    ),
    n AS (
      SELECT s.*, (s.st = 'closed' AND s.nf >= ${policy.threshold}::int) AS trip FROM s
    )
    UPDATE ${t} SET ${assign(t, {
      state: sql`CASE WHEN n.trip THEN 'open' ELSE n.st END`,
      failures: sql`n.nf`,
      openedAt: sql`CASE WHEN n.trip THEN ${at}::timestamptz WHEN n.st = 'closed' THEN NULL ELSE ${n.openedAt} END`,
      nextProbeAt: sql`CASE
        WHEN n.trip THEN ${at}::timestamptz + ${policy.cooldownMs}::int * interval '1 millisecond'
        WHEN n.mine AND n.probe_result = 'failed' THEN ${at}::timestamptz + n.doubled * interval '1 millisecond'
        WHEN n.st = 'closed' THEN NULL
        ELSE ${n.nextProbeAt} END`,
      cooldownMs: sql`CASE
        WHEN n.trip THEN ${policy.cooldownMs}::int
        WHEN n.mine AND n.probe_result = 'failed' THEN n.doubled
        WHEN n.st = 'closed' THEN 0
        ELSE ${n.cooldownMs} END`,
      probeOwner: sql`CASE WHEN n.mine THEN NULL ELSE ${n.probeOwner} END`,
      updatedAt: sql`now()`,
    })}
    FROM n
    WHERE ${t.destination} = ${n.destination}
    RETURNING ${breakers.list}`);
  return r.rows.map(breakers.read);
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
  const da = deliveryAttempts;
  const rows = await db
    .select({
      destination: da.destination,
      attempt: da.attempt,
      statusCode: da.statusCode,
      error: da.error,
      durationMs: da.durationMs,
      responseBody: da.responseBody,
      probe: da.probe,
      at: da.at,
    })
    .from(da)
    .where(eq(da.eventId, eventId))
    .orderBy(da.at, da.id);
  return rows.map((x) => ({
    destination: x.destination,
    attempt: x.attempt,
    status_code: x.statusCode,
    error: x.error,
    duration_ms: x.durationMs,
    response_body: x.responseBody,
    probe: x.probe,
    at: x.at.toISOString(),
  }));
}
