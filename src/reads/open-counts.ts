/**
 * The counts health and metrics show, read through the partial indexes of open events
 * (pending, processing) and of the DLQ: their cost follows the size of the backlog and of
 * the DLQ, never of the whole history (no count over `events`, which a polling dashboard or
 * an anonymous caller would otherwise turn into repeated full scans).
 */
import { type SQL, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { events } from "../db/schema";

export interface OpenCounts {
  pending: number;
  processing: number;
  dlq: number;
  /** Pending events waiting for a retry (next_retry_at in the future). */
  retryBacklog: number;
  /** Age of the oldest pending or processing event, seconds (0 when none). */
  oldestPendingAgeSeconds: number;
}

/** The one statement (exported so a test can EXPLAIN it). */
export function openCountsQuery(now: Date): SQL {
  const at = now.toISOString();
  const status = events.status;
  return sql`
    SELECT count(*) FILTER (WHERE ${status} = 'pending') AS pending,
           count(*) FILTER (WHERE ${status} = 'processing') AS processing,
           count(*) FILTER (WHERE ${status} = 'pending' AND ${events.nextRetryAt} > ${at}::timestamptz) AS retry_backlog,
           coalesce(extract(epoch FROM (${at}::timestamptz - min(${events.createdAt}))), 0) AS oldest_age,
           (SELECT count(*) FROM ${events} WHERE ${status} = 'dlq') AS dlq
      FROM ${events} WHERE ${status} IN ('pending', 'processing')`;
}

export async function openCounts(db: Pick<Db, "execute">, now: Date): Promise<OpenCounts> {
  const r = await db.execute<Record<string, number | string | null>>(openCountsQuery(now));
  const x = r.rows[0] ?? {};
  return {
    pending: Number(x.pending ?? 0),
    processing: Number(x.processing ?? 0),
    dlq: Number(x.dlq ?? 0),
    retryBacklog: Number(x.retry_backlog ?? 0),
    oldestPendingAgeSeconds: Math.max(0, Number(x.oldest_age ?? 0)),
  };
}
