/**
 * The shape of a stream entry. An event is one field `e` holding the whole envelope as JSON,
 * so that no client-side deserialisation can alter it; a DLQ trail entry adds why and when.
 */
import type { EventEnvelope } from "../../events/envelope";
import type { DlqTrailEntry } from "../types";

export const ENTRY_FIELD = "e";

/** [entryId, [field, value, field, value, ...]] as Redis returns it. */
export type StreamEntry = [string, string[]];

/** The fields of an event's entry (every lane: shard streams and the replay lane). */
export function eventFields(e: EventEnvelope): Record<string, string> {
  return { [ENTRY_FIELD]: JSON.stringify(e) };
}

/** The fields of a DLQ trail entry: the event, its last error, how many attempts, when. */
export function dlqFields(x: DlqTrailEntry): Record<string, string> {
  return {
    [ENTRY_FIELD]: JSON.stringify(x.event),
    id: x.event.id,
    error: x.error,
    attempts: String(x.attempts),
    at: x.at,
  };
}

/** The value of `name` in a stream entry's field/value list. */
export function fieldOf(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/** The envelope an event's entry holds; undefined when the entry is not one. */
export function envelopeOf(fields: string[]): EventEnvelope | undefined {
  const raw = fieldOf(fields, ENTRY_FIELD);
  if (raw === undefined) return undefined;
  try {
    const e = JSON.parse(raw) as EventEnvelope;
    if (e && typeof e.id === "string" && typeof e.type === "string" && typeof e.source === "string" && e.meta) return e;
  } catch {
    // fall through: not an envelope
  }
  return undefined;
}
