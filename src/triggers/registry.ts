/**
 * Triggers (Reflex's agents): a name, a filter, a handler, a scope key (default: the event's
 * source) and a priority (higher runs first).
 *
 * A TriggerRegistry is a plain object passed to the consumer, so a test builds its own and
 * nothing leaks between tests. The worker entry uses `defaultTriggers`, which
 * src/handlers/index.ts fills: that file is where users register their triggers.
 */
import type { Config, Env } from "../config";
import type { EventEnvelope } from "../events/envelope";
import type { Logger } from "../obs/log";
import type { Filter, FilterContext } from "./filters";
import type { StepOptions } from "./steps";

/** What ctx.publish() accepts: a type plus fields; the rest is filled in from the parent. */
export interface DerivedEventInput {
  type: string;
  /** Default: the parent's source. */
  source?: string;
  /** Default: derived deterministically from the parent, the trigger and the call order. */
  id?: string;
  meta?: Record<string, unknown>;
  [field: string]: unknown;
}

export interface HandlerContext {
  event: EventEnvelope;
  /** The scope key this handler runs under (events sharing it run one at a time). */
  scope: string;
  /**
   * The fencing token of this run's grant of `scope`: it only grows per scope, so a system
   * this handler writes to can refuse a write carrying a lower token than one it has seen
   * (destinations send it as `reflex-fence: <scope>:<token>`).
   */
  fence: number;
  trigger: string;
  /** This delivery's attempt number (1 on the first). */
  attempt: number;
  log: Logger;
  env: Env;
  config: Config;
  /**
   * Publishes a derived event: correlation_id inherited (the parent's id when it has none),
   * causation_id = the parent's id, trace_id inherited. Derived events are staged and
   * published when all of the parent's handlers succeeded, before the parent is
   * acknowledged - a failed attempt publishes nothing, and a redelivered parent produces
   * the same ids, which history stores once. Resolves with the full envelope.
   */
  publish(input: DerivedEventInput): Promise<EventEnvelope>;
  /**
   * A durable step (./steps.ts): runs `fn` once per event and trigger, records its JSON
   * result in Postgres, and on any later attempt of this event returns the recorded result
   * without running `fn`. Derived events published inside `fn` are recorded with it. Names
   * are unique per handler call; await each step before starting the next. Returns the
   * result as JSON would give it back (what a later attempt gets).
   */
  step<T>(name: string, fn: () => T | Promise<T>, options?: StepOptions<Awaited<T>>): Promise<Awaited<T>>;
  /** Events of this event's source from history, newest first, older than this one (replay copies left out). */
  history(query: HistoryQuery): Promise<EventEnvelope[]>;
  /**
   * POSTs `event` now to the destination `name` of DESTINATIONS, as destination triggers do
   * (src/destinations/runtime.ts, deliverNow): its filter, its circuit breaker (open: the
   * attempt is deferred), this run's fence header, the attempt recorded under this event.
   * `timeLeftMs` shortens the request timeout.
   */
  deliver(name: string, event: EventEnvelope, o?: { timeLeftMs?: number }): Promise<DeliveryOutcome>;
}

/** What ctx.deliver came to: sent, refused by the destination's filter (nothing sent), or failed. */
export type DeliveryOutcome =
  | { ok: true; statusCode: number | null }
  | { ok: false; refused: string }
  | { ok: false; error: string; statusCode: number | null };

export interface HistoryQuery {
  /** At most this many (1 to 100). */
  limit: number;
  /**
   * Only events whose field at this dotted path (e.g. "body.repository.full_name") holds the
   * same value as this event's: a scope finer than the source.
   */
  field?: string;
  /** Event type, `*` as a wildcard. */
  type?: string;
  /** Only events whose JSON contains this text (case-insensitive). */
  contains?: string;
}

export type Handler = (ctx: HandlerContext) => unknown | Promise<unknown>;

export interface TriggerSpec {
  name: string;
  filter: Filter;
  handler: Handler;
  /**
   * What the trigger lacks in this configuration, or null: a trigger that lacks something is
   * off (it matches nothing), and /health/detailed and the consumer's log say why.
   */
  unavailable?: (cfg: Config) => string | null;
  /** Scope key for the lock; default: the event's source. */
  scope?: (e: EventEnvelope) => string;
  /** Higher runs first; default 0. */
  priority?: number;
  /**
   * Its events of one scope are handled strictly in arrival order (src/consume/ordered-scopes.ts):
   * while the earliest open one fails, the later ones wait, without using attempts.
   */
  ordered?: boolean;
  /**
   * Ordered only: when the scope's head reaches the DLQ, "skip" (default) resumes the scope
   * with the next event; "hold" keeps it parked until an operator retries or discards the head.
   */
  onDead?: "skip" | "hold";
  /**
   * The event types its handler publishes (ctx.publish), e.g. ["issue.triaged"]. Declared
   * types are refused from API keys (unless a key's grant names them), so an event of one is
   * known to come from a handler; ctx.publish of a type not listed fails the attempt. Empty
   * or absent: any type, and none reserved.
   */
  publishes?: string[];
}

export interface Trigger extends Required<Omit<TriggerSpec, "scope" | "unavailable">> {
  scope: (e: EventEnvelope) => string;
  unavailable?: (cfg: Config) => string | null;
}

export interface MatchError {
  error: string;
}

export interface Match {
  trigger: Trigger;
  scope: string;
}

const bySource = (e: EventEnvelope) => e.source;

/** A replay target names a trigger, or a destination (whose trigger is "destination <name>", src/destinations/runtime.ts). */
const targets = (trigger: string, target: string) => trigger === target || trigger === `destination ${target}`;

export class TriggerRegistry {
  private readonly triggers: Trigger[] = [];

  register(spec: TriggerSpec): this {
    if (!spec.name) throw new Error("trigger: name is required");
    if (this.triggers.some((t) => t.name === spec.name))
      throw new Error(`trigger "${spec.name}" is already registered`);
    for (const t of spec.publishes ?? [])
      if (typeof t !== "string" || t.length === 0 || t.includes("*"))
        throw new Error(`trigger "${spec.name}": publishes lists event types by name (no wildcards)`);
    this.triggers.push({ scope: bySource, priority: 0, ordered: false, onDead: "skip", publishes: [], ...spec });
    // Stable order: priority, then registration order (sort is stable).
    this.triggers.sort((a, b) => b.priority - a.priority);
    return this;
  }

  unregister(name: string): boolean {
    const i = this.triggers.findIndex((t) => t.name === name);
    if (i >= 0) this.triggers.splice(i, 1);
    return i >= 0;
  }

  list(): readonly Trigger[] {
    return this.triggers;
  }

  /** Every type some trigger declares it publishes (TriggerSpec.publishes). */
  publishedTypes(): Set<string> {
    return new Set(this.triggers.flatMap((t) => t.publishes));
  }

  /** The triggers that are off in `cfg` (TriggerSpec.unavailable), each with why. */
  off(cfg: Config): Array<{ trigger: string; reason: string }> {
    return this.triggers.flatMap((t) => {
      const reason = t.unavailable?.(cfg);
      return reason ? [{ trigger: t.name, reason }] : [];
    });
  }

  /**
   * The triggers matching each event, highest priority first. All filters of the batch are
   * evaluated together, so stateful filters make one FilterState call per round for the batch.
   * With `config`, triggers that are off in it match nothing.
   */
  async match(
    events: EventEnvelope[],
    ctx: Omit<FilterContext, "trigger"> & { config?: Config },
  ): Promise<Array<Match[] | MatchError>> {
    const { config, ...fctx } = ctx;
    const off = new Set(config ? this.off(config).map((x) => x.trigger) : []);
    return Promise.all(
      events.map(async (e) => {
        try {
          const results = await Promise.all(
            this.triggers.map((t) => !off.has(t.name) && t.filter.test(e, { ...fctx, trigger: t.name }, "f")),
          );
          // A replay aimed at one trigger or destination (src/jobs/replay-runner.ts) runs only that one.
          const only = typeof e.meta?.replay_target === "string" ? e.meta.replay_target : undefined;
          const out: Match[] = [];
          results.forEach((ok, i) => {
            const t = this.triggers[i]!;
            if (ok && (only === undefined || targets(t.name, only))) out.push({ trigger: t, scope: t.scope(e) });
          });
          return out;
        } catch (err) {
          // A throwing filter or scope function fails this event's attempt, not the batch.
          return { error: `matching failed: ${err instanceof Error ? err.message : String(err)}` };
        }
      }),
    );
  }
}

/** The registry the worker entry uses; src/handlers/index.ts registers into it. */
export const defaultTriggers = new TriggerRegistry();
