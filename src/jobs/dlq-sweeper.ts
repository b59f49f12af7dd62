/**
 * DLQ sweeper (cron "*\/5 * * * *"): the housekeeping no consumer run can do for itself.
 *
 *  1. Stuck events: 'processing' for longer than SWEEP_STUCK_AFTER_MS with nobody left to
 *     reclaim them go to the DLQ when their attempts are exhausted (with a DLQ trail entry),
 *     else back to pending, due now.
 *  2. Idle consumers: per-invocation consumer names with nothing pending, idle longer than
 *     SWEEP_CONSUMER_IDLE_MS, are removed from their groups (live lanes and the replay lane).
 *  3. Trimming: entries every group has acknowledged go once older than STREAM_RETENTION_S
 *     (default one day) on the live lanes, at once on the replay lane; the DLQ trail by age.
 *     Unacknowledged or undelivered entries are never trimmed here.
 *  4. Retention (./retention.ts): completed and discarded events older than
 *     HISTORY_RETENTION_DAYS, dead letters older than DLQ_RETENTION_DAYS, delivery attempts
 *     and finished replay jobs past theirs - in statements of RETENTION_BATCH_SIZE rows, at
 *     most RETENTION_MAX_BATCHES of each per run, so a backlog of old history drains over
 *     several runs while ingest and consumers go on beside it.
 *  5. Held events: an open destination breaker defers its events without using attempts;
 *     once it has stayed open longer than DESTINATION_MAX_HOLD_S, the events stored before
 *     then that wait for it go to the DLQ with the breaker named (src/destinations/held.ts).
 *  6. Alert: with DLQ_ALERT_URL set, one POST when the DLQ grows past DLQ_ALERT_THRESHOLD -
 *     once per crossing (it re-arms when the DLQ is back at or under the threshold). A failed
 *     POST re-arms too, so the next run tries again.
 * Each step runs even if another failed; the failures are reported together.
 */

import type { EventStore, StreamUpkeep } from "../backends/types";
import type { Config } from "../config";
import type { Db } from "../db/client";
import { breakerStates } from "../destinations";
import { deadLetterHeld } from "../destinations/held";
import type { Logger } from "../obs/log";
import { dlqSummary } from "../reads/dlq-queries";
import { applyRetention, type RetentionReport } from "./retention";
import { crossedAbove, sweepStuck } from "./sweep-queries";

export interface SweepOptions {
  db: Db;
  store: EventStore;
  /** Redis stream upkeep; absent on the Postgres backend (no streams to trim). */
  lanes?: StreamUpkeep;
  config: Config;
  log?: Logger;
  now?: Date;
  /** How alerts are sent (default: global fetch). */
  fetch?: typeof fetch;
  /** Deadline of the alert POST, ms (default ALERT_TIMEOUT_MS). */
  alertTimeoutMs?: number;
}

/**
 * The alert POST gives up after this: a hung alert endpoint must not hold the sweep. It
 * follows no redirect either (a 3xx fails the alert, which is retried next run), so the
 * summary goes to the configured URL and nowhere it points to.
 */
export const ALERT_TIMEOUT_MS = 10_000;

export interface SweepReport {
  stuck: { toDlq: number; toRetry: number };
  prunedConsumers: number;
  trimmed: number;
  retention: RetentionReport;
  /** Events moved to the DLQ after waiting longer than DESTINATION_MAX_HOLD_S behind an open breaker. */
  held: number;
  dlq: number;
  alerted: boolean;
  errors: string[];
}

const DAY_S = 86_400;
const ALERT_KEY = "dlq-alert";

export async function sweep(o: SweepOptions): Promise<SweepReport> {
  const cfg = o.config;
  const now = o.now ?? new Date();
  const report: SweepReport = {
    stuck: { toDlq: 0, toRetry: 0 },
    prunedConsumers: 0,
    trimmed: 0,
    retention: { events: 0, dlq: 0, attempts: 0, replayJobs: 0, more: false },
    held: 0,
    dlq: 0,
    alerted: false,
    errors: [],
  };
  const step = async (name: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (e) {
      const msg = `${name}: ${e instanceof Error ? e.message : String(e)}`;
      report.errors.push(msg);
      o.log?.error("sweeper step failed", { step: name, error: msg });
    }
  };
  const lanes = o.lanes;
  const replayLane = lanes?.replayLane().name;
  const laneList = [...o.store.lanes(), ...(replayLane ? [replayLane] : [])];

  await step("stuck", async () => {
    const stuckBefore = new Date(now.getTime() - cfg.SWEEP_STUCK_AFTER_MS);
    for (let round = 0; round < 20; round++) {
      const swept = await sweepStuck(o.db, { maxAttempts: cfg.EVENT_MAX_ATTEMPTS, stuckBefore, now, limit: 500 });
      const dead = swept.filter((s) => s.status === "dlq");
      report.stuck.toDlq += dead.length;
      report.stuck.toRetry += swept.length - dead.length;
      await lanes?.appendDlqTrail(
        dead.map((d) => ({ event: d.event, error: d.error, attempts: d.attempts, at: now.toISOString() })),
        cfg.STREAM_MAXLEN,
      );
      if (swept.length < 500) break;
    }
  });

  await step("consumers", async () => {
    for (const lane of laneList)
      report.prunedConsumers += (await o.store.pruneConsumers(lane, cfg.SWEEP_CONSUMER_IDLE_MS)).length;
  });

  if (lanes)
    await step("trim", async () => {
      const retentionMs = (cfg.STREAM_RETENTION_S ?? DAY_S) * 1000;
      for (const lane of o.store.lanes())
        report.trimmed += await lanes.trimAcknowledged(lane, now.getTime() - retentionMs);
      report.trimmed += await lanes.trimAcknowledged(replayLane!, now.getTime());
      report.trimmed += await lanes.trimDlqTrail(now.getTime() - Math.max(retentionMs, 7 * DAY_S * 1000));
    });

  await step("retention", async () => {
    report.retention = await applyRetention(
      o.db,
      {
        historyDays: cfg.HISTORY_RETENTION_DAYS,
        dlqDays: cfg.DLQ_RETENTION_DAYS,
        attemptsDays: cfg.DELIVERY_ATTEMPTS_RETENTION_DAYS,
        replayJobsDays: cfg.REPLAY_JOBS_RETENTION_DAYS,
        batchSize: cfg.RETENTION_BATCH_SIZE,
        maxBatches: cfg.RETENTION_MAX_BATCHES,
      },
      now,
    );
  });

  if (cfg.DESTINATIONS.length)
    await step("held", async () => {
      const since = new Date(now.getTime() - cfg.DESTINATION_MAX_HOLD_S * 1000);
      for (const b of await breakerStates(o.db, cfg, now)) {
        if (b.state === "closed" || !b.opened_at || Date.parse(b.opened_at) >= since.getTime()) continue;
        const d = cfg.DESTINATIONS.find((x) => x.name === b.destination)!;
        const reason = `destination ${d.name}: held behind its open circuit breaker (open since ${b.opened_at}) longer than DESTINATION_MAX_HOLD_S (${cfg.DESTINATION_MAX_HOLD_S} s)`;
        for (let round = 0; round < 20; round++) {
          const dead = await deadLetterHeld(o.db, d, { since, now, reason, limit: 500 });
          report.held += dead.length;
          await lanes?.appendDlqTrail(
            dead.map((x) => ({ event: x.event, error: reason, attempts: x.attempts, at: now.toISOString() })),
            cfg.STREAM_MAXLEN,
          );
          if (dead.length < 500) break;
        }
      }
    });

  await step("alert", async () => {
    const summary = await dlqSummary(o.db);
    report.dlq = summary.count;
    if (!cfg.DLQ_ALERT_URL) return;
    const above = summary.count > cfg.DLQ_ALERT_THRESHOLD;
    if (!(await crossedAbove(o.db, ALERT_KEY, above))) return;
    const body = {
      alert: "dlq_threshold_exceeded",
      dlq_count: summary.count,
      threshold: cfg.DLQ_ALERT_THRESHOLD,
      top_types: summary.byType,
      oldest_at: summary.oldest,
      at: now.toISOString(),
    };
    try {
      const res = await (o.fetch ?? fetch)(cfg.DLQ_ALERT_URL, {
        method: "POST",
        headers: { "content-type": "application/json", "user-agent": "reflex-edge-dlq-sweeper" },
        body: JSON.stringify(body),
        redirect: "manual",
        signal: AbortSignal.timeout(o.alertTimeoutMs ?? ALERT_TIMEOUT_MS),
      });
      await res.body?.cancel();
      if (!res.ok) throw new Error(`alert endpoint answered ${res.status}`);
      report.alerted = true;
    } catch (e) {
      await crossedAbove(o.db, ALERT_KEY, false); // re-arm: the next run tries again
      throw e;
    }
  });

  return report;
}
