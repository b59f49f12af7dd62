/**
 * FilterState in Postgres (table filter_state), for the Postgres backend: the same
 * semantics as the Redis script (./filter-state.ts), with no Redis.
 *
 * Each round of checks (../filter-batch.ts) is ONE statement. Checks on the same key are
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
import { alias } from "drizzle-orm/pg-core";
import type { Db } from "../../db/client";
import { filterState } from "../../db/schema";
import { arrayOf, assign, bare, columnNames, excluded, padded, selection } from "../../db/sql";
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
    const t = filterState;
    // The stored row in ON CONFLICT DO UPDATE (`filter_state AS f`), apart from EXCLUDED.
    const f = alias(t, "f");
    // Live state of an existing row (expired counts as absent).
    const liveMembers = sql`(CASE WHEN ${f.expiresAt} > now() THEN ${f.members} ELSE '{}'::text[] END)`;
    const dNow = dd[0]?.a ?? 0;
    // Rate limit rows answer their members, dedupe rows their first id (the other field NULL).
    const answerFields = { key: f.key, members: f.members, firstId: f.firstId };
    const answer = selection(answerFields);
    const r = await this.db.execute(sql`
      WITH rl AS (
        INSERT INTO ${t} AS ${f} (${columnNames(t.key, t.members, t.windowEndsMs, t.expiresAt)})
        SELECT v.key,
               ARRAY(SELECT m FROM jsonb_array_elements_text(v.mj::jsonb) WITH ORDINALITY AS u(m, o) ORDER BY o LIMIT v.max),
               v.max, now() + v.ttl * interval '1 millisecond'
          FROM unnest(${p(rl, (g) => g.key)}::text[], ${p(rl, (g) => JSON.stringify(g.members))}::text[],
                      ${p(rl, (g) => g.a)}::int[], ${p(rl, (g) => g.b)}::float8[]) AS v(key, mj, max, ttl)
        ON CONFLICT (${bare(t.key)}) DO UPDATE SET ${assign(f, {
          members: sql`${liveMembers} || ARRAY(
            SELECT m FROM unnest(${excluded(t.members)}) WITH ORDINALITY AS u(m, o)
             WHERE NOT (m = ANY(${liveMembers}))
             ORDER BY o
             LIMIT greatest(0, ${excluded(t.windowEndsMs)} - cardinality(${liveMembers})))`,
          windowEndsMs: excluded(t.windowEndsMs),
          expiresAt: excluded(t.expiresAt),
        })}
        RETURNING ${padded(answerFields, { key: f.key, members: f.members })}),
      dd AS (
        INSERT INTO ${t} AS ${f} (${columnNames(t.key, t.firstId, t.windowEndsMs, t.expiresAt)})
        SELECT v.key, v.first, v.now_ms + v.win, now() + v.win * interval '1 millisecond'
          FROM unnest(${p(dd, (g) => g.key)}::text[], ${p(dd, (g) => g.members[0]!)}::text[],
                      ${p(dd, (g) => g.a)}::bigint[], ${p(dd, (g) => g.b)}::bigint[]) AS v(key, first, now_ms, win)
        ON CONFLICT (${bare(t.key)}) DO UPDATE SET
          (${columnNames(t.firstId, t.windowEndsMs, t.expiresAt)}) = (
            SELECT CASE WHEN keep THEN ${f.firstId} ELSE ${excluded(t.firstId)} END,
                   CASE WHEN keep THEN ${f.windowEndsMs} ELSE ${excluded(t.windowEndsMs)} END,
                   CASE WHEN keep THEN ${f.expiresAt} ELSE ${excluded(t.expiresAt)} END
              FROM (SELECT ${f.firstId} IS NOT NULL AND ${f.expiresAt} > now()
                           AND (${f.firstId} = ${excluded(t.firstId)}
                                OR ${f.windowEndsMs} > ${dNow}::bigint) AS keep) k)
        RETURNING ${padded(answerFields, { key: f.key, firstId: f.firstId })}),
      gc AS (
        DELETE FROM ${t} WHERE ${t.key} IN (
          SELECT ${t.key} FROM ${t} WHERE ${t.expiresAt} < now() AND ${t.key} <> ALL(${arrayOf(t.key, keys)})
           ORDER BY ${t.expiresAt} LIMIT ${keys.length + 2}::int FOR UPDATE SKIP LOCKED))
      SELECT * FROM rl UNION ALL SELECT * FROM dd`);
    const out = new Map<string, { members?: string[]; first?: string }>();
    for (const x of r.rows.map(answer.read))
      out.set(x.key, { members: x.members ?? undefined, first: x.firstId ?? undefined });
    return out;
  }
}
