/**
 * Derived events (ctx.publish): full envelopes built from a parent event.
 *
 * Ids are deterministic - a hash of (parent id, trigger, call order) shaped as a UUID
 * (version 8, "custom") - so a parent handled twice (redelivered after a crash) derives the
 * same ids, and history, keyed by id, keeps one row each.
 */
import type { EventEnvelope } from "../events/envelope";
import type { DerivedEventInput } from "../triggers/registry";

async function derivedId(parentId: string, trigger: string, seq: number): Promise<string> {
  const bytes = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`${parentId}\u0000${trigger}\u0000${seq}`)),
  ).slice(0, 16);
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
): Promise<EventEnvelope> {
  const { type, source, id, meta, ...fields } = input;
  if (typeof type !== "string" || type.length === 0) throw new TypeError("ctx.publish: `type` is required");
  for (const k of ["timestamp"]) delete fields[k];
  return {
    ...fields,
    id: id ?? (await derivedId(parent.id, trigger, seq)),
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
}
