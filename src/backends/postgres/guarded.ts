/**
 * publishGuarded on Postgres: one statement that checks the events' guard keys in
 * webhook_deliveries, records the keys of the events none of whose keys were seen, and
 * inserts those events; when any event is a conflict, nothing is written at all.
 *
 * A key recorded by a concurrent statement after this one's snapshot is invisible to the
 * check but not to the INSERT ... ON CONFLICT, which waits for it and then sees the row. Its
 * DO UPDATE applies only to an expired row, so RETURNING lists exactly the keys this
 * statement inserted or took over: a key it meant to take and does not find there was taken
 * by another. The statement then calls reflex_guard_raced() (migration 0008), which raises,
 * rolling the whole statement back, and it is run once more with a snapshot that sees the
 * key. So the keys are recorded if and only if their events are, whatever runs at the same
 * time. (Comparing the stored expiry with this statement's would not do: two statements that
 * start in the same microsecond share now(), and each would count the other's row as its own.)
 * Each statement also deletes a few expired rows (one more than it may add), so the table
 * stays about as big as one window's keys without a sweeper.
 */
import { sql } from "drizzle-orm";
import { alias } from "drizzle-orm/pg-core";
import type { Db } from "../../db/client";
import { events, webhookDeliveries } from "../../db/schema";
import { arrayOf, assign, bare, columnNames, excluded } from "../../db/sql";
import type { GuardedEvent, GuardVerdict } from "../types";
import { arrival, eventRows, type GateAnswer, gateAnswer, gateCte, gateFrom, publishedColumns } from "./queue";

const RACED = "RX001";

export interface GuardedAnswer extends GateAnswer {
  results: GuardVerdict[];
  conflict: boolean;
}

type Hit = { item: number; key: string; first: string; same: boolean };

function statement(items: GuardedEvent[], windowS: number, wakeWindowMs?: number) {
  const guards = items.flatMap((x, i) => x.guards.map((g) => ({ ...g, item: i + 1, id: x.event.id })));
  if (new Set(guards.map((g) => g.key)).size !== guards.length) throw new Error("publishGuarded: a guard key repeats");
  const col = <T>(f: (g: (typeof guards)[number]) => T) => sql.param(guards.map(f));
  const until = sql`now() + ${windowS}::float8 * interval '1 second'`;
  const stored = sql`EXISTS (SELECT 1 FROM ins)`;
  const t = webhookDeliveries;
  // The stored key row: joined in hit, and the conflicting row in take's ON CONFLICT.
  const w = alias(t, "w");
  // The guards of the events to store: every guard when no event conflicts, else none.
  const wanted = sql`g.item NOT IN (SELECT item FROM hit) AND NOT EXISTS (SELECT 1 FROM conflict)`;
  return sql`WITH g AS (
        SELECT * FROM unnest(${col((g) => g.key)}::text[], ${col((g) => g.id)}::uuid[], ${col((g) => g.digest)}::text[],
          ${col((g) => g.onMismatch)}::text[], ${col((g) => g.item)}::int[]) AS g(key, event_id, digest, mode, item)),
      hit AS (
        SELECT DISTINCT ON (g.item) g.item, g.key, ${w.eventId}::text AS first,
               (${w.digest} IS NOT DISTINCT FROM g.digest OR g.mode = 'duplicate') AS same
          FROM g JOIN ${t} ${w} ON ${w.key} = g.key AND ${w.expiresAt} > now()
         ORDER BY g.item, (${w.digest} IS NOT DISTINCT FROM g.digest OR g.mode = 'duplicate'), g.key),
      conflict AS (SELECT 1 FROM hit WHERE NOT same LIMIT 1),
      take AS (
        INSERT INTO ${t} AS ${w} (${columnNames(t.key, t.eventId, t.digest, t.expiresAt)})
        SELECT g.key, g.event_id, g.digest, ${until} FROM g WHERE ${wanted}
        ON CONFLICT (${bare(t.key)}) DO UPDATE SET ${assign(w, {
          eventId: excluded(w.eventId),
          digest: excluded(w.digest),
          expiresAt: excluded(w.expiresAt),
        })} WHERE ${w.expiresAt} <= now()
        RETURNING ${w.key} AS key),
      ins AS (
        INSERT INTO ${events} (${columnNames(...publishedColumns)})
        SELECT v.id, v.type, v.source, v.ts, v.payload::jsonb, v.meta::jsonb, v.source, ${arrival}
          FROM ${eventRows(items.map((x) => x.event))}
         WHERE v.ord NOT IN (SELECT item FROM hit) AND NOT EXISTS (SELECT 1 FROM conflict)
        ON CONFLICT (${bare(events.id)}) DO NOTHING
        RETURNING 1),
      gc AS (
        DELETE FROM ${t} WHERE ${t.key} IN (
          SELECT ${t.key} FROM ${t}
           WHERE ${t.expiresAt} < now() AND ${t.key} <> ALL(${arrayOf(
             t.key,
             guards.map((g) => g.key),
           )})
           ORDER BY ${t.expiresAt} LIMIT ${guards.length + 2}::int FOR UPDATE SKIP LOCKED)),
      ${wakeWindowMs ? gateCte(wakeWindowMs, stored) : sql`gate AS (SELECT NULL::timestamptz AS open_until WHERE false)`}
    SELECT EXISTS (SELECT 1 FROM conflict) AS conflict,
           (SELECT count(*) FROM g WHERE ${wanted}
               AND CASE WHEN g.key IN (SELECT key FROM take) THEN false ELSE reflex_guard_raced(g.key) END)::int AS raced,
           (SELECT coalesce(json_agg(hit), '[]'::json) FROM hit) AS hits,
           ${gateAnswer}`;
}

export async function insertGuarded(
  db: Pick<Db, "execute">,
  items: GuardedEvent[],
  windowS: number,
  wakeWindowMs?: number,
): Promise<GuardedAnswer> {
  const q = statement(items, windowS, wakeWindowMs);
  type Row = { conflict: boolean; hits: Hit[] | string; opened: number; left_ms: number };
  let r: { rows: Row[] };
  try {
    r = await db.execute<Row>(q);
  } catch (e) {
    if ((e as { code?: string })?.code !== RACED && (e as { cause?: { code?: string } })?.cause?.code !== RACED)
      throw e;
    r = await db.execute<Row>(q);
  }
  const row = r.rows[0]!;
  const hits = new Map<number, Hit>(
    (typeof row.hits === "string" ? (JSON.parse(row.hits) as Hit[]) : row.hits).map((h) => [h.item, h]),
  );
  const results: GuardVerdict[] = items.map((_, i) => {
    const h = hits.get(i + 1);
    if (!h) return { status: "stored" };
    return h.same ? { status: "duplicate", firstId: h.first } : { status: "conflict", firstId: h.first, key: h.key };
  });
  const gate = row.conflict || !wakeWindowMs ? { opened: false, leftMs: 0 } : gateFrom(row);
  return { results, conflict: row.conflict, ...gate };
}
