/**
 * publishGuarded on Postgres: one statement that checks the events' guard keys in
 * webhook_deliveries, records the keys of the events none of whose keys were seen, and
 * inserts those events; when any event is a conflict, nothing is written at all.
 *
 * A key recorded by a concurrent statement after this one's snapshot is invisible to the
 * check but not to the INSERT ... ON CONFLICT, which waits for it and then sees the row: the
 * statement then calls reflex_guard_raced() (migration 0008), which raises, rolling the
 * whole statement back, and it is run once more with a snapshot that sees the key. So the
 * keys are recorded if and only if their events are, whatever runs at the same time.
 * Each statement also deletes a few expired rows (one more than it may add), so the table
 * stays about as big as one window's keys without a sweeper.
 */
import { sql } from "drizzle-orm";
import type { Db } from "../../db/client";
import type { GuardedEvent, GuardVerdict } from "../types";
import { arrival, eventRows, type GateAnswer, gateAnswer, gateCte, gateFrom } from "./queue";

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
  return sql`WITH g AS (
        SELECT * FROM unnest(${col((g) => g.key)}::text[], ${col((g) => g.id)}::uuid[], ${col((g) => g.digest)}::text[],
          ${col((g) => g.onMismatch)}::text[], ${col((g) => g.item)}::int[]) AS g(key, event_id, digest, mode, item)),
      hit AS (
        SELECT DISTINCT ON (g.item) g.item, g.key, w.event_id::text AS first,
               (w.digest IS NOT DISTINCT FROM g.digest OR g.mode = 'duplicate') AS same
          FROM g JOIN webhook_deliveries w ON w.key = g.key AND w.expires_at > now()
         ORDER BY g.item, (w.digest IS NOT DISTINCT FROM g.digest OR g.mode = 'duplicate'), g.key),
      conflict AS (SELECT 1 FROM hit WHERE NOT same LIMIT 1),
      take AS (
        INSERT INTO webhook_deliveries AS w (key, event_id, digest, expires_at)
        SELECT key, event_id, digest, ${until} FROM g
         WHERE item NOT IN (SELECT item FROM hit) AND NOT EXISTS (SELECT 1 FROM conflict)
        ON CONFLICT (key) DO UPDATE SET
          event_id = CASE WHEN w.expires_at <= now() THEN EXCLUDED.event_id ELSE w.event_id END,
          digest = CASE WHEN w.expires_at <= now() THEN EXCLUDED.digest ELSE w.digest END,
          expires_at = CASE WHEN w.expires_at <= now() THEN EXCLUDED.expires_at ELSE w.expires_at END
        RETURNING key, w.expires_at = ${until} AS taken),
      ins AS (
        INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, created_at)
        SELECT v.id, v.type, v.source, v.ts, v.payload::jsonb, v.meta::jsonb, v.source, ${arrival}
          FROM ${eventRows(items.map((x) => x.event))}
         WHERE v.ord NOT IN (SELECT item FROM hit) AND NOT EXISTS (SELECT 1 FROM conflict)
        ON CONFLICT (id) DO NOTHING
        RETURNING 1),
      gc AS (
        DELETE FROM webhook_deliveries WHERE key IN (
          SELECT key FROM webhook_deliveries WHERE expires_at < now() AND key <> ALL(${col((g) => g.key)}::text[])
           ORDER BY expires_at LIMIT ${guards.length + 2}::int FOR UPDATE SKIP LOCKED)),
      ${wakeWindowMs ? gateCte(wakeWindowMs, stored) : sql`gate AS (SELECT NULL::timestamptz AS open_until WHERE false)`}
    SELECT EXISTS (SELECT 1 FROM conflict) AS conflict,
           (SELECT count(*) FROM take WHERE CASE WHEN taken THEN false ELSE reflex_guard_raced(key) END)::int AS raced,
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
