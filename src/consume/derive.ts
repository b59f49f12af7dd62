/**
 * Derived events (ctx.publish): full envelopes built from a parent event, checked against
 * the event registry as ingest checks client input - an unknown type or invalid fields
 * reject the publish with an error naming the problem, which fails the handler's attempt.
 *
 * Ids are deterministic - an HMAC of (parent id, trigger, call order) shaped as a UUID
 * (version 8, "custom") - so a parent handled twice (redelivered after a crash) derives the
 * same ids, and history, keyed by id, keeps one row each. The HMAC is keyed with a server
 * secret (EVENT_ID_SECRET, else one derived from DATABASE_URL): a client that knows its
 * event's id and a trigger's name still cannot compute a derived id and claim it first
 * with an event of its own.
 */
import type { Config } from "../config";
import { checkEnvelope } from "../events/build";
import type { EventEnvelope } from "../events/envelope";
import type { EventRegistry } from "../events/registry";
import type { DerivedEventInput } from "../triggers/registry";

/** A derived event the registry refused: the handler's attempt fails with this message. */
export class InvalidDerivedEvent extends Error {
  constructor(
    readonly type: string,
    readonly problem: string,
  ) {
    super(`ctx.publish: derived event of type "${type}" refused: ${problem}`);
    this.name = "InvalidDerivedEvent";
  }
}

/** ctx.publish of a type its trigger did not declare (TriggerSpec.publishes): the attempt fails. */
export class UndeclaredDerivedType extends Error {
  constructor(trigger: string, type: string, declared: readonly string[]) {
    super(
      `ctx.publish: trigger "${trigger}" publishes only ${declared.map((t) => `"${t}"`).join(", ")} (publishes), not "${type}"`,
    );
    this.name = "UndeclaredDerivedType";
  }
}

const enc = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

/** The HMAC key of derived ids for a configuration (imported once per isolate and secret). */
export function derivedIdKey(cfg: Pick<Config, "EVENT_ID_SECRET" | "DATABASE_URL">): Promise<CryptoKey> {
  const secret = cfg.EVENT_ID_SECRET ?? `reflex derived ids\u0000${cfg.DATABASE_URL}`;
  let k = keys.get(secret);
  if (!k) {
    if (keys.size > 16) keys.clear();
    k = crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    keys.set(secret, k);
  }
  return k;
}

async function derivedId(key: CryptoKey, parentId: string, trigger: string, seq: number): Promise<string> {
  const mac = await crypto.subtle.sign("HMAC", key, enc.encode(`${parentId}\u0000${trigger}\u0000${seq}`));
  const bytes = new Uint8Array(mac).slice(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x80; // version 8
  bytes[8] = (bytes[8]! & 0x3f) | 0x80; // RFC 9562 variant
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export async function deriveEvent(
  parent: EventEnvelope,
  trigger: string,
  seq: number,
  input: DerivedEventInput,
  nowMs: number,
  idKey: Promise<CryptoKey>,
  eventTypes: EventRegistry,
): Promise<EventEnvelope> {
  const { type, source, id, meta, ...fields } = input;
  if (typeof type !== "string" || type.length === 0) throw new TypeError("ctx.publish: `type` is required");
  for (const k of ["timestamp"]) delete fields[k];
  const built: EventEnvelope = {
    ...fields,
    id: id ?? (await derivedId(await idKey, parent.id, trigger, seq)),
    type,
    source: source ?? parent.source,
    timestamp: new Date(nowMs).toISOString(),
    meta: {
      ...meta,
      trace_id: parent.meta.trace_id,
      correlation_id: parent.meta.correlation_id ?? parent.id,
      causation_id: parent.id,
      ...(parent.meta.replay !== undefined ? { replay: parent.meta.replay } : {}),
    },
  };
  const checked = checkEnvelope(built, eventTypes);
  if (!checked.ok) throw new InvalidDerivedEvent(type, checked.problem);
  return checked.event;
}
