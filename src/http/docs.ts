/**
 * GET /openapi.json (OpenAPI 3.1, generated from the routes declared with createRoute) and
 * GET /docs (Scalar API reference reading /openapi.json).
 *
 * The reference's script (4.8 MB, too big for the worker's bundle) comes from a CDN, pinned
 * to one version and checked by Subresource Integrity: a changed or substituted file does
 * not run. The page is served under a Content-Security-Policy that allows that one script,
 * talks only to this origin, and cannot be framed. The version and digest are those of the
 * @scalar/api-reference devDependency (test/node/docs-script.unit.test.ts keeps them equal).
 *
 * Components that depend on run-time state are filled in per request: `EventInput` is
 * built from the event registry, so a type added in src/events/event-types.ts (or registered at
 * run time) appears in the document without touching any route.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { version } from "../../package.json";
import type { EventRegistry } from "../events/type-registry";
import type { AppEnv } from "./app-env";
import { problemSchema } from "./router";

type JsonSchema = Record<string, unknown> & { properties?: Record<string, unknown>; required?: string[] };

const envelopeProperties = {
  id: { type: "string", format: "uuid", description: "Generated when absent; a client id makes retries idempotent" },
  source: { type: "string", minLength: 1, maxLength: 256, example: "ws:client123" },
  timestamp: { type: "string", format: "date-time", description: "UTC; now when absent" },
  meta: {
    type: "object",
    properties: {
      trace_id: { type: "string", description: "From `traceparent` when absent" },
      correlation_id: { type: "string", description: "Stored as `meta.client_correlation_id` (a client's claim)" },
      causation_id: {
        type: "string",
        description: "Stored as `meta.client_causation_id`: causation chains follow only what the server sets",
      },
    },
    additionalProperties: true,
  },
};

/** JSON Schema of an event of each registered type: envelope fields plus the type's own. */
export function eventInputSchema(registry: EventRegistry): JsonSchema {
  const variants = Object.entries(registry.jsonSchemas()).map(([type, s]) => {
    const fields = s as JsonSchema;
    const { $schema: _drop, ...rest } = fields as JsonSchema & { $schema?: string };
    void _drop;
    return {
      ...rest,
      title: type,
      type: "object",
      required: ["type", "source", ...(fields.required ?? [])],
      properties: { type: { const: type }, ...envelopeProperties, ...(fields.properties ?? {}) },
    };
  });
  return { oneOf: variants, discriminator: { propertyName: "type" } };
}

export const SCALAR_VERSION = "1.76.0";
export const SCALAR_SCRIPT = `https://cdn.jsdelivr.net/npm/@scalar/api-reference@${SCALAR_VERSION}/dist/browser/standalone.js`;
/** sha384 of dist/browser/standalone.js of that version. */
export const SCALAR_INTEGRITY = "sha384-oH1C0RwqcwbVXkC+r8A+4qRoyEUQdtxAzOwumkxZtQBBcsy61FOoPt7B50OVJYYQ";

export const DOCS_CSP = [
  "default-src 'none'",
  `script-src ${SCALAR_SCRIPT}`,
  // The reference injects its styles at run time.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

// The configuration travels in a JSON element (never executed), so no inline script is needed.
const DOCS_PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Reflex Edge API</title></head>
<body>
<script id="api-reference" type="application/json" data-url="/openapi.json" data-configuration="{&quot;withDefaultFonts&quot;:false}"></script>
<script src="${SCALAR_SCRIPT}" integrity="${SCALAR_INTEGRITY}" crossorigin="anonymous" referrerpolicy="no-referrer"></script>
</body>
</html>
`;

export function mountDocs(app: OpenAPIHono<AppEnv>, registry: EventRegistry): void {
  app.openAPIRegistry.registerComponent("securitySchemes", "apiKey", {
    type: "http",
    scheme: "bearer",
    description: "A key from API_KEYS",
  });

  app.get("/openapi.json", (c) => {
    const doc = app.getOpenAPI31Document({
      openapi: "3.1.0",
      info: {
        title: "Reflex Edge",
        version,
        description:
          "Serverless event backbone: typed events and signed webhooks in, Redis Streams, Postgres history. Every error is an RFC 9457 problem (application/problem+json).",
      },
    });
    const schemas = (doc.components ??= {}).schemas ?? {};
    doc.components.schemas = {
      ...schemas,
      Problem: problemSchema as never,
      EventInput: eventInputSchema(registry) as never,
      EventBatch: {
        type: "object",
        required: ["events"],
        additionalProperties: false,
        properties: { events: { type: "array", minItems: 1, items: { $ref: "#/components/schemas/EventInput" } } },
      },
    };
    return c.json(doc);
  });

  app.get("/docs", (c) =>
    c.html(DOCS_PAGE, 200, {
      "content-security-policy": DOCS_CSP,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
    }),
  );
}
