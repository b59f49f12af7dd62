/**
 * Test events, built in memory: pure, so the unit project (no services) can use them too.
 */
import type { EventEnvelope } from "../../src/events/envelope";

let seq = 0;
/** A valid envelope with a fresh id and trace id; `fields` replace or add fields. */
export function event(fields: Partial<EventEnvelope> & Record<string, unknown> = {}): EventEnvelope {
  return {
    id: crypto.randomUUID(),
    type: "test.happened",
    source: "test",
    timestamp: new Date().toISOString(),
    meta: { trace_id: crypto.randomUUID().replace(/-/g, "") },
    n: seq++,
    ...fields,
  } as EventEnvelope;
}
