/** The outcome of a claimed event, for each way dispatch can decide it (see Outcome). */
import type { ClaimedEvent, Outcome } from "../backends/types";
import type { Config } from "../config";
import { onFailure } from "./retry";

export function completed(c: ClaimedEvent): Outcome {
  return { receipt: c.receipt, status: "completed" };
}

/** The attempt failed: retried with backoff, or the DLQ at the last attempt (./retry.ts). */
export function failed(c: ClaimedEvent, error: string, nowMs: number, cfg: Config): Outcome {
  const decision = onFailure(c.attempts, nowMs, cfg);
  return decision.status === "dlq"
    ? { receipt: c.receipt, status: "dlq", error, event: c.event, attempts: c.attempts }
    : { receipt: c.receipt, status: "retry", error, retryAt: decision.retryAt };
}

/** Not attempted: pending again at `retryAt`, the attempt given back. */
export function deferred(c: ClaimedEvent, reason: string, retryAt: Date): Outcome {
  return { receipt: c.receipt, status: "defer", reason, retryAt };
}

/** Delivered more than EVENT_MAX_ATTEMPTS times with no outcome: the DLQ, without running again. */
export function exhausted(c: ClaimedEvent): Outcome {
  return {
    receipt: c.receipt,
    status: "dlq",
    error: `no outcome after ${c.attempts - 1} deliveries (the consumer crashed or timed out while handling it)`,
    event: c.event,
    attempts: c.attempts - 1,
  };
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message || e.name : String(e);
}
