/**
 * Prometheus metrics for GET /metrics.
 *
 * Workers have no long-lived process to hold counters, so each isolate buffers increments
 * in memory and adds them to a shared store (a Redis hash, or a Postgres table when the
 * deployment has no Redis) in ONE command: at the end of every consumer / scheduled run,
 * and from HTTP requests at most once every FLUSH_INTERVAL_MS per isolate (so ingest pays
 * about nothing per request). An isolate evicted between flushes loses at most that
 * interval's ingest counts: these are operational figures, not the record - history is.
 */
export const FLUSH_INTERVAL_MS = 10_000;

/** Series name -> HELP text; TYPE is counter for *_total, histogram parts otherwise. */
export const METRICS: Record<string, string> = {
  reflex_events_accepted_total: "Events accepted at ingest (2xx), by route",
  reflex_requests_rejected_total: "Ingest requests rejected, by HTTP status and problem type",
  reflex_webhook_duplicates_total: "Webhook deliveries answered as duplicates",
  reflex_auth_failures_total: "Wrong admin/metrics tokens (bearer or dashboard sign-in), by surface",
  reflex_auth_throttled_total: "Requests refused (429) for too many wrong tokens from the address, by surface",
  reflex_events_processed_total:
    "Event deliveries settled by consumers, by outcome (completed, retried, deferred, dlq)",
  reflex_events_skipped_total: "Redelivered entries acknowledged without handling (already final in history)",
  reflex_events_derived_total: "Derived events published by handlers",
  reflex_events_replayed_total: "Events republished by replay jobs",
  reflex_consumer_runs_total: "Consumer invocations, by trigger (cron, queue)",
  reflex_consumer_batches_total: "Batches claimed by consumers",
  reflex_consumer_claimed_total: "Events claimed by consumers (claimed / batches = mean batch size)",
  reflex_redis_commands_total: "Redis commands sent (what Upstash bills)",
  reflex_redis_requests_total: "HTTP requests to Redis (pipelines count once)",
  reflex_pg_round_trips_total: "Postgres queries sent (round trips)",
  reflex_steps_total: "Durable steps (ctx.step), by outcome (ran, replayed from a record, failed)",
  reflex_model_calls_total: "Model calls made by steps (agent turns), by model",
  reflex_model_tokens_total: "Tokens of model calls, by model and kind (input, output)",
};

export type Labels = Record<string, string | number>;

function seriesKey(name: string, labels?: Labels): string {
  if (!labels || Object.keys(labels).length === 0) return name;
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${String(labels[k]).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`);
  return `${name}{${parts.join(",")}}`;
}

/** Increments buffered in this isolate, not yet added to the shared store. */
const buffer = new Map<string, number>();
let lastFlush = 0;

export function inc(name: string, labels?: Labels, by = 1): void {
  if (by === 0) return;
  const k = seriesKey(name, labels);
  buffer.set(k, (buffer.get(k) ?? 0) + by);
}

/** Where counters accumulate across isolates: a Redis hash or a Postgres table (src/backends). */
export interface MetricsSink {
  add(deltas: Array<[series: string, by: number]>): Promise<void>;
  read(): Promise<Array<[series: string, value: number]>>;
}

/**
 * Moves the buffer into the sink. On failure the deltas are put back, so the next flush
 * carries them (counts are delayed, not lost, while the isolate lives).
 */
export async function flush(sink: MetricsSink): Promise<void> {
  if (buffer.size === 0) return;
  const deltas = [...buffer.entries()];
  buffer.clear();
  lastFlush = Date.now();
  try {
    await sink.add(deltas);
  } catch (e) {
    for (const [k, v] of deltas) buffer.set(k, (buffer.get(k) ?? 0) + v);
    throw e;
  }
}

/** True when an HTTP request should flush (at most once per interval per isolate). */
export function flushDue(now = Date.now()): boolean {
  return buffer.size > 0 && now - lastFlush >= FLUSH_INTERVAL_MS;
}

/** Prometheus text exposition (version 0.0.4) of the stored series plus live gauges. */
export function render(
  stored: Array<[string, number]>,
  gauges: Array<{ name: string; help: string; value: number; labels?: Labels }> = [],
): string {
  const byName = new Map<string, Array<[string, number]>>();
  for (const [series, value] of stored) {
    const name = series.split("{")[0];
    if (!byName.has(name)) byName.set(name, []);
    byName.get(name)!.push([series, value]);
  }
  // Every known counter is exposed, at 0 when nothing happened yet, so dashboards see it.
  for (const name of Object.keys(METRICS)) if (!byName.has(name)) byName.set(name, [[name, 0]]);
  const lines: string[] = [];
  for (const name of [...byName.keys()].sort()) {
    lines.push(`# HELP ${name} ${METRICS[name] ?? name}`, `# TYPE ${name} counter`);
    for (const [series, value] of byName.get(name)!.sort()) lines.push(`${series} ${value}`);
  }
  for (const g of gauges) {
    lines.push(`# HELP ${g.name} ${g.help}`, `# TYPE ${g.name} gauge`, `${seriesKey(g.name, g.labels)} ${g.value}`);
  }
  return `${lines.join("\n")}\n`;
}
