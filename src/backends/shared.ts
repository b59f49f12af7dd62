/**
 * The parts of claiming and settling that both EventStore backends share: due retries are
 * claimed from Postgres history either way, and outcomes are recorded there either way.
 */

import type { Db } from "../db/client";
import { type ClaimedRow, claimDue, type SettleRow } from "./history-writes";
import type { ClaimedEvent, ClaimResult, DueRequest, Outcome } from "./types";

/** Due retries and expired leases, straight from history (no stream entry to acknowledge). */
export async function claimDueFromHistory(db: Db, req: DueRequest): Promise<ClaimResult> {
  const rows = await claimDue(db, req);
  return { events: rows.map(dueEvent), skipped: [], read: rows.length };
}

/** A row claimed in Postgres as handed out: from `lane` (null: a due event), no stream entry to acknowledge. */
export function claimedEvent(r: ClaimedRow, lane: string | null): ClaimedEvent {
  return { event: r.event, attempts: r.attempts, receipt: { eventId: r.event.id, lane, entryId: null } };
}

export const dueEvent = (r: ClaimedRow): ClaimedEvent => claimedEvent(r, null);

/** Outcomes as the rows of the settle statement (src/backends/history-writes.ts settleOutcomes). */
export function settleRows(outcomes: Outcome[]): SettleRow[] {
  return outcomes.map(settleRow);
}

function settleRow(o: Outcome): SettleRow {
  switch (o.status) {
    case "completed":
      return { id: o.receipt.eventId, status: "completed" };
    case "retry":
      return { id: o.receipt.eventId, status: "retry", error: o.error, retryAt: o.retryAt };
    case "defer":
      return { id: o.receipt.eventId, status: "defer", retryAt: o.retryAt };
    case "dlq":
      return { id: o.receipt.eventId, status: "dlq", error: o.error };
  }
}
