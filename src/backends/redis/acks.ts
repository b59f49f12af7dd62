/**
 * The ledger of owed acknowledgements: stream entries whose outcome is durable in Postgres
 * but not yet acknowledged, by lane. settle() leaves its XACKs here; the next read of new
 * entries sends them in the same script (ack-then-read.lua), and flush() at the end of a run
 * sends what is left. A batch thus costs one Redis command (the read) instead of two.
 * Deferring an XACK is safe: until it is sent the entry stays pending, and a consumer that
 * reclaims it (a crash in between) finds its history final and only acknowledges it.
 */
import type { Redis } from "./client";

export type OwedAcks = Array<[lane: string, ids: string[]]>;

export class AckLedger {
  private readonly owed = new Map<string, string[]>();

  constructor(
    private readonly redis: Redis,
    private readonly group: string,
  ) {}

  defer(lane: string, ids: string[]): void {
    const list = this.owed.get(lane);
    if (list) list.push(...ids);
    else this.owed.set(lane, [...ids]);
  }

  /**
   * Hands the acknowledgements owed, by lane, to `send`, which sends them with its request.
   * If it fails they were not sent (or not known to be): they stay owed, for the next read or
   * flush(). An XACK sent twice is harmless.
   */
  async sending<T>(send: (acks: OwedAcks) => Promise<T>): Promise<T> {
    const acks = [...this.owed];
    this.owed.clear();
    try {
      return await send(acks);
    } catch (e) {
      for (const [lane, ids] of acks) this.defer(lane, ids);
      throw e;
    }
  }

  /** Adds an XACK per lane owed to `p` and executes it. */
  async sendWith(p: ReturnType<Redis["pipeline"]>): Promise<void> {
    await this.sending((acks) => {
      for (const [lane, ids] of acks) p.xack(lane, this.group, ids);
      return p.exec();
    });
  }

  /** Sends the acknowledgements still owed: the consumer calls it when its run ends. */
  async flush(): Promise<void> {
    if (this.owed.size) await this.sendWith(this.redis.pipeline());
  }
}
