/** What every admin route declares: the security scheme, JSON answers, auth problems, an {id} param, filters. */
import { z } from "@hono/zod-openapi";
import { problemResponse } from "../http/router";

export const security = [{ adminToken: [] }];
const Json = z.record(z.string(), z.unknown());
export const jsonOk = (description: string) => ({ description, content: { "application/json": { schema: Json } } });
export const authResponses = {
  401: problemResponse("No admin token"),
  403: problemResponse("Wrong admin token"),
  429: problemResponse("Too many wrong tokens from this address (Retry-After)"),
  503: problemResponse("Admin API disabled, or a dependency is down"),
};
export const IdParam = z.object({
  id: z.string().openapi({ param: { name: "id", in: "path" }, example: "0b9c5b3e-4f5c-4c55-9a57-6d2c7b9f0e11" }),
});
/** The type/source filter of the history and DLQ routes. */
export const Filter = {
  type: z.string().min(1).max(128).optional(),
  source: z.string().min(1).max(256).optional(),
};
/** A `limit` query parameter of 1..max, `dflt` when absent. */
export const limit = (max: number, dflt: number) => z.coerce.number().int().min(1).max(max).default(dflt);
