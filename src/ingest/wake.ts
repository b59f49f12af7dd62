/**
 * Waking the consumer after a publish, debounced.
 *
 * The gate is a Redis key (`<prefix>:wake`, SET NX PX WAKE_DEBOUNCE_MS) set in the same
 * pipeline/script as the XADDs, so asking costs no round trip; the publish that opens a
 * window sends the wake-up. A burst of N events therefore sends one wake-up per window,
 * across all isolates.
 *
 * Asking still costs two commands (SET, PTTL), so each isolate also remembers when the
 * current window closes (the PTTL answer) and does not ask again before then: at most
 * about two commands per isolate per window, not per event.
 *
 * Each wake-up is two Queue messages: one now and one delayed by the window. The delayed
 * one picks up events that arrived after the first consumer run had drained the stream
 * but before the window closed (they sent no wake-up of their own); without it they would
 * wait for the cron safety net (up to a minute).
 *
 * No WAKE_QUEUE binding: nothing is sent; the cron trigger still drains the streams.
 */

import type { PublishOptions, PublishReceipt } from "../backends/types";
import type { Config, Env, WakeMessage } from "../config";

/** Per REDIS_PREFIX (several deployments or tests may share an isolate): when its window closes. */
const windowClosesAt = new Map<string, number>();

/**
 * Publish options: ask the store about the gate unless this isolate knows the window is
 * open. The request that asks closes the local gate at once (provisionally, for a whole
 * window), so the requests running beside it in this isolate do not all ask too; its
 * answer then sets the real closing time (afterPublish), or reopens the gate if the
 * publish failed (wakeAskFailed).
 */
export function wakeOptions(cfg: Config, now = Date.now()): PublishOptions {
  const closes = windowClosesAt.get(cfg.REDIS_PREFIX) ?? 0;
  if (now < closes) return {};
  windowClosesAt.set(cfg.REDIS_PREFIX, now + cfg.WAKE_DEBOUNCE_MS);
  return { wakeWindowMs: cfg.WAKE_DEBOUNCE_MS };
}

/** The publish that asked failed: its answer never came, so let the next request ask. */
export function wakeAskFailed(cfg: Config, opts: PublishOptions): void {
  if (opts.wakeWindowMs) windowClosesAt.delete(cfg.REDIS_PREFIX);
}

/** After a successful publish: remember the window, send the wake-up if this publish opened it. */
export function afterPublish(
  env: Env,
  cfg: Config,
  receipt: PublishReceipt,
  waitUntil: (p: Promise<unknown>) => void,
  now = Date.now(),
): void {
  if (receipt.wakeWindowLeftMs > 0) windowClosesAt.set(cfg.REDIS_PREFIX, now + receipt.wakeWindowLeftMs);
  else if (receipt.wake) windowClosesAt.delete(cfg.REDIS_PREFIX); // asked but no TTL came back: ask again next time
  if (!receipt.wake || !env.WAKE_QUEUE) return;
  const body: WakeMessage = { kind: "wake", at: now };
  const trailingDelayS = Math.max(1, Math.ceil(cfg.WAKE_DEBOUNCE_MS / 1000));
  waitUntil(
    env.WAKE_QUEUE.sendBatch([{ body }, { body, delaySeconds: trailingDelayS }]).catch((err: unknown) => {
      // The events are already stored; a lost wake-up only delays them until the cron run.
      console.warn("wake-up not sent:", err);
    }),
  );
}
