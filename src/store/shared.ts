/**
 * The parts of claiming and settling that both EventStore backends share: due retries are
 * claimed from Postgres history either way, and outcomes are recorded there either way.
 */
import { claimDue, type ClaimedRow, type SettleRow } from "../db/history";
import type { Db } from "../db/client";
import type { ClaimedEvent, ClaimResult, DueRequest, Outcome } from "./types";

/** Due retries and expired leases, straight from history (no stream entry to acknowledge). */
export async function claimDueFromHistory(db: Db, req: DueRequest): Promise<ClaimResult> {
  const rows = await claimDue(db, req);
  return { events: rows.map(dueEvent), skipped: [], read: rows.length };
}

/** A due event as handed out: no stream entry to acknowledge. */
export function dueEvent(r: ClaimedRow): ClaimedEvent {
  return { event: r.event, attempts: r.attempts, receipt: { eventId: r.event.id, lane: null, entryId: null } };
}

/** Outcomes as the rows of the settle statement (src/db/history.ts settleOutcomes). */
export function settleRows(outcomes: Outcome[]): SettleRow[] {
  return outcomes.map((o) => {
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
  });
}
