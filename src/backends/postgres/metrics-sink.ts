/** Metrics counters in Postgres (deployments without Redis): a flush is ONE statement. */
import { sql } from "drizzle-orm";
import type { Db } from "../../db/client";
import { metricsCounters } from "../../db/schema";
import { arrayOf, assign, bare, columnNames, excluded } from "../../db/sql";
import type { MetricsSink } from "../../obs/metrics";

export class PgMetricsSink implements MetricsSink {
  constructor(private db: Db) {}

  async add(deltas: Array<[string, number]>): Promise<void> {
    if (deltas.length === 0) return;
    const t = metricsCounters;
    const series = deltas.map(([name]) => name);
    const values = deltas.map(([, value]) => value);
    await this.db.execute(sql`
      INSERT INTO ${t} (${columnNames(t.series, t.value)})
      SELECT * FROM unnest(${arrayOf(t.series, series)}, ${arrayOf(t.value, values)})
      ON CONFLICT (${bare(t.series)}) DO UPDATE SET ${assign(t, { value: sql`${t.value} + ${excluded(t.value)}` })}`);
  }

  async read(): Promise<Array<[string, number]>> {
    const rows = await this.db.select().from(metricsCounters);
    return rows.map((r) => [r.series, r.value]);
  }
}
