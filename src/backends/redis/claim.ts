/**
 * Claiming a batch from a lane: read it (new entries, or a reclaim of idle ones), parse the
 * entries, park those that are not an envelope, and record the batch in history before
 * handing it out.
 */
import type { Db } from "../../db/client";
import { persistClaimed } from "../../db/history";
import type { EventEnvelope } from "../../events/envelope";
import { dueEvent } from "../shared";
import type { ClaimedEvent, ClaimRequest, ClaimResult, Receipt } from "../types";
import type { AckLedger } from "./acks";
import type { Redis } from "./client";
import { ENTRY_FIELD, type StreamEntry } from "./entry";
import type { ConsumerGroup } from "./group";
import type { RedisScripts } from "./scripts";

export class StreamClaimer {
  constructor(
    private readonly redis: Redis,
    private readonly scripts: RedisScripts,
    private readonly group: ConsumerGroup,
    private readonly acks: AckLedger,
    private readonly dlq: { stream: string; maxlen: number },
  ) {}

  /**
   * Reads one batch (XREADGROUP > or XAUTOCLAIM), then records it in history in one
   * statement before returning it (claiming due events in the same statement when asked).
   * The group is created on first use.
   */
  async claim(db: Db, req: ClaimRequest): Promise<ClaimResult> {
    const { entries, cursor } = await this.group.using(req.lane, () => this.read(req));
    if (entries.length) req.failpoints?.hit("after-claim-before-persist");

    const skipped: Receipt[] = [];
    const poison: Array<{ entryId: string; raw: string | undefined }> = [];
    const byId = new Map<string, { event: EventEnvelope; receipt: Receipt }>();
    for (const [entryId, fields] of entries) {
      const raw = fieldOf(fields, ENTRY_FIELD);
      const event = parseEnvelope(raw);
      if (!event) {
        poison.push({ entryId, raw });
        continue;
      }
      const receipt: Receipt = { eventId: event.id, lane: req.lane, entryId };
      // The same event twice in one read (a republish after a crash): handle it once.
      if (byId.has(event.id)) skipped.push(receipt);
      else byId.set(event.id, { event, receipt });
    }
    if (poison.length) await this.quarantine(req.lane, poison);

    // Nothing read: no history statement to make, so no look for due events either.
    const due = entries.length ? req.due : undefined;
    const persisted = await persistClaimed(
      db,
      req.consumer,
      [...byId.values()].map((x) => x.event),
      due,
    );
    const events: ClaimedEvent[] = persisted.due.map(dueEvent);
    const ownedIds = new Map(persisted.owned.map((o) => [o.id, o.attempts]));
    for (const [id, x] of byId) {
      const attempts = ownedIds.get(id);
      if (attempts === undefined)
        skipped.push(x.receipt); // already final in history
      else events.push({ ...x, attempts });
    }
    return {
      events,
      skipped,
      read: entries.length,
      ...(cursor !== undefined ? { cursor } : {}),
      ...(due ? { due: persisted.due.length } : {}),
    };
  }

  private async read(req: ClaimRequest): Promise<{ entries: StreamEntry[]; cursor?: string }> {
    const group = this.group.name;
    if (req.mode === "reclaim") {
      const r = (await this.redis.xautoclaim(req.lane, group, req.consumer, req.reclaimIdleMs, req.cursor ?? "0-0", {
        count: req.max,
      })) as [string, Array<StreamEntry | null>, string[]?];
      // Entries trimmed away while pending come back as null (or in the deleted list) and
      // are dropped from the pending list by Redis itself; their history, if any, is the
      // sweeper's concern (rows stuck in 'processing').
      return { entries: (r[1] ?? []).filter((x): x is StreamEntry => Array.isArray(x)), cursor: String(r[0]) };
    }
    // XREADGROUP, with the acknowledgements owed (see ./acks.ts) in the same script.
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

function fieldOf(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

function parseEnvelope(raw: string | undefined): EventEnvelope | undefined {
  if (raw === undefined) return undefined;
  try {
    const e = JSON.parse(raw) as EventEnvelope;
    if (e && typeof e.id === "string" && typeof e.type === "string" && typeof e.source === "string" && e.meta) return e;
  } catch {
    // fall through: not an envelope
  }
  return undefined;
}
