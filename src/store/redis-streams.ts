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
import type { EventStore } from "./types";

export const ENTRY_FIELD = "e";

export class RedisStreamStore implements EventStore {
  readonly backend = "redis" as const;
  readonly keys: ReturnType<typeof redisKeys>;

  constructor(
    readonly redis: Redis,
    readonly cfg: Pick<Config, "REDIS_PREFIX" | "STREAM_SHARDS" | "STREAM_MAXLEN">,
  ) {
    this.keys = redisKeys(cfg.REDIS_PREFIX);
  }

  streamFor(e: EventEnvelope): string {
    return this.keys.stream(shardOf(e.source, this.cfg.STREAM_SHARDS));
  }

  /** One XADD per event, all in one pipeline (one HTTP request). */
  async publish(events: EventEnvelope[]): Promise<void> {
    if (events.length === 0) return;
    const p = this.redis.pipeline();
    for (const e of events) {
      p.xadd(this.streamFor(e), "*", { [ENTRY_FIELD]: JSON.stringify(e) }, {
        trim: { type: "MAXLEN", comparison: "~", threshold: this.cfg.STREAM_MAXLEN },
      });
    }
    await p.exec();
  }
}
