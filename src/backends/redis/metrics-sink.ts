/** Metrics counters in one Redis hash: a flush is ONE command (a script of HINCRBYFLOAT). */
import type { MetricsSink } from "../../obs/metrics";
import type { Redis } from "./client";
import { redisKeys } from "./keys";
import { redisScripts } from "./scripts";

export class RedisMetricsSink implements MetricsSink {
  private key: string;
  constructor(
    private redis: Redis,
    prefix: string,
  ) {
    this.key = redisKeys(prefix).metrics;
  }

  async add(deltas: Array<[string, number]>): Promise<void> {
    if (deltas.length === 0) return;
    await redisScripts(this.redis).metricsAdd(this.key, deltas);
  }

  async read(): Promise<Array<[string, number]>> {
    const flat = (await this.redis.hgetall(this.key)) as unknown as string[] | null;
    const out: Array<[string, number]> = [];
    for (let i = 0; flat && i < flat.length; i += 2) out.push([flat[i], Number(flat[i + 1])]);
    return out;
  }
}
