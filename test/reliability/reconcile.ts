/**
 * The accounting at the end of a run: every event the harness got a 2xx for must be in
 * history exactly once, completed or in the DLQ with a reason; events of refused requests
 * must be absent; nothing else may be there. History is read through the shared, healthy
 * stand-ins (the observer), never through the faulty pair.
 */
import { sql } from "drizzle-orm";
import type { EventStore } from "../../src/backends/types";
import type { DbHandle } from "../../src/db/client";
import type { Ledger } from "./client";
import { fateOf, type HandlerStats } from "./handlers";

export type HistoryRow = {
  id: string;
  status: string;
  last_error: string | null;
  source: string;
  delivery_id: string | null;
};

/** All of history, in pages (the long profile has 200,000+ rows). */
export async function readHistory(db: DbHandle): Promise<HistoryRow[]> {
  const out: HistoryRow[] = [];
  let after = "00000000-0000-0000-0000-000000000000";
  for (;;) {
    const r = await db.db.execute<HistoryRow>(sql`
      select id::text as id, status::text as status, last_error, source, payload->>'delivery_id' as delivery_id
        from events where id > ${after}::uuid order by id limit 20000`);
    out.push(...r.rows);
    if (r.rows.length < 20000) return out;
    after = r.rows[r.rows.length - 1]!.id;
  }
}

/** Open work: events not final yet, and stream entries unread or unacknowledged. */
export async function openWork(
  db: DbHandle,
  store: EventStore,
): Promise<{ open: number; pending: number; lag: number }> {
  const r = await db.db.execute<{ n: number }>(
    sql`select count(*)::int as n from events where status in ('pending', 'processing')`,
  );
  let pending = 0;
  let lag = 0;
  for (const lane of store.lanes()) {
    const s = await store.laneStats(lane);
    pending += s.pending;
    lag += s.lag ?? s.length;
  }
  return { open: r.rows[0]!.n, pending, lag };
}

export interface Reconciliation {
  accepted: number;
  completed: number;
  deadLettered: number;
  /** Accepted but not (completed | dlq with a reason): missing, stuck, or dead without a reason. */
  lost: string[];
  /** Same event stored twice (a webhook delivery with two events, two ids named for one delivery, one id twice). */
  duplicated: string[];
  /** In history but never accepted (including events of refused requests). */
  unexpected: string[];
  /** Completed without one successful handler call. */
  completedUnhandled: string[];
  /** Events whose handler always fails, yet not in the DLQ. */
  alwaysFailingNotDead: string[];
  /** Stream entries not acknowledged at the end. */
  unacknowledged: number;
  /** Dead-lettered events by why: the handler's planned fate, or deliveries without outcome (crashes, takeovers). */
  dlqWhy: Map<string, number>;
  rows: number;
}

export function reconcile(
  history: HistoryRow[],
  ledger: Ledger,
  stats: HandlerStats,
  unacknowledged: number,
): Reconciliation {
  const byId = new Map<string, HistoryRow>();
  const duplicated: string[] = [];
  const byDelivery = new Map<string, string[]>();
  for (const row of history) {
    if (byId.has(row.id)) duplicated.push(`id ${row.id} stored twice`);
    byId.set(row.id, row);
    if (row.delivery_id !== null) {
      const k = `${row.source}:${row.delivery_id}`;
      byDelivery.set(k, [...(byDelivery.get(k) ?? []), row.id]);
    }
  }
  for (const [k, ids] of byDelivery)
    if (ids.length > 1) duplicated.push(`delivery ${k} stored as ${ids.length} events`);
  for (const [k, ids] of ledger.deliveries)
    if (ids.size > 1) duplicated.push(`delivery ${k} answered with ${ids.size} different ids`);
  for (const [k, n] of ledger.deliveryAccepts) if (n > 1) duplicated.push(`delivery ${k} answered 202 ${n} times`);

  let completed = 0;
  let deadLettered = 0;
  const lost: string[] = [];
  const completedUnhandled: string[] = [];
  const alwaysFailingNotDead: string[] = [];
  const dlqWhy = new Map<string, number>();
  for (const id of ledger.accepted) {
    const row = byId.get(id);
    if (row?.status === "completed") {
      completed++;
      if (!stats.successes.has(id)) completedUnhandled.push(id);
    } else if (row?.status === "dlq" && row.last_error) {
      deadLettered++;
      const why = /no outcome after/.test(row.last_error)
        ? "deliveries without an outcome"
        : `handler failed (${fateOf(id)})`;
      dlqWhy.set(why, (dlqWhy.get(why) ?? 0) + 1);
    } else
      lost.push(`${id}: ${row ? `${row.status}${row.status === "dlq" ? " without a reason" : ""}` : "not in history"}`);
    if (row && fateOf(id) === "always" && row.status !== "dlq") alwaysFailingNotDead.push(id);
  }
  const unexpected: string[] = [];
  for (const row of history) {
    if (ledger.accepted.has(row.id)) continue;
    const why = ledger.rejected.has(row.id)
      ? "from a refused request"
      : row.delivery_id !== null && ledger.refusedDeliveries.has(`${row.source}:${row.delivery_id}`)
        ? "a forged delivery"
        : "never accepted";
    unexpected.push(`${row.id} (${why})`);
  }
  return {
    accepted: ledger.accepted.size,
    completed,
    deadLettered,
    lost,
    duplicated,
    unexpected,
    completedUnhandled,
    alwaysFailingNotDead,
    unacknowledged,
    dlqWhy,
    rows: history.length,
  };
}

/** Plain-text table: label, value. */
export function table(title: string, rows: Array<[string, string | number]>): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  const v = Math.max(...rows.map(([, x]) => String(x).length));
  const line = `+${"-".repeat(w + 2)}+${"-".repeat(v + 2)}+`;
  return [title, line, ...rows.map(([k, x]) => `| ${k.padEnd(w)} | ${String(x).padStart(v)} |`), line].join("\n");
}
