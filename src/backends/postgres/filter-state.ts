/**
 * FilterState in Postgres (table filter_state), for the Postgres backend: the same
 * semantics as the Redis script (./filter-state.ts), with no Redis.
 *
 * Each round of checks (./filter-batch.ts) is ONE statement. Checks on the same key are
 * grouped into one row: INSERT ... ON CONFLICT DO UPDATE computes the new state from the
 * row's latest committed version while holding its lock, so concurrent consumers sharing a
 * key serialise on the row and a limit is never overshot - the atomicity the Redis script
 * gets from running alone.
 *
 *  - rate limit: `members` holds the ids admitted in the window (idempotent per event);
 *    new ids are appended in batch order while fewer than the limit (kept in
 *    window_ends_ms for these rows: the update needs it). An event is admitted iff its id is
 *    in the resulting set.
 *  - dedupe: first_id and window_ends_ms (the consumer's clock) of the window's first event;
 *    an event passes iff it is that first event.
 * expires_at (real time, like the Redis TTL) only cleans up: expired rows count as absent,
 * and every flush deletes a few of them.
 *
 * Checks flushed together come from one batch's match and share its clock reading; dedupe
 * uses the first one's.
 */
import { sql } from "drizzle-orm";
import type { Db } from "../../db/client";
import { BatchedFilterState, type Check } from "../filter-batch";

interface Group {
  key: string;
  a: number;
  b: number;
  members: string[];
}

function group(checks: Check[]): Group[] {
  const by = new Map<string, Group>();
  for (const c of checks) {
    let g = by.get(c.key);
    if (!g) by.set(c.key, (g = { key: c.key, a: c.a, b: c.b, members: [] }));
    if (!g.members.includes(c.member)) g.members.push(c.member);
  }
  return [...by.values()];
}

export class PgFilterState extends BatchedFilterState {
  constructor(private readonly db: Db) {
    super();
  }

  protected stateKey(op: Check["op"], key: string): string {
    return `${op === "r" ? "rl" : "dd"}|${key}`;
  }

  protected async send(batch: Check[]): Promise<boolean[]> {
    const state = await this.exec(group(batch.filter((c) => c.op === "r")), group(batch.filter((c) => c.op === "d")));
    return batch.map((c) => {
      const s = state.get(c.key);
      return c.op === "r" ? (s?.members ?? []).includes(c.member) : s?.first === c.member;
    });
  }

  private async exec(rl: Group[], dd: Group[]): Promise<Map<string, { members?: string[]; first?: string }>> {
    const p = <T>(gs: Group[], f: (g: Group) => T) => sql.param(gs.map(f));
    const keys = [...rl, ...dd].map((g) => g.key);
    // Live state of an existing row (expired counts as absent).
    const liveMembers = sql`(CASE WHEN f.expires_at > now() THEN f.members ELSE '{}'::text[] END)`;
    const dNow = dd[0]?.a ?? 0;
    const r = await this.db.execute<{ key: string; members: string[] | null; first_id: string | null }>(sql`
      WITH rl AS (
        INSERT INTO filter_state AS f (key, members, window_ends_ms, expires_at)
        SELECT v.key,
               ARRAY(SELECT m FROM jsonb_array_elements_text(v.mj::jsonb) WITH ORDINALITY AS u(m, o) ORDER BY o LIMIT v.max),
               v.max, now() + v.ttl * interval '1 millisecond'
          FROM unnest(${p(rl, (g) => g.key)}::text[], ${p(rl, (g) => JSON.stringify(g.members))}::text[],
                      ${p(rl, (g) => g.a)}::int[], ${p(rl, (g) => g.b)}::float8[]) AS v(key, mj, max, ttl)
        ON CONFLICT (key) DO UPDATE SET
          members = ${liveMembers} || ARRAY(
            SELECT m FROM unnest(EXCLUDED.members) WITH ORDINALITY AS u(m, o)
             WHERE NOT (m = ANY(${liveMembers}))
             ORDER BY o
             LIMIT greatest(0, EXCLUDED.window_ends_ms - cardinality(${liveMembers}))),
          window_ends_ms = EXCLUDED.window_ends_ms,
          expires_at = EXCLUDED.expires_at
        RETURNING key, members, NULL::text AS first_id),
      dd AS (
        INSERT INTO filter_state AS f (key, first_id, window_ends_ms, expires_at)
        SELECT v.key, v.first, v.now_ms + v.win, now() + v.win * interval '1 millisecond'
          FROM unnest(${p(dd, (g) => g.key)}::text[], ${p(dd, (g) => g.members[0]!)}::text[],
                      ${p(dd, (g) => g.a)}::bigint[], ${p(dd, (g) => g.b)}::bigint[]) AS v(key, first, now_ms, win)
        ON CONFLICT (key) DO UPDATE SET
          (first_id, window_ends_ms, expires_at) = (
            SELECT CASE WHEN keep THEN f.first_id ELSE EXCLUDED.first_id END,
                   CASE WHEN keep THEN f.window_ends_ms ELSE EXCLUDED.window_ends_ms END,
                   CASE WHEN keep THEN f.expires_at ELSE EXCLUDED.expires_at END
              FROM (SELECT f.first_id IS NOT NULL AND f.expires_at > now()
                           AND (f.first_id = EXCLUDED.first_id OR f.window_ends_ms > ${dNow}::bigint) AS keep) k)
        RETURNING key, NULL::text[] AS members, first_id),
      gc AS (
        DELETE FROM filter_state WHERE key IN (
          SELECT key FROM filter_state WHERE expires_at < now() AND key <> ALL(${sql.param(keys)}::text[])
           ORDER BY expires_at LIMIT ${keys.length + 2}::int FOR UPDATE SKIP LOCKED))
      SELECT * FROM rl UNION ALL SELECT * FROM dd`);
    const out = new Map<string, { members?: string[]; first?: string }>();
    for (const x of r.rows) out.set(x.key, { members: x.members ?? undefined, first: x.first_id ?? undefined });
    return out;
  }
}
