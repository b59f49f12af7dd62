/**
 * EventStore on Redis Streams (Upstash). The stream is the transport and work queue;
 * Postgres (src/db) remains the system of record.
 *
 * Stream entry: one field `e` holding the whole envelope as JSON, so that no client-side
 * deserialisation can alter it. XADD trims approximately (MAXLEN ~) in the same command.
 */
import type { Config } from "../config";
import type { EventEnvelope } from "../events/envelope";
import { redisKeys, shardOf } from "./keys";
import type { Redis } from "./redis";
import type { Dedupe, DedupedReceipt, EventStore, PublishOptions, PublishReceipt } from "./types";

export const ENTRY_FIELD = "e";

export class RedisStreamStore implements EventStore {
  readonly backend = "redis" as const;
  readonly keys: ReturnType<typeof redisKeys>;

  constructor(
    readonly redis: Redis,
    readonly cfg: Pick<Config, "REDIS_PREFIX" | "STREAM_SHARDS" | "STREAM_MAXLEN"> & Partial<Pick<Config, "STREAM_RETENTION_S">>,
  ) {
    this.keys = redisKeys(cfg.REDIS_PREFIX);
  }

  streamFor(e: EventEnvelope): string {
    return this.keys.stream(shardOf(e.source, this.cfg.STREAM_SHARDS));
  }

  /**
   * Approximate trimming done by every XADD of publish(): by age (MINID ~ now minus
   * STREAM_RETENTION_S) when that is set, else by length (MAXLEN ~ STREAM_MAXLEN).
   */
  private publishTrim(): { type: "MAXLEN"; threshold: number } | { type: "MINID"; threshold: string } {
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
    const p = this.redis.pipeline();
    const trim = this.publishTrim();
    for (const e of events) {
      p.xadd(this.streamFor(e), "*", { [ENTRY_FIELD]: JSON.stringify(e) }, { trim: { ...trim, comparison: "~" } });
    }
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
    const trim = this.publishTrim();
    const wakeMs = opts.wakeWindowMs && opts.wakeWindowMs > 0 ? opts.wakeWindowMs : 0;
    const r = (await this.redis
      .createScript<unknown[]>(PUBLISH_ONCE)
      .exec(
        [this.keys.dedupe(dedupe.key), this.streamFor(event), this.keys.wake],
        [event.id, String(Math.ceil(dedupe.windowS)), JSON.stringify(event), trim.type, String(trim.threshold), String(wakeMs), ENTRY_FIELD],
      )) as unknown[];
    if (Number(r[0]) === 0) return { duplicate: true, firstId: String(r[1]), wake: false, wakeWindowLeftMs: 0 };
    return { duplicate: false, wake: Number(r[1]) === 1, wakeWindowLeftMs: Math.max(0, Number(r[2])) };
  }
}

/**
 * KEYS: dedupe key, stream, wake gate. ARGV: event id, dedupe window s, envelope JSON,
 * trim strategy (MAXLEN|MINID), trim threshold, wake window ms ("0": don't ask), entry field.
 * Returns {0, first id} for a duplicate, else {1, opened wake window 0|1, wake gate PTTL}.
 */
const PUBLISH_ONCE = `
local first = redis.call('GET', KEYS[1])
if first then return {0, first} end
redis.call('XADD', KEYS[2], ARGV[4], '~', ARGV[5], '*', ARGV[7], ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if ARGV[6] == '0' then return {1, 0, 0} end
local opened = redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[6])
return {1, opened and 1 or 0, redis.call('PTTL', KEYS[3])}
`;
