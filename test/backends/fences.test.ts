/**
 * Fencing tokens of scope locks, against the real local Redis and Postgres, with both lock
 * backends: every grant's token grows per scope and reaches handlers (ctx.fence) and
 * destinations (reflex-fence); a holder whose lock lapsed between its handler and its
 * settle - the lease ran out (Redis) or the lock session died (advisory locks) - and whose
 * scope a newer holder then took records neither its outcome nor its steps.
 */
import { sql } from "drizzle-orm";
import { afterEach, describe, expect, inject, it } from "vitest";
import { PgScopeLocks } from "../../src/backends/postgres/locks";
import { RedisScopeLocks } from "../../src/backends/redis/locks";
import type { ScopeLocks } from "../../src/backends/types";
import { openDb } from "../../src/db/client";
import { openDestinations } from "../../src/destinations";
import { filters as f } from "../../src/triggers";
import { event } from "../support/consume";
import { AS_CONFIGURED, type Rig, rig } from "../support/rig";

const RECEIVER = inject("receiverUrl");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const r of open.reverse()) await r.close();
  open = [];
});

type LockBackend = "redis" | "postgres";

async function make(lockBackend: LockBackend, overrides: Record<string, unknown> = {}) {
  const r = await rig("redis", { ...AS_CONFIGURED, LOCK_BACKEND: lockBackend, ...overrides });
  open.push(r);
  /** Another invocation's locks: the newer holder. */
  const locks = (): ScopeLocks => {
    if (lockBackend === "redis") return new RedisScopeLocks(r.redis, r.keys, r.cfg.LOCK_LEASE_MS, r.db.db);
    const h = openDb(r.cfg);
    open.push(h);
    const l = new PgScopeLocks(h.pool);
    open.push(l);
    return l;
  };
  /**
   * The holder's lock is gone without a release, as when its lease runs out (Redis: the key
   * expires) or its lock session dies (Postgres: the backend holding the advisory lock ends).
   */
  const lapse = async (scope: string) => {
    if (lockBackend === "redis") {
      await r.redis.del(r.keys.lock(scope));
      return;
    }
    await r.rows(sql`select pg_terminate_backend(pid) from pg_locks
      where locktype = 'advisory' and pid <> pg_backend_pid()
        and database = (select oid from pg_database where datname = current_database())`);
  };
  return { r, locks, lapse };
}

/** The event's status in history; "in flight" when it has no row (the Redis backend writes
 * the row with the outcome, so a refused outcome leaves the event claimed in its stream). */
async function status(r: Rig<"redis">, id: string): Promise<string> {
  const [x] = await r.rows<{ status: string }>(sql`select status from events where id = ${id}`);
  return x?.status ?? "in flight";
}

for (const backend of ["redis", "postgres"] as const) {
  describe(`fencing tokens (LOCK_BACKEND=${backend})`, () => {
    it("handlers see their grant's token (ctx.fence): the same within a grant, larger with each new grant", async () => {
      const { r } = await make(backend);
      const seen: Array<{ scope: string; fence: number; run: number }> = [];
      let run = 0;
      r.triggers.register({
        name: "t",
        filter: f.any(),
        handler: (ctx) => void seen.push({ scope: ctx.scope, fence: ctx.fence, run }),
      });
      for (run = 1; run <= 3; run++) {
        await r.store.publish([event({ source: "a" }), event({ source: "a" }), event({ source: "b" })]);
        expect(await r.run()).toMatchObject({ completed: 3, lost: 0 });
      }
      for (const scope of ["a", "b"]) {
        const mine = seen.filter((x) => x.scope === scope);
        expect(mine).toHaveLength(scope === "a" ? 6 : 3);
        for (const x of mine) expect(Number.isSafeInteger(x.fence) && x.fence > 0).toBe(true);
        const perRun = [1, 2, 3].map((n) => [...new Set(mine.filter((x) => x.run === n).map((x) => x.fence))]);
        // One grant per run: one token per run, each above the last.
        for (const tokens of perRun) expect(tokens).toHaveLength(1);
        expect(perRun[1]![0]!).toBeGreaterThan(perRun[0]![0]!);
        expect(perRun[2]![0]!).toBeGreaterThan(perRun[1]![0]!);
      }
    });

    it("a holder whose lock lapsed and was taken by a newer holder before its settle records no outcome and no step", async () => {
      const { r, locks, lapse } = await make(backend);
      const newer = locks();
      const stale = event({ source: "fenced" });
      const bystander = event({ source: "other" });
      const fences: Array<{ id: string; fence: number }> = [];
      const stepErrors: string[] = [];
      let lapsed = false;
      r.triggers.register({
        name: "t",
        filter: f.any(),
        handler: async (ctx) => {
          fences.push({ id: ctx.event.id, fence: ctx.fence });
          await ctx.step("before", () => "ran while holding");
          if (ctx.event.id !== stale.id || lapsed) return;
          lapsed = true;
          // Between this handler and the batch's settle: the lock lapses, a newer holder takes
          // the scope. Its token is above the stale holder's.
          await lapse(ctx.scope);
          expect([...(await newer.tryAcquire([ctx.scope]))]).toEqual([ctx.scope]);
          expect(newer.fence(ctx.scope)!).toBeGreaterThan(ctx.fence);
          await ctx.step("after", () => "must not be recorded").catch((e: Error) => void stepErrors.push(e.message));
        },
      });
      await r.store.publish([stale, bystander]);
      const first = await r.run();
      // The stale outcome is refused; the bystander (another scope, not lapsed) is recorded.
      expect(first).toMatchObject({ claimed: 2, completed: 2, lost: 1 });
      expect(await status(r, stale.id)).toBe("in flight");
      expect(await status(r, bystander.id)).toBe("completed");
      expect(stepErrors).toEqual([expect.stringMatching(/passed to a newer holder/)]);
      const steps = await r.rows<{ name: string }>(
        sql`select name from steps where event_id = ${stale.id} order by name`,
      );
      expect(steps.map((s) => s.name)).toEqual(["before"]);

      // Once the newer holder lets go, the event is reclaimed (its claim lapsed) and handled
      // under a newer grant still; the step recorded before the lapse is replayed, not rerun.
      await newer.release(["fenced"]);
      await sleep(r.cfg.VISIBILITY_TIMEOUT_MS + 100);
      expect(await r.run()).toMatchObject({ completed: 1, lost: 0 });
      expect(await status(r, stale.id)).toBe("completed");
      const [a, b] = fences.filter((x) => x.id === stale.id);
      expect(b!.fence).toBeGreaterThan(a!.fence);
      const after = await r.rows<{ name: string }>(
        sql`select name from steps where event_id = ${stale.id} order by name`,
      );
      expect(after.map((s) => s.name)).toEqual(["before"]);
    });

    it("settle: a grant let go cleanly keeps its outcome after a newer grant; a lapsed one loses it", async () => {
      const { r, locks, lapse } = await make(backend);
      const consumer = `c-${crypto.randomUUID()}`;
      const settleUnder = async (scope: string, token: number) => {
        const e = event({ source: scope });
        await r.store.publish([e]);
        const claim = await r.store.claim({
          lane: r.store.lanes()[0]!,
          consumer,
          max: 10,
          mode: "new",
          reclaimIdleMs: 60_000,
        });
        const c = claim.events.find((x) => x.event.id === e.id)!;
        const s = await r.store.settle({
          consumer,
          outcomes: [{ receipt: c.receipt, status: "completed" }],
          now: new Date(),
          fences: new Map([[e.id, [{ scope, token }]]]),
        });
        return { recorded: s.recorded, status: await status(r, e.id) };
      };

      const a = locks();
      await a.tryAcquire(["clean"]);
      const cleanToken = a.fence("clean")!;
      await a.release(["clean"]);
      const b = locks();
      await b.tryAcquire(["clean"]);
      expect(b.fence("clean")!).toBeGreaterThan(cleanToken);
      expect(await settleUnder("clean", cleanToken)).toEqual({ recorded: 1, status: "completed" });

      const c = locks();
      await c.tryAcquire(["lapsed"]);
      const lapsedToken = c.fence("lapsed")!;
      await lapse("lapsed");
      const d = locks();
      expect([...(await d.tryAcquire(["lapsed"]))]).toEqual(["lapsed"]);
      expect(await settleUnder("lapsed", lapsedToken)).toEqual({ recorded: 0, status: "in flight" });
      // The newer holder's own token passes.
      expect(await settleUnder("lapsed", d.fence("lapsed")!)).toEqual({ recorded: 1, status: "completed" });
    });
  });
}

describe("fencing tokens: destinations", () => {
  it("a delivery carries reflex-fence: <scope>:<token>, and a receiver keeping the highest token per scope accepts them in order", async () => {
    const id = crypto.randomUUID().slice(0, 12);
    await fetch(`${RECEIVER}/__control/${id}`, { method: "POST", body: JSON.stringify({ mode: "ok" }) });
    const r = await rig("redis", {
      ...AS_CONFIGURED,
      DESTINATIONS: JSON.stringify([{ name: "sink", url: `${RECEIVER}/r/${id}`, filter: { types: ["test.*"] } }]),
    });
    open.push(r);
    const d = openDestinations({ config: r.cfg, db: r.db.db, base: r.triggers });
    for (let i = 0; i < 3; i++) {
      await r.store.publish([event({ source: "orders/eu" }), event({ source: "orders/eu" })]);
      expect(await r.run({ triggers: d.triggers, hooks: d.hooks })).toMatchObject({ completed: 2 });
    }
    const got = (await (await fetch(`${RECEIVER}/__log/${id}`)).json()) as Array<{ headers: Record<string, string> }>;
    expect(got).toHaveLength(6);
    // The receiver's check from docs/handlers-and-agents.md ("Destinations").
    const highest = new Map<string, number>();
    const accept = (header: string) => {
      const at = header.lastIndexOf(":");
      const scope = header.slice(0, at);
      const token = Number(header.slice(at + 1));
      if (token < (highest.get(scope) ?? 0)) return false;
      highest.set(scope, token);
      return true;
    };
    const headers = got.map((x) => x.headers["reflex-fence"]!);
    for (const h of headers) expect(h).toMatch(/^orders\/eu:\d+$/);
    expect(headers.map(accept)).toEqual([true, true, true, true, true, true]);
    expect(new Set(headers).size).toBe(3);
    // A delivery from an older grant, arriving late, is refused.
    expect(accept(headers[0]!)).toBe(false);
  });
});
