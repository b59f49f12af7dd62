/**
 * `createRouter()`: an OpenAPIHono for a route group, wired to the project's problem
 * responses. Routes declared with `router.openapi(createRoute(...), handler)` are listed in
 * /openapi.json once the group is mounted with `app.route("/", router)`; zod validation
 * failures answer 422 problems naming the field (./error-handler.ts validationHook).
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "./app-env";
import { validationHook } from "./error-handler";

export function createRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
}

/** OpenAPI description of a problem response, for `responses: { 404: problemResponse("…") }`. */
export function problemResponse(description: string) {
  return {
    description,
    content: { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } },
  } as const;
}

/** JSON Schema of a problem body, registered as component `Problem` by the app. */
export const problemSchema = {
  type: "object",
  required: ["type", "title", "status"],
  properties: {
    type: { type: "string", description: "Problem type URI", example: "urn:reflex:problem:invalid-fields" },
    title: { type: "string" },
    status: { type: "integer" },
    detail: { type: "string" },
    errors: {
      type: "array",
      items: {
        type: "object",
        required: ["message"],
        properties: {
          path: { type: "string", description: "JSON Pointer into the request body" },
          header: { type: "string", description: "Request header at fault (lower case)" },
          query: { type: "string" },
          param: { type: "string" },
          message: { type: "string" },
        },
      },
    },
  },
  additionalProperties: true,
} as const;
