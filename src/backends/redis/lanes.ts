/**
 * Stream upkeep for the scheduled functions (src/jobs): appending to the replay lane,
 * measuring a lane's backlog, trimming what every consumer group has acknowledged, and the
 * DLQ trail. Redis-specific, like the rest of this directory's Redis code.
 */

import type { EventEnvelope } from "../../events/envelope";
import type { DlqTrailEntry, ReplayLane, StreamUpkeep } from "../types";
import type { Redis } from "./client";
import { redisKeys } from "./keys";
import { type RedisScripts, redisScripts } from "./scripts";
import { dlqFields, eventFields } from "./stream-entry";

export class RedisLanes implements StreamUpkeep {
  readonly keys: ReturnType<typeof redisKeys>;
  private readonly scripts: RedisScripts;

  constructor(
    readonly redis: Redis,
    prefix: string,
  ) {
    this.keys = redisKeys(prefix);
    this.scripts = redisScripts(redis);
  }

  /**
   * Appends events to `lane` in one pipeline (one request), untrimmed: entries of the
   * replay lane are only removed once acknowledged (trimAcknowledged), never dropped
   * unread. Same entry shape as publish(), so the consumer reads them unchanged.
   */
  async append(lane: string, events: EventEnvelope[]): Promise<void> {
    if (events.length === 0) return;
    const p = this.redis.pipeline();
    for (const e of events) p.xadd(lane, "*", eventFields(e));
    await p.exec();
  }

  /** The replay lane (a stream of its own) as the replay runner uses it. */
  replayLane(): ReplayLane {
    const name = this.keys.replayLane;
    return { name, backlog: () => this.backlog(name), append: (events) => this.append(name, events) };
  }

  /**
   * Entries of `lane` not yet handled by the consumer group: never delivered (lag) plus
   * delivered and unacknowledged (pending). With no group yet, every entry.
   */
  backlog(lane: string): Promise<number> {
    return this.scripts.backlog(lane, this.keys.group);
  }

  /**
   * XTRIM MINID ~ up to `cutoffMs` (entries older than that may go), but never past an entry
   * some consumer group still needs: the oldest pending entry of any group, or anything not
   * yet delivered to it. A stream without any group is left alone (nobody read it yet).
   * Returns the number of entries removed.
   */
  trimAcknowledged(lane: string, cutoffMs: number): Promise<number> {
    return this.scripts.safeTrim(lane, `${Math.max(0, Math.floor(cutoffMs))}-0`);
  }

  /** The DLQ trail has no consumer group: plain trim by age. */
  async trimDlqTrail(cutoffMs: number): Promise<number> {
    return Number(
      await this.redis.xtrim(this.keys.dlq, {
        strategy: "MINID",
        exactness: "~",
        threshold: `${Math.floor(cutoffMs)}-0`,
      }),
    );
  }

  /** One trail entry per event the sweeper dead-lettered (the consumer writes its own in settle). */
  async appendDlqTrail(entries: DlqTrailEntry[], maxlen: number): Promise<void> {
    if (entries.length === 0) return;
    const p = this.redis.pipeline();
    for (const x of entries) {
      p.xadd(
        this.keys.dlq,
        "*",
        { ...dlqFields(x), by: "sweeper" },
        { trim: { type: "MAXLEN", comparison: "~", threshold: maxlen } },
      );
    }
    await p.exec();
  }
}
