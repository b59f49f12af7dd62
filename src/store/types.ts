/**
 * The EventStore contract: one interface, two backends (Redis Streams, Postgres).
 * Ingestion, consumers, triggers, DLQ and replay depend on this interface only;
 * EVENT_BACKEND picks the implementation (src/store/index.ts).
 *
 * publish() resolving means the events are durably handed over: only then may ingest
 * answer 2xx. (The consumers issue extends this contract with claim / settle.)
 */
import type { EventEnvelope } from "../events/envelope";

export interface EventStore {
  readonly backend: "redis" | "postgres";
  /** Durably appends the events, in order. All or nothing from the caller's view: on error, answer 5xx. */
  publish(events: EventEnvelope[]): Promise<void>;
}
