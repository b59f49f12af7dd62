/**
 * Derived events (ctx.publish): full envelopes built from a parent event.
 *
 * Ids are deterministic - a hash of (parent id, trigger, call order) shaped as a UUID
 * (version 8, "custom") - so a parent handled twice (redelivered after a crash) derives the
 * same ids, and history, keyed by id, keeps one row each.
 */
import type { EventEnvelope } from "../events/envelope";
import { hashedUuid } from "../events/ids";
import type { DerivedEventInput } from "../triggers/registry";

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
    id: id ?? (await hashedUuid(parent.id, trigger, seq)),
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
