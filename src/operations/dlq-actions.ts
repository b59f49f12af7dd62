/**
 * The dead-letter queue as an operator handles it, from the admin API (src/admin/) and the
 * dashboard alike: list it, retry one event or every one a filter matches, discard one.
 * The statements are src/reads/dlq-queries.ts; this adds the request's database handle
 * and the problem for an event that is not in the DLQ.
 */
import { HTTPProblem } from "../http/problem";
import { type DlqFilter, dlqDiscard, dlqList, dlqRetry, dlqRetryAll } from "../reads/dlq-queries";
import { byId, type RequestScope, withDb } from "./db-scope";

/** What the admin API answers for an event that is not (or no longer) in the DLQ. */
export const notInDlq = (id: string) =>
  new HTTPProblem(404, "Not in the DLQ", `Event ${id} is not in the dead-letter queue.`);

/** The DLQ, newest dead first: up to `limit` events, and the total for the filter. */
export function listDeadLetters(c: RequestScope, f: DlqFilter, limit: number) {
  return withDb(c, "read", (db) => dlqList(db, f, limit));
}

/** One DLQ event sent back for processing now (attempts reset, its errors kept). */
export function retryDeadLetter(c: RequestScope, id: string, missing = notInDlq) {
  return byId(c, "write", id, (db) => dlqRetry(db, id), missing);
}

/** Every DLQ event `f` matches sent back, spread at REDRIVE_RATE per second; how many. */
export function retryDeadLetters(c: RequestScope, f: DlqFilter) {
  return withDb(c, "write", (db, cfg) => dlqRetryAll(db, f, cfg.REDRIVE_RATE));
}

/** One DLQ event discarded for good; its history row stays, with the reason. */
export function discardDeadLetter(c: RequestScope, id: string, reason: string, missing = notInDlq) {
  return byId(c, "write", id, (db) => dlqDiscard(db, id, reason), missing);
}
