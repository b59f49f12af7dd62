/**
 * Publishing to the shard streams. Each XADD trims approximately in the same command, so a
 * stream's length is bounded without an upkeep pass.
 */
import type { Config } from "../../config";
import type { EventEnvelope } from "../../events/envelope";
import type {
  Dedupe,
  DedupedReceipt,
  GuardedEvent,
  GuardedReceipt,
  GuardVerdict,
  PublishOptions,
  PublishReceipt,
} from "../types";
import type { Redis } from "./client";
import { type RedisKeys, shardOf } from "./keys";
import type { RedisScripts, StreamTrim } from "./scripts";
import { ENTRY_FIELD, eventFields } from "./stream-entry";

export type PublishConfig = Pick<Config, "STREAM_SHARDS" | "STREAM_MAXLEN"> &
  Partial<Pick<Config, "STREAM_RETENTION_S">>;

export class StreamPublisher {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly scripts: RedisScripts,
    private readonly cfg: PublishConfig,
  ) {}

  /** Events of one scope share a shard stream, so their order there is their order of arrival. */
  streamFor(e: EventEnvelope): string {
    return this.keys.stream(shardOf(e.source, this.cfg.STREAM_SHARDS));
  }

  /**
   * Approximate trimming done by every XADD: by age (MINID ~ now minus STREAM_RETENTION_S)
   * when that is set, else by length (MAXLEN ~ STREAM_MAXLEN).
   */
  private trim(): StreamTrim {
    const retention = this.cfg.STREAM_RETENTION_S;
    return retention
      ? { type: "MINID", threshold: String(Date.now() - retention * 1000) }
      : { type: "MAXLEN", threshold: this.cfg.STREAM_MAXLEN };
  }

  /**
   * One XADD per event, all in one pipeline (one HTTP request). With `wakeWindowMs`, the
   * wake-up gate rides in the same pipeline: SET wake NX PX (did this publish open a
   * window?) and PTTL (how long until the next may), so debouncing costs no round trip.
   */
  async publish(events: EventEnvelope[], opts: PublishOptions = {}): Promise<PublishReceipt> {
    const ask = opts.wakeWindowMs !== undefined && opts.wakeWindowMs > 0;
    if (events.length === 0) return { wake: false, wakeWindowLeftMs: 0 };
    const trim = { ...this.trim(), comparison: "~" as const };
    if (events.length === 1 && !ask) {
      // The usual single-event publish: one plain command. (A Pipeline object is a few
      // hundred closures to build; this path is most of ingest's traffic.)
      const e = events[0]!;
      await this.redis.xadd(this.streamFor(e), "*", eventFields(e), { trim });
      return { wake: false, wakeWindowLeftMs: 0 };
    }
    const p = this.redis.pipeline();
    for (const e of events) p.xadd(this.streamFor(e), "*", eventFields(e), { trim });
    if (ask) {
      p.set(this.keys.wake, "1", { nx: true, px: opts.wakeWindowMs! });
      p.pttl(this.keys.wake);
    }
    const r = (await p.exec()) as unknown[];
    if (!ask) return { wake: false, wakeWindowLeftMs: 0 };
    return { wake: r[events.length] === "OK", wakeWindowLeftMs: Math.max(0, Number(r[events.length + 1])) };
  }

  /**
   * publish() of one event guarded by a dedupe key, as one script (one command, one round
   * trip, atomic): GET the key -> duplicate; else XADD, then SET key = event id EX window.
   * The key exists if and only if the XADD happened, whatever fails when: had we SET NX
   * first and XADDed after, a failure in between would leave a key that makes the
   * provider's retry a "duplicate" of an event that was never stored. If the answer is
   * lost after the script ran, the retry finds the key and gets the first id - correct,
   * since that event is in the stream.
   */
  async publishOnce(event: EventEnvelope, dedupe: Dedupe, opts: PublishOptions = {}): Promise<DedupedReceipt> {
    const r = await this.scripts.publishOnce(
      { dedupe: this.keys.dedupe(dedupe.key), stream: this.streamFor(event), wake: this.keys.wake },
      {
        eventId: event.id,
        dedupeWindowS: dedupe.windowS,
        envelopeJson: JSON.stringify(event),
        trim: this.trim(),
        wakeWindowMs: opts.wakeWindowMs && opts.wakeWindowMs > 0 ? opts.wakeWindowMs : 0,
        entryField: ENTRY_FIELD,
      },
    );
    return r.duplicate ? { ...r, wake: false, wakeWindowLeftMs: 0 } : r;
  }

  /**
   * Events guarded by keys (client ids, webhook delivery ids and body digests), as one
   * script (./scripts/publish-guarded.lua): the events none of whose keys were seen are
   * appended and their keys recorded; a conflict anywhere appends nothing.
   */
  async publishGuarded(items: GuardedEvent[], windowS: number, opts: PublishOptions = {}): Promise<GuardedReceipt> {
    if (items.length === 0) return { results: [], conflict: false, wake: false, wakeWindowLeftMs: 0 };
    const r = await this.scripts.publishGuarded(
      items.map((x) => ({
        stream: this.streamFor(x.event),
        eventId: x.event.id,
        envelopeJson: JSON.stringify(x.event),
        guards: x.guards.map((g) => ({ ...g, key: this.keys.dedupe(g.key) })),
      })),
      {
        windowS,
        trim: this.trim(),
        wakeWindowMs: opts.wakeWindowMs && opts.wakeWindowMs > 0 ? opts.wakeWindowMs : 0,
        entryField: ENTRY_FIELD,
        wake: this.keys.wake,
      },
    );
    const results: GuardVerdict[] = r.results.map((v, i) => {
      if (v.status === 1) return { status: "stored" };
      if (v.status === 2) return { status: "duplicate", firstId: v.firstId };
      return { status: "conflict", firstId: v.firstId, key: items[i]!.guards[v.hit - 1]?.key ?? "" };
    });
    return { results, conflict: r.conflict, wake: r.wake, wakeWindowLeftMs: r.wakeWindowLeftMs };
  }
}
