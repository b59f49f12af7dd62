/**
 * Retry policy, as in Reflex: a failed attempt is retried after
 * min(EVENT_RETRY_BASE_DELAY * 2^(attempts-1), EVENT_RETRY_MAX_DELAY) seconds, where
 * `attempts` counts the attempts made so far (this one included); when it reaches
 * EVENT_MAX_ATTEMPTS the event goes to the dead-letter queue instead.
 */
import type { Config } from "../config";

export type RetryPolicy = Pick<Config, "EVENT_MAX_ATTEMPTS" | "EVENT_RETRY_BASE_DELAY" | "EVENT_RETRY_MAX_DELAY">;

/** Seconds to wait after the `attempts`-th failed attempt. */
export function backoffSeconds(attempts: number, p: RetryPolicy): number {
  const n = Math.max(1, attempts);
  return Math.min(p.EVENT_RETRY_BASE_DELAY * 2 ** (n - 1), p.EVENT_RETRY_MAX_DELAY);
}

export type FailureDecision = { status: "retry"; retryAt: Date } | { status: "dlq" };

export function onFailure(attempts: number, nowMs: number, p: RetryPolicy): FailureDecision {
  if (attempts >= p.EVENT_MAX_ATTEMPTS) return { status: "dlq" };
  return { status: "retry", retryAt: new Date(nowMs + backoffSeconds(attempts, p) * 1000) };
}
