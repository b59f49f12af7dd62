/**
 * POST /events and POST /events/batch: typed events from API-key holders.
 *
 * Order of checks (each failure stores nothing): API key 401 -> Content-Type 415 -> size
 * 413 -> UTF-8 / depth / JSON 400 -> fields 422 (a batch with any bad item is refused
 * whole, every item's errors listed) -> rate limit 429 -> publish (503 if the store does
 * not confirm) -> 202.
 *
 * Request bodies are read by hand rather than by @hono/zod-openapi's validator, so the
 * statuses above stay distinct (the validator answers 400 for all of them) and the size
 * limit holds before anything is buffered. The OpenAPI document still describes them
 * (plain JSON Schema in the route, which @hono/zod-openapi documents but does not enforce).
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Config } from "../config";
import { type BuildContext, buildEvent } from "../events/build";
import type { EventEnvelope } from "../events/envelope";
import { registry } from "../events/types";
import { invalidFields, type ProblemError, pointerToken } from "../http/problem";
import { createRouter, problemResponse } from "../http/router";
import { requireApiKey } from "./auth";
import { readJson } from "./body";
import { ingestContext, rateLimit } from "./context";
import { publishEvents } from "./publish";
import { traceIdFrom } from "./trace";

const Accepted = z
  .object({ id: z.uuid(), status: z.literal("accepted") })
  .openapi("Accepted", { example: { id: "0b6f3e0e-5f7c-4b43-9a53-5d7a0d0f3c7e", status: "accepted" } });
const BatchAccepted = z.object({ ids: z.array(z.uuid()), status: z.literal("accepted") }).openapi("BatchAccepted");

const common = {
  400: problemResponse("Malformed body: not UTF-8, not JSON, or nested too deeply"),
  401: problemResponse("Missing or unknown API key"),
  413: problemResponse("Body larger than MAX_BODY_BYTES"),
  415: problemResponse("Content-Type is not application/json"),
  422: problemResponse("Invalid fields (each named by JSON Pointer); unknown types list the registered ones"),
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

function buildContext(headers: Headers): BuildContext {
  return { traceId: traceIdFrom(headers), now: new Date() };
}

function refuse(errors: ProblemError[], unknownTypes: string[], detail?: string) {
  return invalidFields(errors, detail, unknownTypes.length ? { registered_types: registry.types() } : {});
}

export const eventsRouter = createRouter()
  .openapi(eventRoute, async (c) => {
    const cfg = c.var.config;
    const keyId = await requireApiKey(c.req.raw.headers, cfg);
    const body = await readJson(c.req.raw, limits(cfg));
    const r = buildEvent(body, registry, buildContext(c.req.raw.headers));
    if (!r.ok) throw refuse(r.errors, r.unknownType !== undefined ? [r.unknownType] : []);
    const ctx = ingestContext(c, cfg);
    await rateLimit(ctx, { kind: "key", id: keyId, cost: 1 });
    await publishEvents(ctx, [r.event]);
    return c.json({ id: r.event.id, status: "accepted" as const }, 202);
  })
  .openapi(batchRoute, async (c) => {
    const cfg = c.var.config;
    const keyId = await requireApiKey(c.req.raw.headers, cfg);
    const body = await readJson(c.req.raw, limits(cfg));
    if (
      !body ||
      typeof body !== "object" ||
      Array.isArray(body) ||
      !Array.isArray((body as { events?: unknown }).events)
    ) {
      throw invalidFields([{ path: "/events", message: 'required: the body is {"events": [ ... ]}' }]);
    }
    const items = (body as { events: unknown[] }).events;
    const extra = Object.keys(body).filter((k) => k !== "events");
    const errors: ProblemError[] = extra.map((k) => ({ path: `/${pointerToken(k)}`, message: "unknown field" }));
    if (items.length === 0) errors.push({ path: "/events", message: "must contain at least one event" });
    if (items.length > cfg.MAX_BATCH_EVENTS) {
      errors.push({
        path: "/events",
        message: `at most ${cfg.MAX_BATCH_EVENTS} events per batch (got ${items.length})`,
      });
    }
    if (errors.length) throw invalidFields(errors);

    const bctx = buildContext(c.req.raw.headers);
    const events: EventEnvelope[] = [];
    const unknown: string[] = [];
    const seen = new Map<string, number>();
    items.forEach((item, i) => {
      const r = buildEvent(item, registry, bctx);
      if (!r.ok) {
        for (const e of r.errors) errors.push({ ...e, path: `/events/${i}${e.path ?? ""}` });
        if (r.unknownType !== undefined) unknown.push(r.unknownType);
        return;
      }
      // Two items with one id: history would keep only the first, silently. Refuse instead.
      const first = seen.get(r.event.id);
      if (first !== undefined) errors.push({ path: `/events/${i}/id`, message: `same id as /events/${first}` });
      else seen.set(r.event.id, i);
      events.push(r.event);
    });
    if (errors.length) {
      const bad = new Set(errors.map((e) => e.path!.split("/")[2])).size;
      throw refuse(errors, unknown, `${bad} of ${items.length} events are invalid; nothing was published`);
    }
    const ctx = ingestContext(c, cfg);
    await rateLimit(ctx, { kind: "key", id: keyId, cost: events.length });
    await publishEvents(ctx, events);
    return c.json({ ids: events.map((e) => e.id), status: "accepted" as const }, 202);
  });
