/**
 * Accepting typed events from API-key holders, whatever the door (POST /events, POST
 * /events/batch, a WebSocket frame): validate every item against the registry (all or
 * nothing, every item's errors listed), then publish.
 *
 * A client-supplied `id` claims the key "@id:<id>" for IDEMPOTENCY_WINDOW_S with a digest
 * of the item as sent (RFC 8785 canonical JSON, so key order and spacing do not matter):
 * the same id with the same body again is a duplicate (answered with the id, nothing
 * stored twice); with another body it is a 409 conflict, and nothing of the request is
 * stored. Events without an id take the plain publish (one command per event).
 */
import canonicalize from "canonicalize";
import type { Guard, GuardedEvent } from "../backends/types";
import { type BuildContext, buildEvent } from "../events/build";
import type { EventEnvelope } from "../events/envelope";
import { registry } from "../events/event-types";
import { HTTPProblem, invalidFields, type ProblemError, pointerToken } from "../http/problem";
import { sha256, toHex } from "./crypto";
import { type IngestContext, publishEvents, publishGuardedEvents } from "./publish";

/** Where an item's errors point: "" for a lone event, "/events/<i>" in a batch. */
export type ItemPath = (i: number) => string;

export interface Built {
  events: EventEnvelope[];
  /** Per event: the guard of its client-supplied id, if it brought one. */
  guards: Guard[][];
}

/** The registered types, on a refusal that names an unknown one. */
function refuse(errors: ProblemError[], unknownTypes: string[], detail?: string): HTTPProblem {
  return invalidFields(errors, detail, unknownTypes.length ? { registered_types: registry.types() } : {});
}

async function idGuard(item: unknown, event: EventEnvelope): Promise<Guard[]> {
  if (typeof (item as { id?: unknown }).id !== "string") return [];
  const digest = toHex(await sha256(canonicalize(item) ?? ""));
  return [{ key: `@id:${event.id}`, digest, onMismatch: "conflict" }];
}

/** The items of a `{"events": [...]}` body (1 to `max` of them, no other member), or a 422. */
export function batchItems(body: unknown, max: number): unknown[] {
  if (
    !body ||
    typeof body !== "object" ||
    Array.isArray(body) ||
    !Array.isArray((body as { events?: unknown }).events)
  ) {
    throw invalidFields([{ path: "/events", message: 'required: the body is {"events": [ ... ]}' }]);
  }
  const items = (body as { events: unknown[] }).events;
  const extra = Object.keys(body).filter((k) => k !== "events");
  const errors: ProblemError[] = extra.map((k) => ({ path: `/${pointerToken(k)}`, message: "unknown field" }));
  if (items.length === 0) errors.push({ path: "/events", message: "must contain at least one event" });
  if (items.length > max)
    errors.push({ path: "/events", message: `at most ${max} events per batch (got ${items.length})` });
  if (errors.length) throw invalidFields(errors);
  return items;
}

/** Builds every item or throws one 422 listing every item's errors. */
export async function buildItems(items: unknown[], bctx: BuildContext, at: ItemPath): Promise<Built> {
  const errors: ProblemError[] = [];
  const events: EventEnvelope[] = [];
  const unknown: string[] = [];
  const seen = new Map<string, number>();
  items.forEach((item, i) => {
    const r = buildEvent(item, registry, bctx);
    if (!r.ok) {
      for (const e of r.errors) errors.push({ ...e, path: `${at(i)}${e.path ?? ""}` });
      if (r.unknownType !== undefined) unknown.push(r.unknownType);
      return;
    }
    // Two items with one id: history would keep only the first, silently. Refuse instead.
    const first = seen.get(r.event.id);
    if (first !== undefined) errors.push({ path: `${at(i)}/id`, message: `same id as ${at(first)}` });
    else seen.set(r.event.id, i);
    events.push(r.event);
  });
  if (errors.length) {
    const detail =
      at(0) !== ""
        ? `${new Set(errors.map((e) => e.path!.split("/")[2])).size} of ${items.length} events are invalid; nothing was published`
        : undefined;
    throw refuse(errors, unknown, detail);
  }
  const guards = await Promise.all(items.map((item, i) => idGuard(item, events[i]!)));
  return { events, guards };
}

export interface Published {
  /** Per event, in order: its id (for a duplicate, the id stored first). */
  ids: string[];
  /** Per event: it was already stored (an idempotent retry); nothing was stored for it now. */
  duplicate: boolean[];
}

/** Publishes built events; a reused id with another body is a 409 and stores nothing. */
export async function publishBuilt(ctx: IngestContext, built: Built, at: ItemPath): Promise<Published> {
  const { events, guards } = built;
  if (guards.every((g) => g.length === 0)) {
    await publishEvents(ctx, events);
    return { ids: events.map((e) => e.id), duplicate: events.map(() => false) };
  }
  const items: GuardedEvent[] = events.map((event, i) => ({ event, guards: guards[i]! }));
  const r = await publishGuardedEvents(ctx, items, ctx.cfg.IDEMPOTENCY_WINDOW_S);
  if (r.conflict) {
    const errors: ProblemError[] = [];
    r.results.forEach((v, i) => {
      if (v.status === "conflict")
        errors.push({
          path: `${at(i)}/id`,
          message: `id ${events[i]!.id} is already stored with a different body; use a new id for a new event`,
        });
    });
    throw new HTTPProblem(
      409,
      "Event id conflict",
      `${errors.length === 1 ? "An event id was" : `${errors.length} event ids were`} used before for a different event; nothing was published.`,
      { errors },
    );
  }
  return {
    ids: r.results.map((v, i) => (v.status === "duplicate" ? v.firstId : events[i]!.id)),
    duplicate: r.results.map((v) => v.status === "duplicate"),
  };
}
