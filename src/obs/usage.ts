/**
 * Counts what production bills, from inside the clients: Redis commands (Upstash bills per
 * command) and HTTP requests, and Postgres round trips. src/backends/redis/client.ts and
 * src/db/client.ts report here; the counts become metrics (reflex_redis_commands_total,
 * reflex_redis_requests_total, reflex_pg_round_trips_total), labelled with the kind of work
 * that sent them, so that a dashboard can divide each kind by what it produced:
 *
 *   work="ingest"   POST /events, /events/batch, /webhooks/*   (per accepted event)
 *   work="consume"  consumer runs: cron, queue, the replay lane (per processed event)
 *   work="replay"   the replay runner advancing jobs          (per replayed event)
 *   work="sweep"    the DLQ sweeper and retention
 *   work="http"     every other request (admin API, health, metrics)
 *
 * The kind rides in an AsyncLocalStorage, not in a module variable: one isolate serves
 * requests and runs consumers concurrently, and each call must be counted for its own.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { inc } from "./metrics";

export type Work = "ingest" | "consume" | "replay" | "sweep" | "http";

const current = new AsyncLocalStorage<Work>();

/** Runs `fn` with every Redis command and Postgres round trip it makes counted as `work`. */
export function countedAs<T>(work: Work, fn: () => T): T {
  return current.run(work, fn);
}

/** The kind of work of an HTTP request: ingest routes, or anything else. */
export function workOfRequest(method: string, pathname: string): Work {
  if (method !== "POST") return "http";
  return pathname === "/events" || pathname === "/events/batch" || pathname.startsWith("/webhooks/")
    ? "ingest"
    : "http";
}

/** Commands in one Upstash REST request body (what Upstash bills; a script is one). */
export function redisCommandsIn(body: unknown): number {
  // A pipeline / transaction body is an array of commands; a single command is an array of strings.
  return Array.isArray(body) && Array.isArray(body[0]) ? body.length : 1;
}

/** Outside any countedAs (scripts, tests calling code directly): "other". */
const labels = () => ({ work: current.getStore() ?? "other" });

export function countRedisRequest(body: unknown): void {
  const l = labels();
  inc("reflex_redis_requests_total", l);
  inc("reflex_redis_commands_total", l, redisCommandsIn(body));
}

export function countPgRoundTrip(): void {
  inc("reflex_pg_round_trips_total", labels());
}
