/**
 * Counts what production bills, from inside the clients: Redis commands (Upstash bills per
 * command) and HTTP requests, and Postgres round trips. src/store/redis.ts and
 * src/db/client.ts report here; the counts become metrics (reflex_redis_commands_total,
 * reflex_pg_round_trips_total).
 */
import { inc } from "./metrics";

export function countRedisRequest(body: unknown): void {
  // A pipeline / transaction body is an array of commands; a single command is an array of strings.
  const commands = Array.isArray(body) && Array.isArray(body[0]) ? body.length : 1;
  inc("reflex_redis_requests_total");
  inc("reflex_redis_commands_total", undefined, commands);
}

export function countPgRoundTrip(): void {
  inc("reflex_pg_round_trips_total");
}
