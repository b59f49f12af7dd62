/** Counters from a consumer run's report (src/consume/consumer.ts RunReport). */

import { inc } from "../obs/metrics";
import type { RunReport } from "./consumer";

export function recordConsumerRun(trigger: string, r: RunReport): void {
  inc("reflex_consumer_runs_total", { trigger });
  inc("reflex_consumer_batches_total", undefined, r.batches);
  inc("reflex_consumer_claimed_total", undefined, r.claimed);
  inc("reflex_events_processed_total", { outcome: "completed" }, r.completed);
  inc("reflex_events_processed_total", { outcome: "retried" }, r.retried);
  inc("reflex_events_processed_total", { outcome: "deferred" }, r.deferred);
  inc("reflex_events_processed_total", { outcome: "dlq" }, r.dlq);
  inc("reflex_events_skipped_total", undefined, r.skipped);
  inc("reflex_events_derived_total", undefined, r.derived);
}
