/**
 * The run's trigger: a handler that fails on purpose, deterministically by event id, so the
 * retry path and the DLQ carry real traffic:
 *   - "fail-first" (~8%): fails its first attempt, then succeeds;
 *   - "fail-twice" (~4%): fails attempts 1 and 2, then succeeds;
 *   - "always" (~0.5%): always fails, so it must end in the DLQ with its error;
 *   - "ok": succeeds.
 * "Attempt" is the delivery count history keeps (ctx.attempt), which crashes also raise, so
 * a crash can use up a planned failure: the fate is about attempts, not about calls.
 *
 * It records every call and every success per event id: a completed event must have had at
 * least one successful handler call (completed means handled, not just acknowledged). And it
 * watches scopes: every run shares this isolate, so two handlers of one scope running at the
 * same time - in one invocation or in two overlapping ones - show up as an overlap.
 */
import { filters as f } from "../../src/triggers";
import type { TriggerSpec } from "../../src/triggers/registry";
import { fnv1a } from "./profile";
import { SOURCE_PREFIX } from "./traffic";

export type Fate = "ok" | "fail-first" | "fail-twice" | "always";

export function fateOf(id: string): Fate {
  const h = fnv1a(id) % 1000;
  if (h < 5) return "always";
  if (h < 85) return "fail-first";
  if (h < 125) return "fail-twice";
  return "ok";
}

export class HandlerStats {
  calls = 0;
  failuresInjected = 0;
  readonly successes = new Map<string, number>();
  /** Handler calls that started while another call of the same scope was running (must be 0). */
  scopeOverlaps = 0;
  readonly running = new Map<string, number>();
}

export const TRIGGER_NAME = "reliability-flaky";

export function flakyTrigger(stats: HandlerStats): TriggerSpec {
  return {
    name: TRIGGER_NAME,
    // Only this run's events ("rel-" sources), so registering it beside other triggers is harmless.
    filter: f.source(new RegExp(`^${SOURCE_PREFIX}`)),
    handler: async (ctx) => {
      stats.calls++;
      const n = (stats.running.get(ctx.scope) ?? 0) + 1;
      stats.running.set(ctx.scope, n);
      if (n > 1) stats.scopeOverlaps++;
      const fate = fateOf(ctx.event.id);
      const fails =
        fate === "always" || (fate === "fail-first" && ctx.attempt <= 1) || (fate === "fail-twice" && ctx.attempt <= 2);
      // Yield to the event loop, as real I/O would: a missing scope lock would show as an overlap.
      await new Promise((r) => setTimeout(r, 0));
      stats.running.set(ctx.scope, stats.running.get(ctx.scope)! - 1);
      if (fails) {
        stats.failuresInjected++;
        throw new Error(`injected handler failure (${fate}, attempt ${ctx.attempt})`);
      }
      stats.successes.set(ctx.event.id, (stats.successes.get(ctx.event.id) ?? 0) + 1);
    },
  };
}
