/**
 * The event envelope, as in Reflex: id, type, source, timestamp (UTC), meta, plus the
 * type's own fields at the top level.
 *
 *   { "id": "…uuid…", "type": "ws.message", "source": "ws:client123",
 *     "timestamp": "2026-11-27T21:00:00.000Z",
 *     "meta": { "trace_id": "…", "correlation_id": "…", "causation_id": "…" },
 *     "connection_id": "client123", "content": "hello" }
 *
 * Type-specific validation lives in ./type-registry.ts; this module only knows the common part.
 */
import { z } from "zod";

export const metaSchema = z
  .object({
    trace_id: z.string().min(1).max(128),
    correlation_id: z.string().min(1).max(128).optional(),
    causation_id: z.string().min(1).max(128).optional(),
    /** Set on events republished by a replay job: the job's id. */
    replay: z.string().min(1).max(128).optional(),
  })
  .catchall(z.unknown());

/**
 * Where an event came in, set by the server and never taken from a client (meta.ingress):
 * a verified webhook delivery (its source and signature scheme), an API key over HTTP or
 * over the WebSocket (the key's id). Events a handler derives carry none; replay copies
 * keep their original's.
 */
export type Ingress =
  | { kind: "webhook"; source: string; scheme: string }
  | { kind: "api"; key: string }
  | { kind: "ws"; key: string };

/**
 * meta keys only the server sets: the code reads them to decide what runs (replay_target
 * restricts the triggers, replay keeps an event out of replays) and where an event came
 * from (ingress). A client that sends one gets a 422, so its event cannot pose as a replay,
 * silence triggers, or look verified. Keys starting with "replay_" are reserved as well.
 */
export const RESERVED_META_KEYS = ["ingress", "replay", "replay_target"] as const;

export function isReservedMetaKey(k: string): boolean {
  return (RESERVED_META_KEYS as readonly string[]).includes(k) || k.startsWith("replay_");
}

/** Event types only the server produces: refused from clients (a client's webhook.received would pass as a verified delivery). */
export const INGRESS_TYPES = ["webhook.received"] as const;

export type EventMeta = z.infer<typeof metaSchema>;

/** A fully-formed event: every common field present, typed fields alongside. */
export interface EventEnvelope {
  id: string;
  type: string;
  source: string;
  /** ISO-8601, UTC. */
  timestamp: string;
  meta: EventMeta;
  [field: string]: unknown;
}

export const ENVELOPE_KEYS = ["id", "type", "source", "timestamp", "meta"] as const;

/** The event's own fields: everything but the common envelope keys. */
export function payloadOf(e: EventEnvelope): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) {
    if (!(ENVELOPE_KEYS as readonly string[]).includes(k)) out[k] = v;
  }
  return out;
}

/** Rebuilds an envelope from its stored parts (history rows). */
export function envelopeFrom(parts: {
  id: string;
  type: string;
  source: string;
  timestamp: Date | string;
  meta: Record<string, unknown>;
  payload: Record<string, unknown>;
}): EventEnvelope {
  return {
    ...parts.payload,
    id: parts.id,
    type: parts.type,
    source: parts.source,
    timestamp: typeof parts.timestamp === "string" ? parts.timestamp : parts.timestamp.toISOString(),
    meta: parts.meta as EventMeta,
  };
}

/** A new trace id: 32 lowercase hex characters, the W3C trace-context form. */
export function newTraceId(): string {
  return crypto.randomUUID().replace(/-/g, "");
}
