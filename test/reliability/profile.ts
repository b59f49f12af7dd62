/**
 * How big a reliability run is. The default (what `npm test` and CI run) sends at least
 * 20,000 events with every fault kind through the Redis backend, and 5,000 through the
 * Postgres backend (where every ingest request opens its own Postgres connection, so the run
 * costs about five times as long per event); the long profile is the same run at 200,000 on
 * both:
 *
 *   RELIABILITY_EVENTS=200000 npm run test:reliability
 *
 * The variable reaches workerd as VITE_RELIABILITY_EVENTS (the npm script maps it): Vite
 * exposes VITE_* variables to test code through import.meta.env, and the workers pool has
 * no other way in for a process environment variable.
 */
export interface Profile {
  name: string;
  /** Events the harness tries to get accepted (rejected requests and redeliveries come on top). */
  events: number;
  /** The same with EVENT_BACKEND=postgres. */
  postgresEvents: number;
  /** Seed of every random choice of the traffic plan (same seed, same plan). */
  seed: number;
  /** Longest the final drain may take once every fault is over, ms (a stuck event fails the run). */
  drainTimeoutMs: number;
}

export function profile(): Profile {
  const vars = (import.meta as ImportMeta & { env?: Record<string, string | undefined> }).env ?? {};
  const raw = vars.VITE_RELIABILITY_EVENTS?.trim();
  const events = raw ? Number(raw) : 20_000;
  if (!Number.isInteger(events) || events < 1_000) {
    throw new Error(`RELIABILITY_EVENTS must be an integer of at least 1000 (got ${JSON.stringify(raw)})`);
  }
  const seed = Number(vars.VITE_RELIABILITY_SEED?.trim() || 9);
  return {
    name: events >= 200_000 ? "long" : events === 20_000 ? "default" : "custom",
    events,
    postgresEvents: events === 20_000 ? 5_000 : events,
    seed,
    // A ceiling, not a target: under the injected faults a 2-core machine drained the long
    // profile's backlog (about 140,000 entries) in about 70 s; a stuck event fails the run
    // long before this.
    drainTimeoutMs: 120_000 + 3 * events,
  };
}

/** FNV-1a of a string, 32 bits: picks an event's handler fate from its id. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
