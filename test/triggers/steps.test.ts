/**
 * Durable steps (ctx.step) against the real Redis and Postgres, with both backends: a
 * recorded step is read back instead of run on the retry, a throwing step runs again, a
 * crash between steps resumes after the last recorded one, derived events published in a
 * step are published once with the same ids, and a replay copy runs its steps afresh.
 * Retries are made due by moving the consumers' clock, never by waiting for them.
 */
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { derivedIdKey, deriveEvent } from "../../src/consume/derive";
import { CrashInjected, Failpoints } from "../../src/failpoints";
import { filters as f } from "../../src/triggers";
import { call } from "../support/admin";
import { event } from "../support/consume";
import { type Rig, rigsClosedAfterEach } from "../support/rig";

const make = rigsClosedAfterEach();
const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

type StepRowView = { name: string; status: string; attempt: number; result: unknown; error: string | null };
const stepRows = (r: Rig, id: string) =>
  r.rows<StepRowView>(
    sql`select name, status, attempt, result, error from steps where event_id = ${id} order by started_at, name`,
  );

describe.each(["redis", "postgres"] as const)("durable steps (%s)", (backend) => {
  it("a recorded step is returned on the retry and not run again; a step that throws is retried", async () => {
    const r = await make(backend);
    const ran = { a: 0, b: 0, c: 0 };
    const seen: unknown[] = [];
    r.triggers.register({
      name: "flow",
      filter: f.type("flow.start"),
      handler: async (ctx) => {
        const a = await ctx.step("a", () => ({ n: ++ran.a, at: new Date(0) }));
        seen.push(a);
        const b = await ctx.step("b", () => {
          if (++ran.b === 1) throw new Error("b is down");
          return a.n + 1;
        });
        seen.push(b);
        seen.push(await ctx.step("c", () => void ran.c++));
      },
    });
    const e = event({ type: "flow.start" });
    await r.bundle.store.publish([e]);

    expect(await r.run()).toMatchObject({ retried: 1 });
    expect(await stepRows(r, e.id)).toEqual([
      {
        name: "a",
        status: "completed",
        attempt: 1,
        result: { value: { n: 1, at: "1970-01-01T00:00:00.000Z" } },
        error: null,
      },
      { name: "b", status: "failed", attempt: 1, result: null, error: "b is down" },
    ]);

    r.clock.advance(100);
    expect(await r.run()).toMatchObject({ completed: 1 });
    expect(ran).toEqual({ a: 1, b: 2, c: 1 });
    // The first run returned the result as JSON too: both attempts saw the same value.
    const a = { n: 1, at: "1970-01-01T00:00:00.000Z" };
    expect(seen).toEqual([a, a, 2, undefined]);
    expect(await stepRows(r, e.id)).toEqual([
      { name: "a", status: "completed", attempt: 1, result: { value: a }, error: null },
      { name: "b", status: "completed", attempt: 2, result: { value: 2 }, error: null },
      { name: "c", status: "completed", attempt: 2, result: {}, error: null },
    ]);

    // The admin detail lists them: name, status, attempt, duration.
    const detail = await call(r.env, "GET", `/events/${e.id}`);
    expect(detail.status).toBe(200);
    expect(detail.body.steps).toEqual([
      expect.objectContaining({
        trigger: "flow",
        name: "a",
        status: "completed",
        attempt: 1,
        duration_ms: expect.any(Number),
      }),
      expect.objectContaining({ trigger: "flow", name: "b", status: "completed", attempt: 2 }),
      expect.objectContaining({ trigger: "flow", name: "c", status: "completed", attempt: 2 }),
    ]);
    expect(detail.body.errors).toEqual([expect.objectContaining({ attempt: 1, error: "flow: b is down" })]);
  });

  it("a crash between steps: the redelivery resumes after the last recorded step", async () => {
    const r = await make(backend);
    const ran = { a: 0, b: 0, c: 0 };
    r.triggers.register({
      name: "flow",
      filter: f.type("flow.start"),
      handler: async (ctx) => {
        await ctx.step("a", () => ++ran.a);
        await ctx.step("b", () => ++ran.b);
        await ctx.step("c", () => ++ran.c);
      },
    });
    const e = event({ type: "flow.start" });
    await r.bundle.store.publish([e]);
    // The isolate dies right after step b's record was written: nothing is settled.
    await expect(r.run({ failpoints: new Failpoints({ "after-step-recorded": 2 }) })).rejects.toBeInstanceOf(
      CrashInjected,
    );
    expect(ran).toEqual({ a: 1, b: 1, c: 0 });
    // Redelivered once the claim's visibility timeout passed.
    await sleep(1_100);
    expect(await r.run()).toMatchObject({ completed: 1 });
    expect(ran).toEqual({ a: 1, b: 1, c: 1 });
    const [row] = await r.rows<{ status: string; attempts: number }>(
      sql`select status, attempts from events where id = ${e.id}`,
    );
    expect(row).toEqual({ status: "completed", attempts: 2 });
    expect((await stepRows(r, e.id)).map((s) => [s.name, s.attempt])).toEqual([
      ["a", 1],
      ["b", 1],
      ["c", 2],
    ]);
  });

  it("derived events published in a step are staged again when it is replayed: published once, same ids", async () => {
    const r = await make(backend);
    for (const t of ["flow.announced", "flow.after"]) r.eventTypes.register(t, z.looseObject({}));
    const announced: string[] = [];
    r.triggers.register({
      name: "flow",
      filter: f.type("flow.start"),
      handler: async (ctx) => {
        announced.push(
          await ctx.step("announce", async () => (await ctx.publish({ type: "flow.announced", n: 1 })).id),
        );
        await ctx.publish({ type: "flow.after", n: 2 });
        if (ctx.attempt === 1) throw new Error("fails after the step");
      },
    });
    const e = event({ type: "flow.start" });
    await r.bundle.store.publish([e]);
    expect(await r.run()).toMatchObject({ retried: 1, derived: 0 });
    r.clock.advance(100);
    expect(await r.run()).toMatchObject({ completed: 3, derived: 2 });

    const idOf = async (seq: number) =>
      (await deriveEvent(e, "flow", seq, { type: "flow.after" }, 0, derivedIdKey(r.cfg), r.eventTypes)).id;
    const ids = [await idOf(0), await idOf(1)];
    expect(announced).toEqual([ids[0], ids[0]]);
    const derived = await r.rows<{ id: string; type: string; causation: string; correlation: string }>(sql`
      select id, type, meta ->> 'causation_id' as causation, meta ->> 'correlation_id' as correlation
        from events where meta ->> 'causation_id' = ${e.id} order by type`);
    expect(derived).toEqual([
      { id: ids[1], type: "flow.after", causation: e.id, correlation: e.id },
      { id: ids[0], type: "flow.announced", causation: e.id, correlation: e.id },
    ]);
  });

  it("a replay copy is a new event: its steps run afresh", async () => {
    const r = await make(backend);
    // Replay copies are checked against the registry: the type this test publishes directly.
    r.eventTypes.register("flow.start", z.looseObject({}));
    const ran: string[] = [];
    r.triggers.register({
      name: "flow",
      filter: f.type("flow.start"),
      handler: async (ctx) => {
        await ctx.step("a", () => ran.push(ctx.event.id));
      },
    });
    const e = event({ type: "flow.start" });
    await r.bundle.store.publish([e]);
    expect(await r.run()).toMatchObject({ completed: 1 });

    const job = await call(r.env, "POST", "/replays", {
      body: { from: new Date(Date.now() - 3_600_000).toISOString(), types: ["flow.start"] },
    });
    expect(job.status).toBe(202);
    await r.replay();
    const [copy] = await r.rows<{ id: string; status: string }>(
      sql`select id, status from events where meta ->> 'replay' = ${job.body.id}`,
    );
    expect(copy).toMatchObject({ status: "completed" });
    expect(ran).toEqual([e.id, copy!.id]);
    expect((await stepRows(r, copy!.id)).map((s) => [s.name, s.status, s.attempt])).toEqual([["a", "completed", 1]]);
  });

  it("many events at once: every step recorded once, each function run once", async () => {
    const r = await make(backend, { CONSUMER_BATCH_SIZE: "200" });
    const ran = new Map<string, number>();
    const bump = (k: string) => ran.set(k, (ran.get(k) ?? 0) + 1);
    r.triggers.register({
      name: "flow",
      filter: f.type("flow.start"),
      handler: async (ctx) => {
        await ctx.step("one", () => bump(`${ctx.event.id}:one`));
        await ctx.step("two", () => bump(`${ctx.event.id}:two`));
      },
    });
    const evs = Array.from({ length: 300 }, (_, i) => event({ type: "flow.start", source: `s${i % 20}` }));
    await r.bundle.store.publish(evs);
    expect(await r.run()).toMatchObject({ completed: 300 });
    expect(ran.size).toBe(600);
    expect([...ran.values()].every((n) => n === 1)).toBe(true);
    const [n] = await r.rows<{ n: number }>(sql`select count(*)::int as n from steps where status = 'completed'`);
    expect(n!.n).toBe(600);
  });
});

describe("durable steps: misuse", () => {
  it("names are unique per handler call, steps run one at a time, and a database is needed", async () => {
    const r = await make("redis");
    const errors: string[] = [];
    const capture = async (p: Promise<unknown>) => p.catch((e: Error) => void errors.push(e.message));
    r.triggers.register({
      name: "flow",
      filter: f.type("flow.start"),
      handler: async (ctx) => {
        await ctx.step("a", () => 1);
        await capture(ctx.step("a", () => 2));
        let release!: () => void;
        const first = ctx.step("slow", () => new Promise<void>((res) => (release = res)));
        await capture(ctx.step("fast", () => 3));
        await sleep(0);
        release();
        await first;
      },
    });
    await r.bundle.store.publish([event({ type: "flow.start" })]);
    expect(await r.run()).toMatchObject({ completed: 1 });
    expect(errors).toEqual([
      'ctx.step("a"): a step of this name already ran in this attempt; names must be unique',
      'ctx.step("fast"): another step is running; await each step before the next',
    ]);

    const e = event({ type: "flow.start" });
    await r.bundle.store.publish([e]);
    expect(await r.run({ db: undefined })).toMatchObject({ retried: 1 });
    const [row] = await r.rows<{ last_error: string }>(sql`select last_error from events where id = ${e.id}`);
    expect(row!.last_error).toBe("flow: ctx.step needs Postgres: the consumer was started without a database (db)");
  });
});
