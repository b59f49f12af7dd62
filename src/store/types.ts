/**
 * The EventStore contract: one interface, two backends (Redis Streams, Postgres).
 * Ingestion, consumers, triggers, DLQ and replay depend on this interface only;
 * EVENT_BACKEND picks the implementation (src/store/index.ts).
 *
 * publish() resolving means the events are durably handed over: only then may ingest
 * answer 2xx. (The consumers issue extends this contract with claim / settle.)
 */
import type { EventEnvelope } from "../events/envelope";

export interface PublishOptions {
  /**
   * Consumer wake-up debounce window, ms. When set, the store also answers (in the same
   * round trip) whether this publish opened a new window, i.e. whether the caller should
   * send the wake-up message (src/ingest/wake.ts).
   */
  wakeWindowMs?: number;
}

export interface PublishReceipt {
  /** This publish opened a wake-up window: send the wake-up. Always false without wakeWindowMs. */
  wake: boolean;
  /** How much longer the current wake-up window stays open, ms (0 when not asked). */
  wakeWindowLeftMs: number;
}

export interface Dedupe {
  /** Logical key, e.g. "<source>:<delivery id>"; the backend namespaces it. */
  key: string;
  windowS: number;
}

export type DedupedReceipt = PublishReceipt & ({ duplicate: false } | { duplicate: true; firstId: string });

export interface EventStore {
  readonly backend: "redis" | "postgres";
  /**
   * Durably appends the events, in order, in one round trip. All or nothing from the
   * caller's view: on error, answer 5xx (some may have been appended: client-supplied ids
   * make a retry idempotent, history stores each id once).
   */
  publish(events: EventEnvelope[], opts?: PublishOptions): Promise<PublishReceipt>;
  /**
   * Appends one event unless `dedupe.key` was seen within `dedupe.windowS` seconds
   * (webhook redeliveries). Atomic: the key is recorded if and only if the event was
   * appended, so a failed publish never makes the provider's retry look like a duplicate.
   */
  publishOnce(event: EventEnvelope, dedupe: Dedupe, opts?: PublishOptions): Promise<DedupedReceipt>;

}
