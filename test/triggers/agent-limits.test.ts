/**
 * Agents within their limits, with a scripted model (the AI SDK's mock) against the real
 * Redis and Postgres: tool calls past maxToolCalls are refused to the model, not run; publish
 * only the declared types; deliver through the destination path (filter, breaker, fence,
 * attempt record); history only the scope's value; the token budget caps each call; the
 * ids of agent deliveries are keyed HMACs; EVENT_ID_SECRET is required outside local use.
 */
import { tool } from "ai";
import type { MockLanguageModelV3 } from "ai/test";
import { sql } from "drizzle-orm";
import { describe, expect, inject, it } from "vitest";
import { z } from "zod";
import { loadConfig } from "../../src/config";
import type { EventEnvelope } from "../../src/events/envelope";
import { derivedIdKey, keyedUuid } from "../../src/events/ids";
import { agent, agentContext, agentTools, filters as f } from "../../src/triggers";
import { event } from "../support/consume";
import { rigsClosedAfterEach } from "../support/rig";
import { calls, says, scripted, toolResultsOf } from "../support/scripted-model";

const make = rigsClosedAfterEach();

const publishN = (n: number, type = "note.taken") =>
  Array.from({ length: n }, (_, i) => ["publish", { type, fields: { i } }] as [string, unknown]);

describe.each(["redis", "postgres"] as const)("agents within their limits (%s)", (backend) => {
  it("tool calls past maxToolCalls per turn and per event are refused to the model, not run", async () => {
    const r = await make(backend);
    r.eventTypes.register("note.taken", z.looseObject({}));
    // Turn 1 asks for 7 publishes (5 run: the default per turn); turn 2 for 7 more (only 3
    // left of the 8 per event).
    const m = scripted(calls(...publishN(7)), calls(...publishN(7)), says("Done."));
    r.triggers.register(
      agent({
        name: "chatty",
        filter: f.type("work.start"),
        model: m,
        instructions: "Publish.",
        tools: { publish: agentTools.publish() },
        publishes: ["note.taken"],
        maxToolCalls: { perEvent: 8 },
      }),
    );
    await r.bundle.store.publish([event({ type: "work.start" })]);
    expect(await r.run()).toMatchObject({ completed: 9, derived: 8 });
    const first = toolResultsOf(m, 1);
    expect(first.match(/"published"/g)).toHaveLength(5);
    expect(
      first.match(/not run: the limit of 5 tool calls per turn \(maxToolCalls.perTurn\) is reached/g),
    ).toHaveLength(2);
    // Its prompt holds both turns' results: turn 2 ran 3, refused 2 per event, then 2 per turn.
    const second = toolResultsOf(m, 2);
    expect(second.match(/"published"/g)).toHaveLength(8);
    expect(second.match(/per event \(maxToolCalls.perEvent\) is reached/g)).toHaveLength(2);
    expect(second.match(/per turn \(maxToolCalls.perTurn\) is reached/g)).toHaveLength(4);
    const [n] = await r.rows<{ n: number }>(sql`select count(*)::int as n from events where type = 'note.taken'`);
    expect(n!.n).toBe(8);
  });

  it("publish: only the types the agent declares, from the built-in tool and from its own tools alike", async () => {
    const r = await make(backend);
    r.eventTypes.register("note.taken", z.looseObject({}));
    r.eventTypes.register("payment.sent", z.looseObject({}));
    const pay = tool({
      description: "Pay",
      inputSchema: z.object({}),
      execute: async (_, options) => {
        const e = await agentContext(options).publish({ type: "payment.sent", amount: 1_000_000 });
        return { published: e.id };
      },
    });
    const m = scripted(
      calls(["publish", { type: "payment.sent", fields: {} }], ["pay", {}], ["publish", { type: "note.taken" }]),
      says("Done."),
    );
    r.triggers.register(
      agent({
        name: "careful",
        filter: f.type("work.start"),
        model: m,
        instructions: "Publish.",
        tools: { publish: agentTools.publish(), pay },
        publishes: ["note.taken"],
      }),
    );
    await r.bundle.store.publish([event({ type: "work.start" })]);
    expect(await r.run()).toMatchObject({ completed: 2, derived: 1 });
    const results = toolResultsOf(m, 1);
    expect(results.match(/not published: agent careful may publish note.taken, not \\"payment.sent\\"/g)).toHaveLength(
      2,
    );
    const types = await r.rows<{ type: string }>(sql`select type from events where type <> 'work.start'`);
    expect(types).toEqual([{ type: "note.taken" }]);
  });

  it("history: only the events of the agent's scope value; an event without one sees none of its source", async () => {
    const r = await make(backend);
    const older = [event({ type: "ticket.note", ticket: "T-1" }), event({ type: "ticket.note", ticket: "T-2" })];
    for (const [i, x] of older.entries()) x.timestamp = new Date(Date.now() - 60_000 + i).toISOString();
    await r.bundle.store.publish(older);
    expect(await r.run()).toMatchObject({ completed: 2 });
    const m = scripted(calls(["history", {}]), says("Read."));
    r.triggers.register(
      agent({
        name: "reader",
        filter: f.type("ticket.ask"),
        model: m,
        instructions: "Read.",
        tools: { history: agentTools.history() },
        context: { history: 5 },
        scope: "ticket",
      }),
    );
    // No `ticket` field: its scope falls back to the source, but it may read no history.
    await r.bundle.store.publish([event({ type: "ticket.ask" })]);
    expect(await r.run()).toMatchObject({ completed: 1 });
    const seen = JSON.stringify(m.doGenerateCalls.map((c) => c.prompt));
    for (const x of older) expect(seen).not.toContain(x.id);
    expect(toolResultsOf(m, 1)).toContain('"events":[]');
  });

  it("the token budget caps each call: maxOutputTokens is what is left, less the input it will send", async () => {
    const r = await make(backend);
    const m = scripted(calls(["history", {}]), calls(["history", {}]), says("Done."));
    r.triggers.register(
      agent({
        name: "thrifty",
        filter: f.type("work.start"),
        model: m,
        instructions: "Look.",
        tools: { history: agentTools.history() },
        budget: { tokens: 1_000 },
      }),
    );
    await r.bundle.store.publish([event({ type: "work.start" })]);
    expect(await r.run()).toMatchObject({ completed: 1 });
    expect(m.doGenerateCalls.map((c) => c.maxOutputTokens)).toEqual([1_000, 1_000 - 120 - 120, 1_000 - 240 - 120]);
  });
});

describe("agent deliveries go through the destination path", () => {
  const receiver = () => inject("receiverUrl");
  const rig = async (filter: Record<string, unknown>) => {
    const id = crypto.randomUUID().slice(0, 12);
    const r = await make("redis", {
      EVENT_ID_SECRET: "agent-limits-secret-0123456789",
      DESTINATIONS: JSON.stringify([
        {
          name: "ops",
          url: `${receiver()}/r/${id}`,
          filter,
          secret: `whsec_${btoa("a-signing-secret-of-32-bytes!!!!")}`,
        },
      ]),
    });
    return { r, id };
  };
  const deliverer = (m: MockLanguageModelV3) =>
    agent({
      name: "notifier",
      filter: f.type("work.start"),
      model: m,
      instructions: "Tell ops.",
      tools: { deliver: agentTools.deliver({ destinations: ["ops"], type: "ops.note" }) },
      scope: "team",
    });

  it("signed, with the fence header, recorded as an attempt of the handled event; the id is a keyed HMAC", async () => {
    const { r, id } = await rig({ types: ["ops.*"] });
    const m = scripted(calls(["deliver", { destination: "ops", fields: { text: "hi" } }]), says("Sent."));
    r.triggers.register(deliverer(m));
    const e = event({ type: "work.start", team: "blue" });
    await r.bundle.store.publish([e]);
    expect(await r.run()).toMatchObject({ completed: 1 });
    const log = (await (await fetch(`${receiver()}/__log/${id}`)).json()) as Array<{
      headers: Record<string, string>;
      body: string;
    }>;
    expect(log).toHaveLength(1);
    const sent = JSON.parse(log[0]!.body) as EventEnvelope;
    expect(log[0]!.headers["reflex-fence"]).toMatch(/^blue:\d+$/);
    expect(log[0]!.headers["webhook-id"]).toBe(sent.id);
    const [attempt] = await r.rows<{ event_id: string; destination: string; status_code: number }>(
      sql`select event_id, destination, status_code from delivery_attempts`,
    );
    expect(attempt).toEqual({ event_id: e.id, destination: "ops", status_code: 200 });
    // Keyed with EVENT_ID_SECRET: a different secret gives a different id for the same parts.
    const callId = JSON.parse(toolResultsOf(m, 1))[0].content[0].toolCallId as string;
    expect(sent.id).toBe(await keyedUuid(derivedIdKey(r.cfg), e.id, "notifier", "deliver", callId));
    const other = { ...r.cfg, EVENT_ID_SECRET: "another-secret-0123456789abcdef" };
    expect(sent.id).not.toBe(await keyedUuid(derivedIdKey(other), e.id, "notifier", "deliver", callId));
  });

  it("an event the destination's filter refuses is not sent and goes back to the model", async () => {
    const { r, id } = await rig({ types: ["billing.*"] });
    const m = scripted(calls(["deliver", { destination: "ops", fields: { text: "hi" } }]), says("Oh well."));
    r.triggers.register(deliverer(m));
    await r.bundle.store.publish([event({ type: "work.start" })]);
    expect(await r.run()).toMatchObject({ completed: 1 });
    expect(toolResultsOf(m, 1)).toContain('not delivered: destination ops does not take events of type \\"ops.note\\"');
    expect(await (await fetch(`${receiver()}/__log/${id}`)).json()).toEqual([]);
    expect(await r.rows(sql`select 1 from delivery_attempts`)).toEqual([]);
  });

  it("an open breaker defers the event untried: nothing is sent", async () => {
    const { r, id } = await rig({ types: ["ops.*"] });
    await r.rows(sql`insert into destination_breakers (destination, state, failures, opened_at, next_probe_at, cooldown_ms)
      values ('ops', 'open', 5, now(), now() + interval '1 hour', 30000)`);
    const m = scripted(calls(["deliver", { destination: "ops", fields: { text: "hi" } }]), says("Sent."));
    r.triggers.register(deliverer(m));
    await r.bundle.store.publish([event({ type: "work.start" })]);
    expect(await r.run()).toMatchObject({ deferred: 1 });
    expect(await (await fetch(`${receiver()}/__log/${id}`)).json()).toEqual([]);
  });
});

describe("EVENT_ID_SECRET", () => {
  it("is required unless DATABASE_URL is local", () => {
    const problems = (env: Record<string, unknown>) => {
      try {
        loadConfig({ EVENT_BACKEND: "postgres", ...env });
        return [];
      } catch (e) {
        return (e as { problems: string[] }).problems;
      }
    };
    expect(problems({ DATABASE_URL: "postgres://u@db.example/x" })).toEqual([
      "EVENT_ID_SECRET: required unless DATABASE_URL is local (localhost, 127.0.0.1, ::1): it keys the HMAC of derived event ids",
    ]);
    expect(
      problems({ DATABASE_URL: "postgres://u@db.example/x", EVENT_ID_SECRET: "a-secret-of-at-least-24-chars" }),
    ).toEqual([]);
    expect(problems({ DATABASE_URL: "postgres://u@127.0.0.1:5432/x" })).toEqual([]);
  });
});
