/** Metrics counters in Postgres (deployments without Redis): a flush is ONE statement. */
import { sql } from "drizzle-orm";
import type { Db } from "../../db/client";
import { metricsCounters } from "../../db/schema";
import type { MetricsSink } from "../../obs/metrics";

export class PgMetricsSink implements MetricsSink {
  constructor(private db: Db) {}

  async add(deltas: Array<[string, number]>): Promise<void> {
    if (deltas.length === 0) return;
    await this.db.execute(sql`
      INSERT INTO metrics_counters (series, value)
      SELECT * FROM unnest(${deltas.map((d) => d[0])}::text[], ${deltas.map((d) => d[1])}::float8[])
      ON CONFLICT (series) DO UPDATE SET value = metrics_counters.value + excluded.value`);
  }

  async read(): Promise<Array<[string, number]>> {
    const rows = await this.db.select().from(metricsCounters);
    return rows.map((r) => [r.series, r.value]);
  }
}
