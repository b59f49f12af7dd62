/** A field of an event by dotted path ("body.repository.full_name"), as a scope key. */
import type { EventEnvelope } from "../events/envelope";

/** The value at `path`, as text (JSON for objects); undefined when missing, null or empty. */
export function fieldAt(e: EventEnvelope, path: string): string | undefined {
  let v: unknown = e;
  for (const p of path.split("."))
    v = v !== null && typeof v === "object" ? (v as Record<string, unknown>)[p] : undefined;
  if (v === undefined || v === null || v === "") return undefined;
  return typeof v === "string" ? v : JSON.stringify(v);
}
