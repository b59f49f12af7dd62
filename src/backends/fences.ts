/**
 * Fencing tokens of scope-lock holders, as Postgres sees them (table scope_fences).
 *
 * Every grant of a scope carries a token that only grows, per scope. A holder that lets its
 * scope go cleanly (its handlers done) keeps the right to record what it did; a holder that
 * lost the scope without letting go (its lease ran out, its lock session died) has its
 * token put at or below the scope's `floor` by the next grant, and every write carrying such
 * a token is refused: the outcome statements (src/backends/history-writes.ts, with fenceClear) and the
 * step records (src/triggers/step-records.ts). A clean release before the settle is therefore harmless, while
 * a stale holder cannot record anything once a newer holder got the scope.
 *
 *  - advisory-lock backend: grantFences/releaseFences keep the counter in the same table,
 *    in the statements that take and let go of the locks;
 *  - Redis locks: Redis keeps the counter (INCR in the acquire script) and reports the
 *    holders it saw lapse; raiseFloors records them here before the new holder runs.
 */
import { type Column, type SQL, sql } from "drizzle-orm";
import { alias } from "drizzle-orm/pg-core";
import type { Db } from "../db/client";
import { scopeFences } from "../db/schema";
import { assign, bare, columnNames } from "../db/sql";

/** One scope's grant: the token its writes carry. */
export interface Fence {
  scope: string;
  token: number;
}

/** The fences of each event's outcome, by event id (absent: the event held no scope). */
export type FencesByEvent = ReadonlyMap<string, readonly Fence[]>;

const f = scopeFences;
/** The global floor's row, read beside the scope's own. */
const g = alias(scopeFences, "g");

/** The scope_fences row whose floor holds for every scope (Redis lost its counters). */
export const ALL_SCOPES = "";

/**
 * A predicate for a statement that writes the rows of `id`: true unless the row's event
 * carries a token at or below its scope's floor. Undefined when no event carries any.
 */
export function fenceClear(
  id: Column | SQL,
  fences: FencesByEvent | undefined,
  only?: Iterable<string>,
): SQL | undefined {
  const ids: string[] = [];
  const scopes: string[] = [];
  const tokens: number[] = [];
  const keys = only ? [...only] : fences ? [...fences.keys()] : [];
  for (const k of keys)
    for (const x of fences?.get(k) ?? []) {
      ids.push(k);
      scopes.push(x.scope);
      tokens.push(x.token);
    }
  if (ids.length === 0) return undefined;
  // Uncorrelated, so Postgres computes the fenced-off ids once (a hashed subplan), not per
  // row; an equality join (the global floor read once apart), so it can hash or use the key.
  return sql`${id} NOT IN (
      SELECT fz.id FROM unnest(${sql.param(ids)}::uuid[], ${sql.param(scopes)}::text[], ${sql.param(tokens)}::bigint[])
          AS fz(id, scope, token)
        LEFT JOIN ${f} ON ${f.scope} = fz.scope
       WHERE greatest(coalesce(${f.floor}, 0),
               coalesce((SELECT ${g.floor} FROM ${f} AS ${g} WHERE ${g.scope} = ${ALL_SCOPES}), 0)) >= fz.token)`;
}

/**
 * Records floors reported by Redis grants (one statement): every token at or below them is
 * refused from now on. A floor only rises.
 */
export async function raiseFloors(db: Pick<Db, "execute">, floors: Fence[]): Promise<void> {
  if (floors.length === 0) return;
  await db.execute(sql`
    INSERT INTO ${f} (${columnNames(f.scope, f.floor)})
    SELECT k, max(t) FROM unnest(${sql.param(floors.map((x) => x.scope))}::text[],
                                 ${sql.param(floors.map((x) => x.token))}::bigint[]) AS v(k, t) GROUP BY k
    ON CONFLICT (${bare(f.scope)}) DO UPDATE SET ${assign(f, { floor: sql`greatest(${f.floor}, excluded.${bare(f.floor)})` })}`);
}

/**
 * The advisory-lock grant, one statement: takes every free scope of $1 (pg_try_advisory_lock)
 * and answers `scope, fence` for those taken. The new token is above every earlier token and
 * floor of the scope; an earlier holder that never released (its session died) is floored.
 * A scope seen for the first time starts at the clock in microseconds, as Redis does.
 */
export const grantFences = (scopes: string[]): SQL => sql`
    WITH got AS (
      SELECT k FROM unnest(${sql.param(scopes)}::text[]) AS k WHERE pg_try_advisory_lock(hashtextextended(k, 0)))
    INSERT INTO ${f} (${columnNames(f.scope, f.fence)})
    SELECT k, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint FROM got
    ON CONFLICT (${bare(f.scope)}) DO UPDATE SET ${assign(f, {
      floor: sql`CASE WHEN ${f.released} < ${f.fence} THEN greatest(${f.floor}, ${f.fence}) ELSE ${f.floor} END`,
      fence: sql`greatest(${f.fence}, ${f.floor}) + 1`,
    })}
    RETURNING ${f.scope} AS scope, ${f.fence}::text AS fence`;

/**
 * The advisory-lock release, one statement: marks each grant as let go cleanly, then unlocks.
 * The unlocks read the marking's result, so they run after it has locked the rows: a grant
 * racing in on another session waits for this statement's commit and sees the release.
 */
export const releaseFences = (held: Fence[]): SQL => sql`
    WITH marked AS (
      UPDATE ${f} SET ${assign(f, { released: sql`v.t` })}
        FROM unnest(${sql.param(held.map((x) => x.scope))}::text[], ${sql.param(held.map((x) => x.token))}::bigint[])
          AS v(k, t)
       WHERE ${f.scope} = v.k AND ${f.fence} = v.t
      RETURNING 1)
    SELECT pg_advisory_unlock(hashtextextended(k, 0))
      FROM unnest(${sql.param(held.map((x) => x.scope))}::text[]) AS k, (SELECT count(*) FROM marked) AS m`;
