/**
 * Settling a batch: outcomes into Postgres (one upsert: the history row is written once, with
 * its outcome), then the batch's stream entries acknowledged (owed: see ./acks.ts) and DLQ
 * trail entries for the dead-lettered (now).
 */
import type { Db } from "../../db/client";
import { settleOutcomes } from "../history-writes";
import { settleRows } from "../shared";
import type { Outcome, Receipt, SettleRequest, SettleResult } from "../types";
import type { AckLedger } from "./acks";
import type { Deliveries } from "./claimed";
import type { Redis } from "./client";
import { type OutcomeRow, recordOutcomes } from "./outcome-writes";
import { dlqFields } from "./stream-entry";

export class StreamSettler {
  constructor(
    private readonly redis: Redis,
    private readonly acks: AckLedger,
    private readonly deliveries: Deliveries,
    private readonly dlq: { stream: string; maxlen: number },
  ) {}

  async settle(db: Db, req: SettleRequest): Promise<SettleResult> {
    const rows: OutcomeRow[] = [];
    // Receipts this store did not hand out (none in a consumer run): their row can only be
    // updated, as it exists while they are claimed.
    const unknown: Outcome[] = [];
    for (const o of req.outcomes) {
      const d = this.deliveries.of(o.receipt);
      if (d) rows.push(outcomeRow(o, d.event, d.attempts));
      else unknown.push(o);
    }
    this.deliveries.settled(
      req.consumer,
      req.outcomes.map((o) => o.receipt),
    );

    // Every outcome 'completed' (the usual batch): the cheaper statement, and no DLQ entries.
    if (unknown.length === 0 && rows.every((r) => r.status === "completed")) {
      const recorded = await recordOutcomes(db, req.consumer, rows, req.now, { ids: false }, req.fences);
      req.failpoints?.hit("after-persist-before-ack");
      // Acknowledge only what this consumer recorded (see below). The cheap statement counts
      // rows, not ids: if any event was taken over, acknowledge none of the batch's entries;
      // the recorded ones are reclaimed later and skipped as final, which is harmless.
      const mine = recorded === req.outcomes.length ? req.outcomes.map((o) => o.receipt) : [];
      await this.ack([...mine, ...(req.skipped ?? [])], req.now);
      return { recorded };
    }
    const [upserted, updated] = await Promise.all([
      recordOutcomes(db, req.consumer, rows, req.now, { ids: true }, req.fences),
      settleOutcomes(db, req.consumer, settleRows(unknown), req.now, req.fences),
    ]);
    req.failpoints?.hit("after-persist-before-ack");

    // An outcome that did not apply belongs to an event another consumer took over (our claim
    // outlived VISIBILITY_TIMEOUT_MS). Its stream entry is that consumer's now: XACK (which
    // acts for the whole group) would drop it from the pending list, and if that consumer then
    // died the event would wait for the sweeper instead of being reclaimed.
    const recordedSet = new Set([...upserted, ...updated]);
    const mine = req.outcomes.filter((o) => recordedSet.has(o.receipt.eventId));
    const dead = mine.filter((o) => o.status === "dlq");
    await this.ack([...mine.map((o) => o.receipt), ...(req.skipped ?? [])], req.now, dead);
    return { recorded: mine.length };
  }

  /**
   * Acknowledges the receipts' stream entries: deferred to the next read (see ./acks.ts),
   * unless DLQ entries are to be appended for `dead` (at `now`); then those and every
   * acknowledgement still owed go out now, in one pipeline.
   */
  private async ack(receipts: Receipt[], now: Date, dead: Outcome[] = []): Promise<void> {
    for (const r of receipts) if (r.lane !== null && r.entryId !== null) this.acks.defer(r.lane, [r.entryId]);
    if (dead.length === 0) return;
    const p = this.redis.pipeline();
    const at = now.toISOString();
    for (const o of dead) {
      if (o.status !== "dlq") continue;
      p.xadd(this.dlq.stream, "*", dlqFields({ ...o, at }), {
        trim: { type: "MAXLEN", comparison: "~", threshold: this.dlq.maxlen },
      });
    }
    await this.acks.sendWith(p);
  }
}

function outcomeRow(o: Outcome, event: OutcomeRow["event"], attempts: number): OutcomeRow {
  switch (o.status) {
    case "completed":
      return { event, attempts, status: "completed" };
    case "retry":
      return { event, attempts, status: "retry", error: o.error, retryAt: o.retryAt };
    case "defer":
      return { event, attempts, status: "defer", retryAt: o.retryAt };
    case "dlq":
      return { event, attempts, status: "dlq", error: o.error };
  }
}
