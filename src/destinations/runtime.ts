/**
 * Destinations as triggers: each configured destination becomes a trigger ("destination
 * <name>") in the consumer's registry, next to the code triggers, so filters, scope locks,
 * retries, backoff and the DLQ apply unchanged; an event matching both kinds runs both and
 * fails if either fails. Its handler POSTs the event (./deliver.ts) and throws on failure:
 * "destination orders: HTTP 500" in the event's errors.
 *
 * The dispatch hooks add what a code trigger does not need:
 *  - admit: before an event's handlers run, each matching destination's circuit breaker
 *    (./breaker.ts) is asked; an open one defers the whole event, untried, to the breaker's
 *    next probe time (pending again, the attempt given back). A failed probe defers its event
 *    too: the breaker already knew the endpoint was down, so probing must not walk events
 *    into the DLQ however long the outage.
 *  - flush: after the batch, every attempt is recorded and every breaker updated in one
 *    statement (./delivery-records.ts).
 * The breaker rows are read once per batch, when the batch first needs them.
 */

import { type Clock, systemClock } from "../clock";
import type { Config } from "../config";
import type { Destination } from "../config/destination-specs";
import type { Db } from "../db/client";
import { DeferAttempt } from "../errors";
import type { EventEnvelope } from "../events/envelope";
import { createLogger, type Logger } from "../obs/log";
import { type Filter, globMatcher } from "../triggers/filters";
import type { DispatchHooks } from "../triggers/hooks";
import { type HandlerContext, type Match, TriggerRegistry } from "../triggers/registry";
import { BatchBreaker } from "./breaker";
import { type DeliveryFence, deliver } from "./deliver";
import { type AttemptRow, type BreakerPolicy, claimProbe, flushDeliveries, loadBreakers } from "./delivery-records";

export const TRIGGER_PREFIX = "destination ";

/** Extra time a prober holds the half-open breaker beyond its request timeout. */
const PROBE_LEASE_MARGIN_MS = 30_000;

export function breakerPolicy(cfg: Config): BreakerPolicy {
  return {
    threshold: cfg.DESTINATION_BREAKER_FAILURES,
    cooldownMs: cfg.DESTINATION_BREAKER_COOLDOWN_S * 1000,
    maxCooldownMs: cfg.DESTINATION_BREAKER_MAX_COOLDOWN_S * 1000,
  };
}

/** types AND sources, each a list of globs; an empty list matches anything. */
function accepts(d: Destination): (e: EventEnvelope) => boolean {
  const types = d.filter.types.map(globMatcher);
  const sources = d.filter.sources.map(globMatcher);
  return (e) =>
    (types.length === 0 || types.some((m) => m(e.type))) && (sources.length === 0 || sources.some((m) => m(e.source)));
}

function destinationFilter(d: Destination): Filter {
  return { describe: `destination(${d.name})`, test: accepts(d) };
}

/** The value at `path` (dotted) in the envelope, as a scope key; the source when missing. */
function scopeOf(path: string): (e: EventEnvelope) => string {
  const parts = path.split(".");
  return (e) => {
    let v: unknown = e;
    for (const p of parts) v = v !== null && typeof v === "object" ? (v as Record<string, unknown>)[p] : undefined;
    if (v === undefined || v === null || v === "") return e.source;
    return typeof v === "string" ? v : JSON.stringify(v);
  };
}

export interface DestinationOptions {
  config: Config;
  db: Db;
  /** The code triggers; the result holds them and the destinations. */
  base: TriggerRegistry;
  /** The consumer's clock (breaker times, retry times). */
  clock?: Clock;
  log?: Logger;
  /** Identifies this invocation as a breaker prober; default "d-<uuid>". */
  owner?: string;
}

export interface DestinationRuntime {
  /** Code triggers plus one trigger per destination. */
  triggers: TriggerRegistry;
  /** Pass to the consumer with `triggers`; undefined when no destination is configured. */
  hooks: DispatchHooks | undefined;
}

export function openDestinations(o: DestinationOptions): DestinationRuntime {
  const list = o.config.DESTINATIONS;
  if (list.length === 0) return { triggers: o.base, hooks: undefined };
  const clock = o.clock ?? systemClock;
  const log = o.log ?? createLogger(o.config.LOG_LEVEL);
  const owner = o.owner ?? `d-${crypto.randomUUID()}`;
  const policy = breakerPolicy(o.config);
  const byTrigger = new Map(list.map((d) => [TRIGGER_PREFIX + d.name, d]));

  // Per-batch state, reset by flush().
  let attempts: AttemptRow[] = [];
  let breakers: Promise<Map<string, BatchBreaker>> | null = null;
  const loadBatch = () =>
    (breakers ??= loadBreakers(
      o.db,
      list.map((d) => d.name),
    ).then((rows) => {
      const m = new Map<string, BatchBreaker>();
      for (const d of list) {
        const row = rows.find((r) => r.destination === d.name) ?? {
          destination: d.name,
          state: "closed" as const,
          failures: 0,
          openedAt: null,
          nextProbeAt: null,
          cooldownMs: 0,
          probeOwner: null,
        };
        m.set(
          d.name,
          new BatchBreaker(row, policy, () => claimProbe(o.db, d.name, owner, new Date(clock.now()), leaseFor(d))),
        );
      }
      return m;
    }));
  const leaseFor = (d: Destination) => new Date(clock.now() + d.timeoutMs + PROBE_LEASE_MARGIN_MS);

  const handler = (d: Destination) => async (ctx: HandlerContext) => {
    const b = (await loadBatch()).get(d.name)!;
    const probe = b.isProbe(ctx.event.id);
    const r = await deliver(d, ctx.event, { scope: ctx.scope, token: ctx.fence });
    const now = clock.now();
    attempts.push({
      eventId: ctx.event.id,
      destination: d.name,
      attempt: ctx.attempt,
      statusCode: r.statusCode,
      error: r.error,
      durationMs: r.durationMs,
      responseBody: r.responseBody,
      probe,
      at: new Date(now),
    });
    const openUntil = b.record(ctx.event.id, r.ok, now);
    if (r.ok) return;
    if (probe && openUntil) {
      throw new DeferAttempt(
        `${TRIGGER_PREFIX}${d.name}: ${r.error} (breaker probe; next probe ${openUntil.toISOString()})`,
        openUntil,
      );
    }
    throw new Error(r.error ?? "delivery failed");
  };

  const triggers = new TriggerRegistry();
  for (const t of o.base.list()) triggers.register(t);
  for (const d of list) {
    triggers.register({
      name: TRIGGER_PREFIX + d.name,
      filter: destinationFilter(d),
      scope: scopeOf(d.scope),
      handler: handler(d),
      ordered: d.ordered,
      onDead: d.onDead,
    });
  }

  const hooks: DispatchHooks = {
    async admit(c, matches: Match[]) {
      const dests = matches.map((m) => byTrigger.get(m.trigger.name)).filter((d): d is Destination => !!d);
      if (dests.length === 0) return null;
      const bs = await loadBatch();
      const now = clock.now();
      const deferral = (d: Destination, until: Date, why: string) =>
        new DeferAttempt(`${TRIGGER_PREFIX}${d.name}: ${why} until ${until.toISOString()}`, until);
      // First what needs no claim, so no probe is claimed for an event that waits anyway.
      for (const d of dests) {
        const p = bs.get(d.name)!.peek(now);
        if (p && !p.ok) return deferral(d, p.until, p.why);
      }
      const admitted: Destination[] = [];
      for (const d of dests) {
        const a = await bs.get(d.name)!.admit(c.event.id, now);
        if (!a.ok) {
          for (const x of admitted) bs.get(x.name)!.abandon(c.event.id, leaseFor(x));
          return deferral(d, a.until, a.why);
        }
        admitted.push(d);
      }
      return null;
    },
    async flush() {
      const batch = attempts;
      const bs = breakers ? await breakers.catch(() => null) : null;
      attempts = [];
      breakers = null;
      const tallies = bs ? [...bs.entries()].filter(([, b]) => b.touched).map(([name, b]) => b.tally(name)) : [];
      if (batch.length === 0 && tallies.length === 0) return;
      try {
        await flushDeliveries(o.db, owner, batch, tallies, new Date(clock.now()), policy);
      } catch (e) {
        // The deliveries happened; failing the batch would only send them again. Their
        // outcomes (and errors) are still settled in history.
        // Drizzle wraps the driver's error, whose message is the useful part.
        const cause = e instanceof Error && e.cause instanceof Error ? e.cause : e;
        log.error("could not record destination attempts", {
          error: cause instanceof Error ? cause.message : String(cause),
          attempts: batch.length,
        });
      }
    },
  };
  return { triggers, hooks };
}

/** What a handler's own delivery (ctx.deliver) came to. */
export type DirectDelivery =
  | { ok: true; statusCode: number | null }
  | { ok: false; refused: string }
  | { ok: false; error: string; statusCode: number | null };

export interface DirectDeliveryOptions {
  db: Db;
  config: Config;
  clock?: Clock;
  destination: Destination;
  /** The event to send (its id is the webhook-id). */
  event: EventEnvelope;
  /** The event being handled: the attempt is recorded under its id and attempt number. */
  parent: { id: string; attempt: number };
  fence: DeliveryFence;
  /** The caller's time left, ms: the request timeout is the shorter of it and the destination's. */
  timeLeftMs?: number;
}

/**
 * One delivery from inside a handler (an agent's `deliver` tool), by the path a destination
 * trigger takes: the destination's filter must accept the event (else refused, nothing sent),
 * its breaker admits it (open: DeferAttempt to the next probe; half-open: this may be the
 * probe), the request carries the fence header and is bounded by the caller's time, and the
 * attempt and the breaker's tally are recorded in one statement before this resolves.
 */
export async function deliverNow(o: DirectDeliveryOptions): Promise<DirectDelivery> {
  const d = o.destination;
  const clock = o.clock ?? systemClock;
  if (!accepts(d)(o.event))
    return {
      ok: false,
      refused: `destination ${d.name} does not take events of type "${o.event.type}" from "${o.event.source}" (its filter)`,
    };
  const policy = breakerPolicy(o.config);
  const owner = `a-${crypto.randomUUID()}`;
  const lease = () => new Date(clock.now() + d.timeoutMs + PROBE_LEASE_MARGIN_MS);
  const [row] = await loadBreakers(o.db, [d.name]);
  const b = new BatchBreaker(row!, policy, () => claimProbe(o.db, d.name, owner, new Date(clock.now()), lease()));
  const a = await b.admit(o.event.id, clock.now());
  if (!a.ok) throw new DeferAttempt(`${TRIGGER_PREFIX}${d.name}: ${a.why} until ${a.until.toISOString()}`, a.until);
  const timeoutMs = Math.max(1, Math.min(d.timeoutMs, o.timeLeftMs ?? d.timeoutMs));
  const r = await deliver({ ...d, timeoutMs }, o.event, o.fence);
  const now = clock.now();
  const openUntil = b.record(o.event.id, r.ok, now);
  await flushDeliveries(
    o.db,
    owner,
    [
      {
        eventId: o.parent.id,
        destination: d.name,
        attempt: o.parent.attempt,
        statusCode: r.statusCode,
        error: r.error,
        durationMs: r.durationMs,
        responseBody: r.responseBody,
        probe: a.probe,
        at: new Date(now),
      },
    ],
    [b.tally(d.name)],
    new Date(now),
    policy,
  );
  if (r.ok) return { ok: true, statusCode: r.statusCode };
  if (a.probe && openUntil)
    throw new DeferAttempt(
      `${TRIGGER_PREFIX}${d.name}: ${r.error} (breaker probe; next probe ${openUntil.toISOString()})`,
      openUntil,
    );
  return { ok: false, error: r.error ?? "delivery failed", statusCode: r.statusCode };
}
