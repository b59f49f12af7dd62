/**
 * POST /webhooks/:source: signed deliveries from providers, stored as `webhook.received`.
 *
 * Order of checks (each failure stores nothing): source with invalid settings 503, unknown
 * source 404 -> Content-Type and
 * Content-Encoding 415 -> declared size 413 -> signature headers present, bounded, in form
 * (and a signed timestamp within tolerance) 401 -> [the body is read] size 413 -> UTF-8 400
 * -> signature over the body 401 -> depth / JSON 400 -> delivery id and fields 422 -> rate
 * limit 429 -> guarded publish (503 if the store does not confirm).
 *
 * The signature is checked over the raw bytes before the body is parsed: nothing from an
 * unauthenticated sender reaches the JSON parser. (A body that is not UTF-8 is refused
 * first: it cannot be JSON, and the signature libraries take the body as text.)
 *
 * A delivery id seen within DEDUPE_WINDOW_S answers 200 {"id": <first event's id>,
 * "status": "duplicate"} and publishes nothing; for github and hmac-sha256 sources, whose
 * signatures cover no timestamp and no delivery id, so does a body seen before.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Guard } from "../backends/types";
import { buildEvent } from "../events/build";
import { registry } from "../events/event-types";
import { HTTPProblem, invalidFields } from "../http/problem";
import { createRouter, problemResponse } from "../http/router";
import { decodeUtf8, parseJsonText, readBodyBytes, refuseDeclaredSize, requireJsonHeaders } from "./body";
import { ingestContext, rateLimit } from "./context";
import { sha256, toHex } from "./crypto";
import { publishEvents, publishGuardedEvents } from "./publish";
import { type Scheme, schemeOf } from "./signatures";
import { sourceTable, type WebhookSource } from "./sources";
import { traceIdFrom } from "./trace-id";

const WebhookAccepted = z.object({ id: z.uuid(), status: z.literal("accepted") }).openapi("WebhookAccepted");
const WebhookDuplicate = z
  .object({ id: z.uuid().describe("Id of the event stored for the first delivery"), status: z.literal("duplicate") })
  .openapi("WebhookDuplicate");

const route = createRoute({
  method: "post",
  path: "/webhooks/{source}",
  tags: ["Ingest"],
  summary: "Receive a webhook delivery",
  description:
    "Verifies the delivery with the source's scheme (standard-webhooks, github, stripe, hmac-sha256, or none for sources marked unsigned) over the raw body, then stores a `webhook.received` event (delivery id, selected headers, parsed body). Redeliveries of the same delivery id within DEDUPE_WINDOW_S answer 200 `duplicate` and store nothing.",
  request: {
    params: z.object({
      source: z.string().openapi({ description: "A source configured in WEBHOOK_SOURCES", example: "github" }),
    }),
    body: {
      required: true,
      content: { "application/json": { schema: { description: "The provider's JSON payload, signed as sent" } } },
    },
  },
  responses: {
    200: {
      description: "Duplicate delivery: nothing stored",
      content: { "application/json": { schema: WebhookDuplicate } },
    },
    202: {
      description: "Accepted: the event is in the stream",
      content: { "application/json": { schema: WebhookAccepted } },
    },
    400: problemResponse("Malformed body"),
    401: problemResponse("Missing, invalid or stale signature"),
    404: problemResponse("Unknown source"),
    413: problemResponse("Body larger than MAX_BODY_BYTES"),
    415: problemResponse("Content-Type is not application/json"),
    422: problemResponse("Missing delivery id or invalid fields"),
    429: problemResponse("Rate limit of the source exceeded (see Retry-After)"),
    503: problemResponse(
      "The event store did not confirm the event (see Retry-After), or the source's settings are invalid (`errors` names them)",
    ),
  },
});

// Credentials: never copied into an event, whatever a source's `headers` lists.
const NEVER_KEPT = new Set(["authorization", "proxy-authorization", "cookie", "x-api-key"]);
const ALWAYS_KEPT = ["content-type", "user-agent"];

/** The headers copied into the event: content type, user agent, the scheme's event headers, the source's extras. */
export function selectHeaders(headers: Headers, source: WebhookSource, scheme: Scheme): Record<string, string> {
  const secret = new Set([...NEVER_KEPT, ...scheme.secretHeaders(source)]);
  const out: Record<string, string> = {};
  for (const name of [...ALWAYS_KEPT, ...scheme.eventHeaders(source), ...source.headers]) {
    if (secret.has(name) || name.includes("signature") || name.includes("secret") || name.includes("token")) continue;
    const v = headers.get(name);
    if (v !== null) out[name] = v.slice(0, 1024);
  }
  return out;
}

/**
 * A source whose settings are invalid: 503 on its route alone, naming the settings (field and
 * rule, never a value), so the provider retries and an operator sees what to fix.
 */
function sourceMisconfigured(name: string, problems: string[]): HTTPProblem {
  return new HTTPProblem(
    503,
    "Webhook source misconfigured",
    `The settings of webhook source "${name.slice(0, 128)}" are invalid; its deliveries are refused until they are fixed.`,
    { errors: problems.map((p) => ({ param: "source", message: p })) },
  );
}

function unauthenticated(verdict: { header: string; message: string }): HTTPProblem {
  return new HTTPProblem(
    401,
    "Invalid signature",
    `The delivery could not be authenticated: ${verdict.header} ${verdict.message}.`,
    { errors: [{ header: verdict.header, message: verdict.message }] },
  );
}

/**
 * The dedupe key of a source's delivery id: "<source>:<id>" with the source name
 * percent-encoded, so the first ":" always ends the name and no two (source, id) pairs share
 * a key ("a:b" + "c" and "a" + "b:c" do not). Names without ":" keep their plain form.
 */
export function deliveryKey(source: string, deliveryId: string): string {
  return `${encodeURIComponent(source)}:${deliveryId}`;
}

/**
 * The keys a delivery claims for DEDUPE_WINDOW_S: its delivery id, and for schemes whose
 * signature a replay can reuse under a fresh delivery id, a digest of the signed body
 * (unambiguous as it is: the digest is the last 64 characters). Any of them seen: a duplicate.
 */
function deliveryGuards(name: string, deliveryId: string | null, bodyDigest: string, scheme: Scheme): Guard[] {
  const guards: Guard[] = [];
  if (deliveryId !== null)
    guards.push({ key: deliveryKey(name, deliveryId), digest: bodyDigest, onMismatch: "duplicate" });
  if (scheme.replayableBody)
    guards.push({ key: `@body:${name}:${bodyDigest}`, digest: bodyDigest, onMismatch: "duplicate" });
  return guards;
}

export const webhooksRouter = createRouter().openapi(route, async (c) => {
  const cfg = c.var.config;
  const name = c.req.param("source");
  const sources = sourceTable(cfg);
  const broken = sources.whole.length ? sources.whole : sources.invalid.get(name);
  if (broken) throw sourceMisconfigured(name, broken);
  const source = sources.valid.get(name);
  if (!source) {
    throw new HTTPProblem(404, "Unknown webhook source", `No webhook source "${name.slice(0, 128)}" is configured.`, {
      errors: [{ param: "source", message: "not in WEBHOOK_SOURCES" }],
    });
  }
  const headers = c.req.raw.headers;
  const scheme = schemeOf(source);
  // Everything the headers alone can refuse, before a byte of the body is read or hashed.
  requireJsonHeaders(headers);
  refuseDeclaredSize(headers, cfg.MAX_BODY_BYTES);
  const pre = scheme.checkHeaders(source, headers, Date.now());
  if (!pre.ok) throw unauthenticated(pre);
  const raw = await readBodyBytes(c.req.raw, cfg.MAX_BODY_BYTES);
  const text = decodeUtf8(raw);
  const verdict = await scheme.verify(source, { headers, raw, text, now: Date.now() });
  if (!verdict.ok) throw unauthenticated(verdict);
  const body = parseJsonText(text, cfg.MAX_JSON_DEPTH);
  const delivery = scheme.deliveryId(source, headers, body);
  if (!delivery.ok) throw invalidFields([delivery.error]);

  const built = buildEvent(
    {
      type: "webhook.received",
      source: name,
      delivery_id: delivery.id,
      headers: selectHeaders(headers, source, scheme),
      body,
    },
    registry,
    {
      traceId: traceIdFrom(headers),
      now: new Date(),
      ingress: { kind: "webhook", source: name, scheme: source.scheme },
      maxFutureSkewS: cfg.EVENT_MAX_FUTURE_SKEW_S,
    },
  );
  if (!built.ok) throw invalidFields(built.errors);

  const ctx = ingestContext(c, cfg);
  await rateLimit(ctx, { kind: "source", id: name, cost: 1 });
  const guards = deliveryGuards(name, delivery.id, toHex(await sha256(raw)), scheme);
  if (guards.length === 0) {
    await publishEvents(ctx, [built.event]);
    return c.json({ id: built.event.id, status: "accepted" as const }, 202);
  }
  const r = await publishGuardedEvents(ctx, [{ event: built.event, guards }], cfg.DEDUPE_WINDOW_S);
  const v = r.results[0]!;
  if (v.status !== "stored") return c.json({ id: v.firstId, status: "duplicate" as const }, 200);
  return c.json({ id: built.event.id, status: "accepted" as const }, 202);
});
