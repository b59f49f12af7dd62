/**
 * Counts what production bills, from inside the clients: Redis commands (Upstash bills per
 * command) and HTTP requests, and Postgres round trips. src/backends/redis/client.ts and
 * src/db/client.ts report here; the counts become metrics (reflex_redis_commands_total,
 * reflex_pg_round_trips_total).
 */
import { inc } from "./metrics";

/** Commands in one Upstash REST request body (what Upstash bills; a script is one). */
export function redisCommandsIn(body: unknown): number {
  // A pipeline / transaction body is an array of commands; a single command is an array of strings.
  return Array.isArray(body) && Array.isArray(body[0]) ? body.length : 1;
}

export function countRedisRequest(body: unknown): void {
  inc("reflex_redis_requests_total");
  inc("reflex_redis_commands_total", undefined, redisCommandsIn(body));
}

export function countPgRoundTrip(): void {
  inc("reflex_pg_round_trips_total");
}
