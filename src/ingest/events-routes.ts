/**
 * POST /events and POST /events/batch: typed events from API-key holders.
 *
 * Order of checks (each failure stores nothing): API key 401 -> Content-Type and
 * Content-Encoding 415 -> size 413 -> UTF-8 / depth / JSON 400 -> fields 422 (a batch with
 * any bad item is refused whole, every item's errors listed) -> source and type within the
 * key's grant 403 (./grants.ts, likewise whole) -> rate limit 429 -> publish
 * (503 if the store does not confirm; 409 for a client id reused with another body) -> 202,
 * or 200 "duplicate" for a client id already stored with the same body (./accept.ts).
 *
 * Request bodies are read by hand rather than by @hono/zod-openapi's validator, so the
 * statuses above stay distinct (the validator answers 400 for all of them) and the size
 * limit holds before anything is buffered. The OpenAPI document still describes them
 * (plain JSON Schema in the route, which @hono/zod-openapi documents but does not enforce).
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Config } from "../config";
import type { BuildContext } from "../events/build";
import { createRouter, problemResponse } from "../http/router";
import { batchItems, buildItems, type ItemPath, publishBuilt } from "./accept";
import { requireApiKey } from "./api-key-auth";
import { readJson } from "./body";
import { ingestContext, rateLimit } from "./context";
import { authorizeEvents } from "./grants";
import { traceIdFrom } from "./trace-id";

const Accepted = z
  .object({ id: z.uuid(), status: z.literal("accepted") })
  .openapi("Accepted", { example: { id: "0b6f3e0e-5f7c-4b43-9a53-5d7a0d0f3c7e", status: "accepted" } });
const Duplicate = z
  .object({ id: z.uuid(), status: z.literal("duplicate") })
  .openapi("Duplicate", { description: "The same id with the same body was stored before: nothing stored again" });
const BatchAccepted = z
  .object({
    ids: z.array(z.uuid()),
    status: z.literal("accepted"),
    duplicates: z.array(z.uuid()).optional().describe("Ids that were stored before with the same body"),
  })
  .openapi("BatchAccepted");
const BatchDuplicate = z.object({ ids: z.array(z.uuid()), status: z.literal("duplicate") }).openapi("BatchDuplicate");

const common = {
  400: problemResponse("Malformed body: not UTF-8, not JSON, or nested too deeply"),
  401: problemResponse("Missing or unknown API key"),
  403: problemResponse(
    "A source or type outside the API key's grant (a webhook source's name, a trigger's declared output type); nothing stored",
  ),
  409: problemResponse(
    "A client-supplied id was used within IDEMPOTENCY_WINDOW_S for a different body; nothing stored",
  ),
  413: problemResponse("Body larger than MAX_BODY_BYTES"),
  415: problemResponse("Content-Type is not application/json, or Content-Encoding is not identity"),
  422: problemResponse(
    "Invalid fields (each named by JSON Pointer); unknown types list the registered ones; reserved meta keys and server-only types are refused",
  ),
  429: problemResponse("Rate limit of the API key exceeded (see Retry-After)"),
  503: problemResponse("The event store did not confirm the events (see Retry-After); nothing is acknowledged"),
} as const;

const eventRoute = createRoute({
  method: "post",
  path: "/events",
  tags: ["Ingest"],
  summary: "Publish one event",
  description:
    "Validates the event against the type registry and appends it to the event stream. `id` (UUID) and `timestamp` are generated when absent; `meta.trace_id` comes from the `traceparent` header when absent. 202 means the event is durably in the stream.",
  security: [{ apiKey: [] }],
  request: {
    body: { required: true, content: { "application/json": { schema: { $ref: "#/components/schemas/EventInput" } } } },
  },
  responses: {
    200: {
      description: "Duplicate: the same id and body were stored before",
      content: { "application/json": { schema: Duplicate } },
    },
    202: { description: "Accepted: the event is in the stream", content: { "application/json": { schema: Accepted } } },
    ...common,
  },
});

const batchRoute = createRoute({
  method: "post",
  path: "/events/batch",
  tags: ["Ingest"],
  summary: "Publish a batch of events",
  description:
    "Up to MAX_BATCH_EVENTS events (default 500), published in one pipeline. All or nothing: any invalid item refuses the whole batch, with every item's errors (paths like `/events/3/type`). Ids are answered in input order.",
  security: [{ apiKey: [] }],
  request: {
    body: { required: true, content: { "application/json": { schema: { $ref: "#/components/schemas/EventBatch" } } } },
  },
  responses: {
    200: {
      description: "Duplicate: every event was stored before with the same id and body",
      content: { "application/json": { schema: BatchDuplicate } },
    },
    202: {
      description: "Accepted: every event is in the stream",
      content: { "application/json": { schema: BatchAccepted } },
    },
    ...common,
  },
});

function limits(cfg: Config) {
  return { maxBytes: cfg.MAX_BODY_BYTES, maxDepth: cfg.MAX_JSON_DEPTH };
}

function buildContext(headers: Headers, keyId: string, cfg: Config): BuildContext {
  return {
    traceId: traceIdFrom(headers),
    now: new Date(),
    ingress: { kind: "api", key: keyId },
    maxFutureSkewS: cfg.EVENT_MAX_FUTURE_SKEW_S,
  };
}

const one: ItemPath = () => "";
const inBatch: ItemPath = (i) => `/events/${i}`;

export const eventsRouter = createRouter()
  .openapi(eventRoute, async (c) => {
    const cfg = c.var.config;
    const keyId = await requireApiKey(c.req.raw.headers, cfg);
    const body = await readJson(c.req.raw, limits(cfg));
    const built = await buildItems([body], buildContext(c.req.raw.headers, keyId, cfg), one);
    await authorizeEvents(cfg, keyId, built.events, one);
    const ctx = ingestContext(c, cfg);
    await rateLimit(ctx, { kind: "key", id: keyId, cost: 1 });
    const r = await publishBuilt(ctx, built, one);
    if (r.duplicate[0]) return c.json({ id: r.ids[0]!, status: "duplicate" as const }, 200);
    return c.json({ id: r.ids[0]!, status: "accepted" as const }, 202);
  })
  .openapi(batchRoute, async (c) => {
    const cfg = c.var.config;
    const keyId = await requireApiKey(c.req.raw.headers, cfg);
    const body = await readJson(c.req.raw, limits(cfg));
    const items = batchItems(body, cfg.MAX_BATCH_EVENTS);
    const built = await buildItems(items, buildContext(c.req.raw.headers, keyId, cfg), inBatch);
    await authorizeEvents(cfg, keyId, built.events, inBatch);
    const ctx = ingestContext(c, cfg);
    await rateLimit(ctx, { kind: "key", id: keyId, cost: built.events.length });
    const r = await publishBuilt(ctx, built, inBatch);
    const duplicates = r.ids.filter((_, i) => r.duplicate[i]);
    if (duplicates.length === r.ids.length) return c.json({ ids: r.ids, status: "duplicate" as const }, 200);
    return c.json({ ids: r.ids, status: "accepted" as const, ...(duplicates.length ? { duplicates } : {}) }, 202);
  });
