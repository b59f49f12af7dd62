/**
 * Ordered scopes in Postgres (table ordered_events), for both event backends: which events of
 * a scope are open, in arrival order, and which one is the head.
 *
 * Arrival is fixed-width text that sorts as the events arrived: a stream entry id
 * ("<ms>-<seq>", Redis) or created_at (Postgres: the publish statement's time plus the event's
 * place in it), both as 15-digit milliseconds, "-", a 10-digit sequence.
 *
 * A row is done when its event is completed or discarded, or dead-lettered without `hold`.
 * A row whose event has no history row is not done: on Redis history is written at the
 * outcome, so a claimed event not settled yet has none (every join to history is LEFT).
 * The head of a scope is its earliest row not done. Every function is one statement.
 */
import { type SQL, sql } from "drizzle-orm";
import { alias } from "drizzle-orm/pg-core";
import type { SettleStatus } from "../backends/history-writes";
import type { Db } from "../db/client";
import { type EventStatus, events, orderedEvents } from "../db/schema";
import { bare, columnNames } from "../db/sql";

const o = alias(orderedEvents, "o");
const p = alias(orderedEvents, "p");
const ev = alias(events, "ev");
const pe = alias(events, "pe");

/** A stream entry id as an arrival key. */
export function entryArrival(entryId: string): string {
  const [ms = "0", seq = "0"] = entryId.split("-");
  return `${ms.padStart(15, "0")}-${seq.padStart(10, "0")}`;
}

/** A timestamptz expression as an arrival key (microseconds: ms, then the remainder as the sequence). */
const arrivalOf = (ts: SQL | unknown): SQL =>
  sql`(lpad(floor(extract(epoch FROM ${ts}) * 1000)::bigint::text, 15, '0') || '-' ||
       lpad((floor(extract(epoch FROM ${ts}) * 1000000)::bigint % 1000)::text, 10, '0'))`;

/** The row `r` (of event `x`, LEFT JOINed) is done: nothing of its scope waits for it. No history row: not done. */
const done = (r: { hold: typeof o.hold | typeof p.hold }, x: { status: typeof ev.status | typeof pe.status }) =>
  sql`coalesce(${x.status} IN ('completed', 'discarded') OR (${x.status} = 'dlq' AND NOT ${r.hold}), false)`;

export interface OrderedItem {
  eventId: string;
  scope: string;
  /** entryArrival() of its stream entry; null: from the event's created_at. */
  arrival: string | null;
  /** The stream of that entry; null without one. */
  lane: string | null;
  /** on_dead "hold": dead-lettered, it keeps the scope parked. */
  hold: boolean;
}

export interface GateRow {
  eventId: string;
  scope: string;
  arrival: string;
  lane: string | null;
  /** Registered by this statement (it cannot run in this round). */
  fresh: boolean;
  /** An earlier row of the scope is not done. */
  behind: boolean;
  /** ... and one of those is parked (failed, or held in the DLQ). */
  parkedAhead: boolean;
}

export interface GateAnswer {
  rows: GateRow[];
  /**
   * Arrival of the oldest live event not through a first settle yet (fresh, or claimed and
   * not settled): rows without a lane may run only below it. null: none.
   */
  historyFloor: string | null;
}

/**
 * Registers the items (idempotent per scope and event) and answers, for each, where it
 * stands in its scope. Rows registered here are answered `fresh`: a concurrent statement
 * cannot see them, so their scope's order is checked again in a later round.
 */
export async function gateOrdered(db: Db, items: OrderedItem[]): Promise<GateAnswer> {
  if (items.length === 0) return { rows: [], historyFloor: null };
  const col = <T>(f: (x: OrderedItem) => T) => sql.param(items.map(f));
  const earlier = (parked: boolean) => sql`EXISTS (
      SELECT 1 FROM ${orderedEvents} AS ${p} LEFT JOIN ${events} AS ${pe} ON ${pe.id} = ${p.eventId}
       WHERE ${p.scope} = v.scope AND (${p.arrival}, ${p.eventId}) < (coalesce(${o.arrival}, v.arrival), v.event_id)
         AND NOT ${done(p, pe)}
         ${parked ? sql`AND (${p.parkedAt} IS NOT NULL OR ${pe.status} = 'dlq')` : sql``})`;
  const r = await db.execute<Record<string, unknown>>(sql`
    WITH v AS (
      SELECT u.event_id, u.scope, coalesce(u.arrival, ${arrivalOf(ev.createdAt)}) AS arrival, u.lane, u.hold
        FROM unnest(${col((x) => x.eventId)}::uuid[], ${col((x) => x.scope)}::text[], ${col((x) => x.arrival)}::text[],
                    ${col((x) => x.lane)}::text[], ${col((x) => x.hold)}::bool[]) AS u(event_id, scope, arrival, lane, hold)
        LEFT JOIN ${events} AS ${ev} ON ${ev.id} = u.event_id),
    ins AS (
      INSERT INTO ${orderedEvents} (${columnNames(orderedEvents.scope, orderedEvents.eventId, orderedEvents.arrival, orderedEvents.lane, orderedEvents.hold)})
      SELECT scope, event_id, arrival, lane, hold FROM v
      ON CONFLICT (${bare(orderedEvents.scope)}, ${bare(orderedEvents.eventId)}) DO NOTHING
      RETURNING 1),
    f AS (
      SELECT least(
        (SELECT ${events.createdAt} FROM ${events}
          WHERE ${events.status} = 'pending' AND ${events.nextRetryAt} IS NULL AND ${events.lane} IS NULL
          ORDER BY ${events.createdAt}, ${events.timestamp} LIMIT 1),
        (SELECT min(${events.createdAt}) FROM ${events}
          WHERE ${events.status} = 'processing' AND ${events.nextRetryAt} IS NULL)) AS at)
    SELECT v.event_id::text AS event_id, v.scope, coalesce(${o.arrival}, v.arrival) AS arrival,
           coalesce(${o.lane}, v.lane) AS lane, (${o.eventId} IS NULL) AS fresh,
           ${earlier(false)} AS behind, ${earlier(true)} AS parked_ahead,
           (SELECT CASE WHEN f.at IS NULL THEN NULL ELSE ${arrivalOf(sql`f.at`)} END FROM f) AS floor
      FROM v LEFT JOIN ${orderedEvents} AS ${o} ON ${o.scope} = v.scope AND ${o.eventId} = v.event_id`);
  const rows = r.rows.map((x) => ({
    eventId: String(x.event_id),
    scope: String(x.scope),
    arrival: String(x.arrival),
    lane: x.lane === null || x.lane === undefined ? null : String(x.lane),
    fresh: x.fresh === true,
    behind: x.behind === true,
    parkedAhead: x.parked_ahead === true,
  }));
  const floor = r.rows[0]?.floor;
  return { rows, historyFloor: floor === null || floor === undefined ? null : String(floor) };
}

/**
 * After a batch settled (its outcomes durable): parks the scopes whose head failed (or died
 * with hold), drops the rows that are done, and makes each touched scope's head due now if it
 * sleeps (waiting behind a head that is done now). `now` is the consumer's clock. Returns the
 * ids woken.
 */
export async function afterSettle(
  db: Db,
  settled: Array<{ eventId: string; kind: SettleStatus }>,
  now: Date,
): Promise<string[]> {
  if (settled.length === 0) return [];
  const at = now.toISOString();
  const r = await db.execute<{ id: string }>(sql`
    WITH v AS (
      SELECT * FROM unnest(${sql.param(settled.map((x) => x.eventId))}::uuid[], ${sql.param(settled.map((x) => x.kind))}::text[])
        AS v(event_id, kind)),
    park AS (
      UPDATE ${orderedEvents} AS ${o} SET ${bare(orderedEvents.parkedAt)} = coalesce(${o.parkedAt}, ${at}::timestamptz)
        FROM v WHERE ${o.eventId} = v.event_id AND (v.kind = 'retry' OR (v.kind = 'dlq' AND ${o.hold}))
      RETURNING 1),
    gone AS (
      DELETE FROM ${orderedEvents} AS ${o} USING v, ${events} AS ${ev}
       WHERE ${o.eventId} = v.event_id AND ${ev.id} = ${o.eventId} AND v.kind IN ('completed', 'dlq')
         AND ${done(o, ev)}
      RETURNING 1),
    touched AS (SELECT DISTINCT ${o.scope} AS scope FROM ${orderedEvents} AS ${o} JOIN v ON v.event_id = ${o.eventId})
    ${wakeStatement(
      sql`SELECT scope FROM touched`,
      at,
      sql`AND h.event_id NOT IN (SELECT event_id FROM v WHERE kind IN ('retry', 'dlq'))`,
    )}`);
  return r.rows.map((x) => String(x.id));
}

/**
 * UPDATE making due at `at` the head of each scope of `scopes` (a subquery) that sleeps:
 * pending, due later, and not parked (a parked head keeps its backoff). A head row locked by
 * another statement is skipped, not waited for: it is being claimed (and looks itself), or
 * settled by a consumer whose own wake-up, after its settle, sees this one's outcome.
 */
function wakeStatement(scopes: SQL, at: string, extra: SQL = sql``): SQL {
  return sql`
    UPDATE ${events} SET ${bare(events.nextRetryAt)} = ${at}::timestamptz
     WHERE ${events.id} IN (
       SELECT ${pe.id} FROM (SELECT hh.* FROM (${scopes}) AS t(scope) CROSS JOIN LATERAL (
              SELECT ${o.eventId} AS event_id, ${o.parkedAt} AS parked_at
                FROM ${orderedEvents} AS ${o} LEFT JOIN ${events} AS ${ev} ON ${ev.id} = ${o.eventId}
               WHERE ${o.scope} = t.scope AND NOT ${done(o, ev)}
               ORDER BY ${o.arrival}, ${o.eventId} LIMIT 1) AS hh) AS h
         JOIN ${events} AS ${pe} ON ${pe.id} = h.event_id
        WHERE h.parked_at IS NULL AND ${pe.status} = 'pending' AND ${pe.nextRetryAt} > ${at}::timestamptz ${extra}
        FOR UPDATE OF ${pe} SKIP LOCKED)
    RETURNING ${events.id}::text AS id`;
}

/**
 * An event taken out for good (discarded, from the DLQ or as a parked head): its ordered rows
 * go, and the next head of each of its scopes is due now instead of at its next look.
 * Answers the woken heads.
 */
export async function forgetOrdered(db: Pick<Db, "execute">, eventId: string, now: Date): Promise<string[]> {
  // The wake's look still sees the deleted rows (one snapshot); their event is discarded, so
  // they count as done, and the next row is the head.
  const r = await db.execute<{ id: string }>(sql`
    WITH gone AS (
      DELETE FROM ${orderedEvents} WHERE ${orderedEvents.eventId} = ${eventId} RETURNING ${orderedEvents.scope} AS scope)
    ${wakeStatement(sql`SELECT scope FROM gone`, now.toISOString())}`);
  return r.rows.map((x) => String(x.id));
}

/** wakeStatement for the given scopes (an operator discarded a head, a test). */
export async function wakeHeads(db: Pick<Db, "execute">, scopes: string[], now: Date): Promise<string[]> {
  if (scopes.length === 0) return [];
  const r = await db.execute<{ id: string }>(
    wakeStatement(sql`SELECT unnest(${sql.param(scopes)}::text[])`, now.toISOString()),
  );
  return r.rows.map((x) => String(x.id));
}

export interface ParkedScope {
  scope: string;
  eventId: string;
  type: string;
  source: string;
  /** The head's history status: pending (retrying), processing, or dlq (held). */
  status: EventStatus;
  attempts: number;
  error: string | null;
  parkedAt: string;
  hold: boolean;
  nextRetryAt: string | null;
  /** Open events of the scope behind the head. */
  waiting: number;
}

const headOf = (scope: SQL) => sql`
  SELECT ${o.eventId} AS event_id, ${o.parkedAt} AS parked_at, ${o.hold} AS hold
    FROM ${orderedEvents} AS ${o} LEFT JOIN ${events} AS ${ev} ON ${ev.id} = ${o.eventId}
   WHERE ${o.scope} = ${scope} AND NOT ${done(o, ev)}
   ORDER BY ${o.arrival}, ${o.eventId} LIMIT 1`;

/** Scopes whose head failed: the head, its error, how many wait behind it. `scope` narrows to one. */
export async function listParked(db: Pick<Db, "execute">, limit = 100, scope?: string): Promise<ParkedScope[]> {
  const r = await db.execute<Record<string, unknown>>(sql`
    SELECT s.scope, h.event_id::text AS event_id, h.hold, to_char(h.parked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS parked_at,
           ${events.type} AS type, ${events.source} AS source, ${events.status}::text AS status, ${events.attempts} AS attempts,
           ${events.lastError} AS error,
           to_char(${events.nextRetryAt} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS next_retry_at,
           (SELECT count(*) FROM ${orderedEvents} AS ${p} LEFT JOIN ${events} AS ${pe} ON ${pe.id} = ${p.eventId}
             WHERE ${p.scope} = s.scope AND NOT ${done(p, pe)})::int - 1 AS waiting
      FROM (SELECT DISTINCT ${orderedEvents.scope} AS scope FROM ${orderedEvents}
             WHERE ${orderedEvents.parkedAt} IS NOT NULL ${scope !== undefined ? sql`AND ${orderedEvents.scope} = ${scope}` : sql``}) AS s
      CROSS JOIN LATERAL (${headOf(sql`s.scope`)}) AS h
      JOIN ${events} ON ${events.id} = h.event_id
     WHERE h.parked_at IS NOT NULL
     ORDER BY h.parked_at, s.scope
     LIMIT ${limit}`);
  return r.rows.map((x) => ({
    scope: String(x.scope),
    eventId: String(x.event_id),
    type: String(x.type),
    source: String(x.source),
    status: String(x.status) as EventStatus,
    attempts: Number(x.attempts),
    error: x.error === null ? null : String(x.error),
    parkedAt: String(x.parked_at),
    hold: x.hold === true,
    nextRetryAt: x.next_retry_at === null ? null : String(x.next_retry_at),
    waiting: Math.max(0, Number(x.waiting)),
  }));
}

export interface ParkedCounts {
  /** Parked scopes (at most 1,000 counted). */
  parked: number;
  /** Events waiting behind their heads. */
  waiting: number;
  /** Heads held in the DLQ (on_dead "hold"): only an operator moves their scope on. */
  held: number;
}

/** Parked scopes, the events waiting behind them and the held heads (the dashboard's overview). */
export async function parkedCounts(db: Pick<Db, "execute">): Promise<ParkedCounts> {
  const all = await listParked(db, 1000);
  return {
    parked: all.length,
    waiting: all.reduce((n, x) => n + x.waiting, 0),
    held: all.filter((x) => x.status === "dlq").length,
  };
}

export type UnparkAction = "retry" | "discard";

export type UnparkResult =
  | { ok: true; eventId: string; woken: string[] }
  | { ok: false; reason: "not-parked" | "running" };

/**
 * An operator's hand on a parked scope's head: "retry" makes it due now (a dead-lettered
 * head with a fresh set of attempts); "discard" takes it out for good (status 'discarded',
 * with `reason`) and the scope resumes with the next event. A head being handled right now
 * is left alone ("running").
 */
export async function unpark(
  db: Db,
  scope: string,
  action: UnparkAction,
  now: Date,
  reason: string,
): Promise<UnparkResult> {
  const [head] = await listParked(db, 1, scope);
  if (!head) return { ok: false, reason: "not-parked" };
  const at = now.toISOString();
  const set =
    action === "retry"
      ? sql`${bare(events.status)} = 'pending', ${bare(events.nextRetryAt)} = ${at}::timestamptz,
            ${bare(events.attempts)} = CASE WHEN ${events.status} = 'dlq' THEN 0 ELSE ${events.attempts} END`
      : sql`${bare(events.status)} = 'discarded', ${bare(events.discardReason)} = ${reason},
            ${bare(events.nextRetryAt)} = NULL, ${bare(events.processedAt)} = ${at}::timestamptz`;
  const r = await db.execute(sql`
    UPDATE ${events} SET ${set}, ${bare(events.updatedAt)} = now()
     WHERE ${events.id} = ${head.eventId} AND ${events.status} IN ('pending', 'dlq')
    RETURNING 1`);
  if (!r.rows.length) return { ok: false, reason: "running" };
  if (action === "retry") return { ok: true, eventId: head.eventId, woken: [] };
  return { ok: true, eventId: head.eventId, woken: await forgetOrdered(db, head.eventId, now) };
}
