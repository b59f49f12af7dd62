/**
 * The consumer group every lane's consumers join: created on first use, its figures per lane
 * (what health and the sweeper report), and the pruning of consumers that went idle.
 */
import type { LaneStats } from "../types";
import type { Redis } from "./client";
import type { RedisScripts } from "./scripts";

export class ConsumerGroup {
  constructor(
    private readonly redis: Redis,
    private readonly scripts: RedisScripts,
    readonly name: string,
  ) {}

  /**
   * Runs `fn`, creating the group when it answers NOGROUP and running it again. The group
   * starts at id 0, so that events published before any consumer ran are not skipped.
   */
  async using<T>(lane: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (!String((e as Error)?.message).includes("NOGROUP")) throw e;
      try {
        await this.redis.xgroup(lane, { type: "CREATE", group: this.name, id: "0", options: { MKSTREAM: true } });
      } catch (e2) {
        if (!String((e2 as Error)?.message).includes("BUSYGROUP")) throw e2;
      }
      return await fn();
    }
  }

  async laneStats(lane: string): Promise<LaneStats> {
    const [length, groups] = (await this.redis
      .pipeline()
      .xlen(lane)
      .xinfo(lane, { type: "GROUPS" })
      .exec()
      .catch(async (e: unknown) => {
        // XINFO on a stream that does not exist yet: nothing published, nothing pending.
        if (String((e as Error)?.message).includes("no such key")) return [0, []];
        throw e;
      })) as [number, unknown[][]];
    const mine = groups.map(pairs).find((g) => g.name === this.name);
    return {
      lane,
      length: Number(length),
      pending: Number(mine?.pending ?? 0),
      lag: mine?.lag === undefined || mine.lag === null ? (mine ? null : Number(length)) : Number(mine.lag),
      consumers: Number(mine?.consumers ?? 0),
    };
  }

  /**
   * Atomic (one script): a consumer is deleted only if, at that instant, it has nothing
   * pending - XGROUP DELCONSUMER would otherwise drop its pending entries, i.e. lose them.
   */
  pruneConsumers(lane: string, idleMs: number): Promise<string[]> {
    return this.scripts.pruneConsumers(lane, this.name, idleMs);
  }
}

/** XINFO's flat [k, v, k, v] arrays as objects. */
function pairs(a: unknown[]): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (let i = 0; i + 1 < a.length; i += 2) o[String(a[i])] = a[i + 1];
  return o;
}
