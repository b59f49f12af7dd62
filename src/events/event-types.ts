/**
 * Event types: THE place to add one. Each entry is the zod schema of the type's own fields
 * (the envelope - id, type, source, timestamp, meta - is common to all and validated in
 * ./build.ts). Use z.strictObject so a misspelt field is an error, not silently dropped.
 *
 *   "order.created": z.strictObject({ order_id: z.string(), total_cents: z.number().int() }),
 */
import { z } from "zod";
import { EventRegistry } from "./type-registry";

const name = z.string().min(1).max(256);

/** Reflex's built-in types, plus webhook.received for /webhooks/:source. */
export const builtinTypes = {
  "ws.message": z.strictObject({
    connection_id: name,
    content: z.string(),
  }),
  "http.request": z.strictObject({
    method: z.enum(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"]),
    path: z.string().min(1).max(8192).startsWith("/"),
    headers: z.record(z.string().min(1).max(256), z.string().max(8192)).default({}),
    body: z.unknown().optional(),
  }),
  "timer.tick": z.strictObject({
    timer_name: name,
    tick_count: z.number().int().min(0),
  }),
  lifecycle: z.strictObject({
    action: z.enum(["started", "stopped", "error"]),
    details: z.union([z.string().max(65_536), z.record(z.string(), z.unknown())]).default(""),
  }),
  "webhook.received": z.strictObject({
    /** The provider's delivery id (webhook-id, X-GitHub-Delivery, Stripe event id); null when the scheme has none. */
    delivery_id: name.nullable(),
    /** Selected request headers (content type, user agent, provider event type); never credentials. */
    headers: z.record(z.string(), z.string()),
    /** The parsed JSON body. */
    body: z.unknown(),
  }),
} satisfies Record<string, z.ZodType<Record<string, unknown>>>;

/** Your own types: add entries here. */
export const projectTypes: Record<string, z.ZodType<Record<string, unknown>>> = {
  /** A GitHub issue classified by the triage agent (src/handlers/issue-triage.ts). */
  "issue.triaged": z.strictObject({
    /** owner/name */
    repository: z.string().min(1).max(256),
    issue_number: z.number().int().min(1),
    labels: z.array(z.string().min(1).max(50)).min(1).max(10),
    /** One line. */
    summary: z.string().min(1).max(200),
  }),
};

export function defaultRegistry(): EventRegistry {
  const r = new EventRegistry();
  for (const [type, schema] of Object.entries({ ...builtinTypes, ...projectTypes })) r.register(type, schema);
  return r;
}

/** The registry ingest validates against. */
export const registry = defaultRegistry();
