/**
 * Builds a full envelope from client input: validates the common part and the type's own
 * fields (registry), fills in what the client may omit, and reports every problem at once
 * as JSON Pointers relative to the event object.
 *
 * - `id`: a client-supplied id is accepted only if it is a UUID (it then doubles as an
 *   idempotency key: history stores each id once); otherwise crypto.randomUUID().
 * - `timestamp`: ISO 8601 with an offset, normalised to UTC; now when absent; at most
 *   `maxFutureSkewS` ahead of `now`.
 * - `meta.trace_id`: the client's, else the request's (traceparent), else a new one.
 * - `meta.ingress`: always the server's (BuildContext.ingress); reserved meta keys and
 *   ingress-only types (webhook.received) from a client are errors naming them.
 * - `meta.causation_id` / `meta.correlation_id` from a client are kept as
 *   `meta.client_causation_id` / `meta.client_correlation_id`: the unprefixed ones, which
 *   chains and correlation searches follow, are set by the server only (derived events,
 *   replay copies), so a client cannot attach its event to another one.
 * - Own keys only: the input is copied into null-prototype objects, so a "__proto__" key
 *   can never supply fields through a prototype (ingest refuses such keys anyway).
 */
import { z } from "zod";
import { type ProblemError, zodErrors } from "../http/problem";
import {
  ENVELOPE_KEYS,
  type EventEnvelope,
  type EventMeta,
  INGRESS_TYPES,
  type Ingress,
  isReservedMetaKey,
  payloadOf,
} from "./envelope";
import type { EventRegistry } from "./type-registry";

const ref = z.string().min(1).max(128);

const envelopeInput = z.object({
  id: z.uuid("must be a UUID").optional(),
  type: z.string().min(1).max(128),
  source: z.string().min(1).max(256),
  timestamp: z.iso.datetime({ offset: true, message: "must be an ISO 8601 date-time with a time zone" }).optional(),
  meta: z
    .object({
      trace_id: ref.optional(),
      correlation_id: ref.optional(),
      causation_id: ref.optional(),
    })
    .catchall(z.unknown())
    .superRefine((m, ctx) => {
      for (const k of Object.keys(m)) {
        if (isReservedMetaKey(k))
          ctx.addIssue({ code: "custom", path: [k], message: "is set by the server; clients cannot send it" });
      }
      // Both spellings of one claim: which one holds would be arbitrary.
      for (const k of ["causation_id", "correlation_id"] as const)
        if (m[k] !== undefined && m[`client_${k}`] !== undefined)
          ctx.addIssue({ code: "custom", path: [`client_${k}`], message: `send either ${k} or client_${k}, not both` });
    })
    .optional(),
});

export interface BuildContext {
  /** trace_id for events that bring none (from traceparent, or new). */
  traceId: string;
  /** "now" for events without a timestamp (one value per request keeps a batch coherent). */
  now: Date;
  /** Where the event came in: becomes meta.ingress. */
  ingress: Ingress;
  /** How far past `now` a client's timestamp may be, seconds (EVENT_MAX_FUTURE_SKEW_S). */
  maxFutureSkewS: number;
}

export type BuildResult =
  | { ok: true; event: EventEnvelope }
  | { ok: false; errors: ProblemError[]; unknownType?: string };

export function buildEvent(input: unknown, registry: EventRegistry, ctx: BuildContext): BuildResult {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return { ok: false, errors: [{ path: "", message: "an event must be a JSON object" }] };
  }
  const obj = input as Record<string, unknown>;
  const common: Record<string, unknown> = Object.create(null);
  const fields: Record<string, unknown> = Object.create(null);
  for (const [k, v] of Object.entries(obj)) {
    if ((ENVELOPE_KEYS as readonly string[]).includes(k)) common[k] = v;
    else fields[k] = v;
  }

  const env = envelopeInput.safeParse(common);
  const errors: ProblemError[] = env.success ? [] : zodErrors(env.error);
  const at = env.success && env.data.timestamp !== undefined ? Date.parse(env.data.timestamp) : undefined;
  if (at !== undefined && at > ctx.now.getTime() + ctx.maxFutureSkewS * 1000)
    errors.push({
      path: "/timestamp",
      message: `is more than ${ctx.maxFutureSkewS} s ahead of the server's clock (${ctx.now.toISOString()})`,
    });

  // Type-specific fields are checked whenever the type is known, so one answer lists all problems.
  const type = typeof obj.type === "string" ? obj.type : undefined;
  let payload: Record<string, unknown> | undefined;
  let unknownType: string | undefined;
  if (type !== undefined && type.length > 0) {
    if (ctx.ingress.kind !== "webhook" && (INGRESS_TYPES as readonly string[]).includes(type)) {
      errors.push({ path: "/type", message: `"${type}" events are made by the server only (POST /webhooks/{source})` });
    } else if (!registry.has(type)) {
      unknownType = type;
      errors.push({
        path: "/type",
        message: `unknown event type "${type}"; registered types: ${registry.types().join(", ")}`,
      });
    } else {
      const parsed = registry.get(type).safeParse(fields);
      if (parsed.success) payload = parsed.data;
      else errors.push(...zodErrors(parsed.error));
    }
  }
  if (errors.length || !env.success || !payload) {
    return { ok: false, errors, ...(unknownType !== undefined ? { unknownType } : {}) };
  }

  const e = env.data;
  const { causation_id, correlation_id, ...rest } = e.meta ?? {};
  const meta: EventMeta = {
    ...rest,
    ...(causation_id !== undefined ? { client_causation_id: causation_id } : {}),
    ...(correlation_id !== undefined ? { client_correlation_id: correlation_id } : {}),
    trace_id: e.meta?.trace_id ?? ctx.traceId,
    ingress: ctx.ingress,
  };
  const event: EventEnvelope = {
    id: e.id?.toLowerCase() ?? crypto.randomUUID(),
    type: e.type,
    source: e.source,
    timestamp: (e.timestamp ? new Date(e.timestamp) : ctx.now).toISOString(),
    meta,
    ...payload,
  };
  return { ok: true, event };
}

export type CheckResult = { ok: true; event: EventEnvelope } | { ok: false; problem: string };

const serverBuilt = z.object({ id: z.uuid("must be a UUID"), source: z.string().min(1).max(256) });

/**
 * Checks an envelope the server built itself (a derived event, a replay copy) against the
 * registry, as ingest checks client input: a registered type, its fields valid, a UUID id
 * and a source of 1-256 characters. Answers the event as it will be stored (field defaults
 * applied), or every problem in one line ("/type: unknown event type ..."; "/n: ...").
 * Ingress-only types (webhook.received) pass only with `ingressTypes` (a replay copy of a
 * verified delivery); meta is the server's own and is not checked.
 */
export function checkEnvelope(
  e: EventEnvelope,
  registry: EventRegistry,
  o: { ingressTypes?: boolean } = {},
): CheckResult {
  const problems: ProblemError[] = [];
  const common = serverBuilt.safeParse({ id: e.id, source: e.source });
  if (!common.success) problems.push(...zodErrors(common.error));
  let payload: Record<string, unknown> | undefined;
  if (!o.ingressTypes && (INGRESS_TYPES as readonly string[]).includes(e.type)) {
    problems.push({
      path: "/type",
      message: `"${e.type}" events are made by the server only (POST /webhooks/{source})`,
    });
  } else if (!registry.has(e.type)) {
    problems.push({
      path: "/type",
      message: `unknown event type "${e.type}"; registered types: ${registry.types().join(", ")}`,
    });
  } else {
    const parsed = registry.get(e.type).safeParse(payloadOf(e));
    if (parsed.success) payload = parsed.data;
    else problems.push(...zodErrors(parsed.error));
  }
  if (problems.length || !payload)
    return { ok: false, problem: problems.map((x) => `${x.path || "(event)"}: ${x.message}`).join("; ") };
  return {
    ok: true,
    event: { ...payload, id: e.id.toLowerCase(), type: e.type, source: e.source, timestamp: e.timestamp, meta: e.meta },
  };
}
