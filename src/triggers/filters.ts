/**
 * Trigger filters, as in Reflex: by type, by source pattern, by keyword in the event's JSON,
 * rate limit (max N per window), dedupe (by key, in a window), composed with and/or/not.
 *
 *   and(type("github.push"), source(/^github/), not(keyword("[skip ci]")),
 *       rateLimit({ max: 10, windowMs: 60_000 }))
 *
 * Pure filters answer synchronously. Stateful ones (rateLimit, dedupe) keep their state in
 * the backend (Redis, or Postgres's filter_state) - it must hold across invocations and
 * isolates - through a FilterState that sends all checks of a batch in one call.
 * Composition evaluates left to right and stops early, so `and(type("x"), rateLimit(...))`
 * only spends the rate limit on "x" events.
 *
 * Stateful checks are idempotent per event: a retried or redelivered event that passed once
 * passes again in the same window instead of counting twice or being its own duplicate.
 */
import type { FilterState } from "../backends/types";
import type { EventEnvelope } from "../events/envelope";

export type { FilterState };

export interface FilterContext {
  /** Trigger name: stateful filters namespace their keys with it. */
  trigger: string;
  /** The consumer's clock, ms since epoch (fixed windows are computed from it). */
  now: number;
  state: FilterState;
}

export interface Filter {
  /** For logs and errors. */
  readonly describe: string;
  /** `path` locates the filter inside its trigger's tree (default names for stateful filters). */
  test(e: EventEnvelope, ctx: FilterContext, path: string): boolean | Promise<boolean>;
}

/**
 * A glob ("order.*", "*github*") as a matcher: `*` is any run of characters, everything else
 * is literal. Globs come from configuration (destinations) and are matched against
 * client-chosen types and sources, so the matching must not backtrack: a regex with `.*`
 * per star takes exponential-looking time on a many-star glob against a long near-miss and
 * blocks the isolate (picomatch and micromatch compile to such regexes too). With `*` the
 * only wildcard, no search is needed: the literal prefix and suffix are compared, and each
 * piece between stars is taken at its first occurrence after the previous one (leftmost is
 * never worse), one indexOf per piece - at most text x pattern steps, nothing revisited.
 */
export function globMatcher(glob: string): (s: string) => boolean {
  if (!glob.includes("*")) return (s) => s === glob;
  const parts = glob.split("*");
  const head = parts[0]!;
  const tail = parts[parts.length - 1]!;
  // Runs of stars are one star; empty middles drop out.
  const middle = parts.slice(1, -1).filter((p) => p.length > 0);
  return (s) => {
    if (s.length < head.length + tail.length || !s.startsWith(head) || !s.endsWith(tail)) return false;
    let at = head.length;
    const end = s.length - tail.length;
    for (const p of middle) {
      const i = s.indexOf(p, at);
      if (i < 0 || i + p.length > end) return false;
      at = i + p.length;
    }
    return true;
  };
}

/** Matches every event. */
export const any = (): Filter => ({ describe: "any", test: () => true });

/** Event type equals one of `types`; `*` is a wildcard ("github.*"). */
export function type(...types: string[]): Filter {
  const ms = types.map(globMatcher);
  return { describe: `type(${types.join(", ")})`, test: (e) => ms.some((m) => m(e.type)) };
}

/** Source matches the regular expression (a string is compiled as one). */
export function source(pattern: RegExp | string): Filter {
  const re = typeof pattern === "string" ? new RegExp(pattern) : pattern;
  return { describe: `source(${re})`, test: (e) => re.test(e.source) };
}

/** The event's JSON contains `word` (case-insensitive), or matches the regular expression. */
export function keyword(word: string | RegExp): Filter {
  const re = typeof word === "string" ? new RegExp(word.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "i") : word;
  return { describe: `keyword(${re})`, test: (e) => re.test(JSON.stringify(e)) };
}

export interface RateLimitOptions {
  max: number;
  windowMs: number;
  /** Separate budgets per key (e.g. per source); default: one budget for the trigger. */
  key?: (e: EventEnvelope) => string;
  /** Stable name of this limit (keeps its state when the filter tree is edited). */
  name?: string;
}

/** At most `max` events per fixed window of `windowMs`. */
export function rateLimit(o: RateLimitOptions): Filter {
  if (!(o.max >= 1) || !(o.windowMs >= 1)) throw new Error("rateLimit: max and windowMs must be at least 1");
  return {
    describe: `rateLimit(${o.max}/${o.windowMs}ms)`,
    test: (e, ctx, path) => {
      const window = Math.floor(ctx.now / o.windowMs);
      const k = `rl:${ctx.trigger}:${o.name ?? path}:${o.key?.(e) ?? ""}:${window}`;
      // The window's key lives one window past its end, so late retries still find it.
      return ctx.state.rateLimit(k, o.max, o.windowMs * 2, e.id);
    },
  };
}

export interface DedupeOptions {
  key: (e: EventEnvelope) => string;
  windowMs: number;
  name?: string;
}

/** Passes the first event per `key` within `windowMs` of it; later ones do not match. */
export function dedupe(o: DedupeOptions): Filter {
  if (!(o.windowMs >= 1)) throw new Error("dedupe: windowMs must be at least 1");
  return {
    describe: `dedupe(${o.windowMs}ms)`,
    test: (e, ctx, path) =>
      ctx.state.dedupe(`dd:${ctx.trigger}:${o.name ?? path}:${o.key(e)}`, o.windowMs, e.id, ctx.now),
  };
}

/** All of `filters`, left to right, stopping at the first that fails. */
export function and(...filters: Filter[]): Filter {
  return {
    describe: `and(${filters.map((f) => f.describe).join(", ")})`,
    test: (e, ctx, path) => {
      const step = (i: number): boolean | Promise<boolean> => {
        for (; i < filters.length; i++) {
          const r = filters[i]!.test(e, ctx, `${path}.${i}`);
          if (r instanceof Promise) return r.then((ok) => (ok ? step(i + 1) : false));
          if (!r) return false;
        }
        return true;
      };
      return step(0);
    },
  };
}

/** Any of `filters`, left to right, stopping at the first that passes. */
export function or(...filters: Filter[]): Filter {
  return {
    describe: `or(${filters.map((f) => f.describe).join(", ")})`,
    test: (e, ctx, path) => {
      const step = (i: number): boolean | Promise<boolean> => {
        for (; i < filters.length; i++) {
          const r = filters[i]!.test(e, ctx, `${path}.${i}`);
          if (r instanceof Promise) return r.then((ok) => (ok ? true : step(i + 1)));
          if (r) return true;
        }
        return false;
      };
      return step(0);
    },
  };
}

export function not(filter: Filter): Filter {
  return {
    describe: `not(${filter.describe})`,
    test: (e, ctx, path) => {
      const r = filter.test(e, ctx, `${path}.0`);
      return r instanceof Promise ? r.then((ok) => !ok) : !r;
    },
  };
}

/** Everything above under one name: `import { filters as f } from "../triggers"`; `f.and(f.type("x"), ...)`. */
export const filters = { any, type, source, keyword, rateLimit, dedupe, and, or, not };
