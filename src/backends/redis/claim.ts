/**
 * Claiming a batch from a lane: read it (new entries, or a reclaim of idle ones), parse the
 * entries, park those that are not an envelope, and check the batch against history before
 * handing it out. A fresh read writes nothing: the pending-entries list is the claim, and the
 * history row is written once, at settle (see ./outcome-writes.ts). A reclaim moves
 * the claim to this consumer, so it records the batch as 'processing' for it: that row fences
 * the consumer that lost the claim.
 */
import type { Db } from "../../db/client";
import type { EventEnvelope } from "../../events/envelope";
import { type ClaimedRow, persistClaimed } from "../history-writes";
import { dueEvent } from "../shared";
import type { ClaimedEvent, ClaimRequest, ClaimResult, Receipt } from "../types";
import type { AckLedger } from "./acks";
import type { Deliveries } from "./claimed";
import type { Redis } from "./client";
import type { ConsumerGroup } from "./group";
import { seenInHistory } from "./outcome-writes";
import type { RedisScripts } from "./scripts";
import { ENTRY_FIELD, envelopeOf, fieldOf, type StreamEntry } from "./stream-entry";

export class StreamClaimer {
  constructor(
    private readonly redis: Redis,
    private readonly scripts: RedisScripts,
    private readonly group: ConsumerGroup,
    private readonly acks: AckLedger,
    private readonly deliveries: Deliveries,
    private readonly dlq: { stream: string; maxlen: number },
  ) {}

  /**
   * Reads one batch (XREADGROUP > or XAUTOCLAIM), then checks it against history in one
   * statement before returning it (claiming due events in the same statement when asked).
   * Not handed out: events history already has a row for (an outcome, a retry scheduled, a
   * claim held elsewhere), those this consumer holds already, and an event's second entry
   * in one read. The group is created on first use.
   */
  async claim(db: Db, req: ClaimRequest): Promise<ClaimResult> {
    const { entries, cursor, deliveries, backlog } = await this.group.using(req.lane, () => this.read(req));
    if (entries.length) req.failpoints?.hit("after-claim-before-persist");

    const skipped: Receipt[] = [];
    const poison: Array<{ entryId: string; raw: string | undefined }> = [];
    const byId = new Map<string, { event: EventEnvelope; receipt: Receipt; deliveries: number }>();
    entries.forEach(([entryId, fields], i) => {
      const event = envelopeOf(fields);
      if (!event) {
        poison.push({ entryId, raw: fieldOf(fields, ENTRY_FIELD) });
        return;
      }
      const receipt: Receipt = { eventId: event.id, lane: req.lane, entryId };
      // The same event twice in one read (a republish after a crash), or one this consumer
      // holds from an earlier batch: handle it once.
      if (byId.has(event.id) || this.deliveries.holds(req.consumer, event.id)) skipped.push(receipt);
      else byId.set(event.id, { event, receipt, deliveries: deliveries?.[i] ?? 1 });
    });
    if (poison.length) await this.quarantine(req.lane, poison);

    // Nothing read: no history statement to make, so no look for due events either.
    const due = entries.length ? req.due : undefined;
    const batch = [...byId.values()];
    const events: ClaimedEvent[] = [];
    let claimedDue: ClaimedRow[];
    if (req.mode === "reclaim") {
      const persisted = await persistClaimed(
        db,
        req.consumer,
        batch.map((x) => x.event),
        due,
        batch.map((x) => x.deliveries),
      );
      claimedDue = persisted.due;
      const owned = new Map(persisted.owned.map((o) => [o.id, o.attempts]));
      for (const x of batch) {
        const attempts = owned.get(x.event.id);
        if (attempts === undefined)
          skipped.push(x.receipt); // already final in history
        else events.push({ event: x.event, receipt: x.receipt, attempts });
      }
    } else {
      const r = await seenInHistory(
        db,
        req.consumer,
        batch.map((x) => x.event.id),
        due,
      );
      claimedDue = r.due;
      for (const x of batch) {
        if (r.seen.has(x.event.id)) skipped.push(x.receipt);
        else events.push({ event: x.event, receipt: x.receipt, attempts: x.deliveries });
      }
    }
    const all = [...claimedDue.map(dueEvent), ...events];
    this.deliveries.handedOut(req.consumer, all);
    return {
      events: all,
      skipped,
      read: entries.length,
      ...(cursor !== undefined ? { cursor } : {}),
      ...(due ? { due: claimedDue.length } : {}),
      ...(backlog !== undefined ? { backlog } : {}),
    };
  }

  private async read(
    req: ClaimRequest,
  ): Promise<{ entries: StreamEntry[]; cursor?: string; deliveries?: number[]; backlog?: number }> {
    const group = this.group.name;
    if (req.mode === "reclaim") {
      // Entries trimmed away while pending are dropped from the pending list by Redis itself
      // and are not returned; a reclaimed event's 'processing' row, if any, is then the
      // sweeper's concern.
      const r = await this.scripts.reclaim({
        lane: req.lane,
        group,
        consumer: req.consumer,
        minIdleMs: req.reclaimIdleMs,
        cursor: req.cursor ?? "0-0",
        count: req.max,
        withLag: req.backlogUpTo !== undefined,
      });
      return {
        entries: r.entries,
        cursor: r.cursor,
        deliveries: r.deliveries,
        ...(r.lag !== undefined ? { backlog: r.lag } : {}),
      };
    }
    // XREADGROUP, with the acknowledgements owed (see ./acks.ts) in the same script. A new
    // entry's first delivery: deliveries 1.
    const entries = await this.acks.sending((acks) =>
      this.scripts.ackThenRead({ lane: req.lane, group, consumer: req.consumer, count: req.max }, acks),
    );
    return { entries };
  }

  /** Entries that are not an envelope cannot enter history: park them in the DLQ stream, raw. */
  private async quarantine(lane: string, bad: Array<{ entryId: string; raw: string | undefined }>) {
    const p = this.redis.pipeline();
    for (const b of bad) {
      p.xadd(
        this.dlq.stream,
        "*",
        { raw: b.raw ?? "", lane, entry: b.entryId, error: "stream entry is not an event envelope" },
        { trim: { type: "MAXLEN", comparison: "~", threshold: this.dlq.maxlen } },
      );
    }
    p.xack(
      lane,
      this.group.name,
      bad.map((b) => b.entryId),
    );
    await p.exec();
  }
}
