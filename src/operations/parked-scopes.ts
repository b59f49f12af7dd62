/**
 * Parked ordered scopes (src/consume/ordered-scopes.ts) as an operator sees and unparks them, from
 * the admin API (src/admin/scope-routes.ts) and the dashboard alike.
 */
import { z } from "@hono/zod-openapi";
import { listParked, type ParkedScope, type UnparkResult, unpark } from "../consume/ordered-sql";
import type { Db } from "../db/client";
import { HTTPProblem } from "../http/problem";
import { type RequestScope, withDb } from "./db-scope";

export function parkedView(p: ParkedScope) {
  return {
    scope: p.scope,
    head: { id: p.eventId, type: p.type, source: p.source, status: p.status, attempts: p.attempts },
    error: p.error,
    parked_at: p.parkedAt,
    next_retry_at: p.nextRetryAt,
    on_dead: p.hold ? "hold" : "skip",
    waiting: p.waiting,
  };
}

export const UnparkBody = z
  .object({
    scope: z.string().min(1).max(1000),
    action: z.enum(["retry", "discard"]),
    reason: z.string().trim().min(1).max(1000).optional(),
  })
  .refine((b) => b.action !== "discard" || b.reason !== undefined, {
    message: "a discard needs a reason",
    path: ["reason"],
  });

/**
 * An operator's unpark (admin API and dashboard): the head retried or discarded, or a
 * problem: 404 when the scope has no parked head, 409 while its head is being handled.
 */
export async function unparkScope(
  db: Db,
  b: z.output<typeof UnparkBody>,
  now = new Date(),
): Promise<Extract<UnparkResult, { ok: true }>> {
  const res = await unpark(db, b.scope, b.action, now, b.reason ?? "retried by an operator");
  if (!res.ok && res.reason === "not-parked")
    throw new HTTPProblem(404, "Not parked", `Scope ${JSON.stringify(b.scope)} has no parked head.`);
  if (!res.ok) throw new HTTPProblem(409, "Head running", "The scope's head is being handled; try again shortly.");
  return res;
}

/** The longest-parked scopes, at most `limit`. */
export function parkedScopes(c: RequestScope, limit: number) {
  return withDb(c, "write", (db) => listParked(db, limit));
}

/** unparkScope on the request's database handle. */
export function unparkParkedScope(c: RequestScope, b: z.output<typeof UnparkBody>) {
  return withDb(c, "write", (db) => unparkScope(db, b));
}
