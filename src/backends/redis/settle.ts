/**
 * Settling a batch: outcomes into Postgres (one statement), then the batch's stream entries
 * acknowledged (owed: see ./acks.ts) and DLQ trail entries for the dead-lettered (now).
 */
import type { Db } from "../../db/client";
import { settleCompleted, settleOutcomes } from "../../db/history";
import { settleRows } from "../shared";
import type { Outcome, Receipt, SettleRequest, SettleResult } from "../types";
import type { AckLedger } from "./acks";
import type { Redis } from "./client";
import { dlqFields } from "./entry";

export class StreamSettler {
  constructor(
    private readonly redis: Redis,
    private readonly acks: AckLedger,
    private readonly dlq: { stream: string; maxlen: number },
  ) {}

  async settle(db: Db, req: SettleRequest): Promise<SettleResult> {
    // Every outcome 'completed' (the usual batch): the cheaper statement, and no DLQ entries.
    if (req.outcomes.every((o) => o.status === "completed")) {
      const recorded = await settleCompleted(
        db,
        req.consumer,
        req.outcomes.map((o) => o.receipt.eventId),
        req.now,
        req.fences,
      );
      req.failpoints?.hit("after-persist-before-ack");
      // Acknowledge only what this consumer recorded (see below). The cheap statement counts
      // rows, not ids: if any event was taken over, acknowledge none of the batch's entries;
      // the recorded ones are reclaimed later and skipped as final, which is harmless.
      const mine = recorded === req.outcomes.length ? req.outcomes.map((o) => o.receipt) : [];
      await this.ack([...mine, ...(req.skipped ?? [])], req.now);
      return { recorded };
    }
    const rows = settleRows(req.outcomes);
    const recorded = await settleOutcomes(db, req.consumer, rows, req.now, req.fences);
    req.failpoints?.hit("after-persist-before-ack");

    // An outcome that did not apply belongs to an event another consumer took over (our claim
    // outlived VISIBILITY_TIMEOUT_MS). Its stream entry is that consumer's now: XACK (which
    // acts for the whole group) would drop it from the pending list, and if that consumer then
    // died the event would wait for the sweeper instead of being reclaimed.
    const recordedSet = new Set(recorded);
    const mine = req.outcomes.filter((o) => recordedSet.has(o.receipt.eventId));
    const dead = mine.filter((o) => o.status === "dlq");
    await this.ack([...mine.map((o) => o.receipt), ...(req.skipped ?? [])], req.now, dead);
    return { recorded: recorded.length };
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
