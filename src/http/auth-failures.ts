/**
 * Failed sign-ins and admin-token checks per client, for deployments without Upstash (with it,
 * src/http/auth-throttle.ts counts them with @upstash/ratelimit). Rows of filter_state keyed
 * `auth|<client>`, apart from the trigger filters' `rl|` and `dd|` rows: `members` holds the
 * times (ms, database clock) of the client's failures in the window, at most `limit` of them,
 * a sliding log. Written only on a failure; expired rows are deleted a few at a time by later
 * failures, as the filters' own rows are.
 */
import { sql } from "drizzle-orm";
import { alias } from "drizzle-orm/pg-core";
import type { Db } from "../db/client";
import { filterState } from "../db/schema";
import { assign, bare, columnNames, excluded } from "../db/sql";

const key = (client: string) => `auth|${client}`;
const NOW_MS = sql`(extract(epoch from clock_timestamp()) * 1000)::bigint`;

/** The client's failures in the last `windowS` seconds, and when the oldest of them leaves it. */
export async function recentAuthFailures(
  db: Db,
  client: string,
  windowS: number,
): Promise<{ count: number; oldestLeavesInMs: number }> {
  const t = filterState;
  const r = await db.execute<{ n: number; leaves: string | null }>(sql`
    SELECT count(*)::int AS n, min(m::bigint) + ${windowS * 1000}::bigint - ${NOW_MS} AS leaves
      FROM ${t}, unnest(${t.members}) AS m
     WHERE ${t.key} = ${key(client)} AND m::bigint > ${NOW_MS} - ${windowS * 1000}::bigint`);
  const row = r.rows[0];
  return { count: Number(row?.n ?? 0), oldestLeavesInMs: Number(row?.leaves ?? 0) };
}

/** Adds a failure of `client` now, keeping the newest `limit` of the window (ONE statement). */
export async function addAuthFailure(db: Db, client: string, windowS: number, limit: number): Promise<void> {
  const t = filterState;
  const f = alias(t, "f");
  await db.execute(sql`
    WITH up AS (
      INSERT INTO ${t} AS ${f} (${columnNames(t.key, t.members, t.expiresAt)})
      VALUES (${key(client)}, ARRAY[${NOW_MS}::text], now() + ${windowS}::int * interval '1 second')
      ON CONFLICT (${bare(t.key)}) DO UPDATE SET ${assign(f, {
        members: sql`ARRAY(SELECT m FROM unnest(${f.members}) AS m
                            WHERE m::bigint > ${NOW_MS} - ${windowS * 1000}::bigint
                            ORDER BY m::bigint DESC LIMIT ${Math.max(0, limit - 1)}::int) || ${excluded(t.members)}`,
        expiresAt: excluded(t.expiresAt),
      })}
      RETURNING 1
    ), gc AS (
      DELETE FROM ${t} WHERE ${t.key} IN (
        SELECT ${t.key} FROM ${t} WHERE ${t.expiresAt} < now() AND ${t.key} <> ${key(client)}
         ORDER BY ${t.expiresAt} LIMIT 3 FOR UPDATE SKIP LOCKED)
    )
    SELECT count(*) FROM up`);
}
