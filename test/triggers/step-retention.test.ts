/**
 * Step records follow their event: retention deletes them with it. A step result over its
 * size limit fails that step with a clear error (recorded), and one very large event in an
 * agent's scope does not make the later events of that scope fail: what an agent records
 * of history is clipped. Both backends, real Redis and Postgres; the model is the AI SDK's mock.
 */
import { tool } from "ai";
import { MockLanguageModelV3 } from "ai/test";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { applyRetention } from "../../src/jobs/retention";
import { agent, agentTools, filters as f } from "../../src/triggers";
import { MAX_STEP_RESULT_BYTES } from "../../src/triggers/steps";
import { event } from "../support/consume";
import { rigsClosedAfterEach } from "../support/rig";

const make = rigsClosedAfterEach();

type Answer = Awaited<ReturnType<MockLanguageModelV3["doGenerate"]>>;
const usage = {
  inputTokens: { total: 10, noCache: 10, cacheRead: 0, cacheWrite: 0 },
  outputTokens: { total: 5, text: 5, reasoning: 0 },
};
const toolCall = (toolName: string, input: unknown): Answer => ({
  content: [{ type: "tool-call", toolCallId: crypto.randomUUID(), toolName, input: JSON.stringify(input) }],
  finishReason: { unified: "tool-calls", raw: "tool_calls" },
  usage,
  warnings: [],
});
const done: Answer = {
  content: [{ type: "text", text: "Done." }],
  finishReason: { unified: "stop", raw: "stop" },
  usage,
  warnings: [],
};
/** Per event: a history search, then done. */
const searcher = () => {
  let n = 0;
  return new MockLanguageModelV3({ doGenerate: async () => (n++ % 2 === 0 ? toolCall("history", {}) : done) });
};

describe.each(["redis", "postgres"] as const)("step records (%s)", (backend) => {
  it("retention deletes an event's step records with it; a younger event keeps its own", async () => {
    const r = await make(backend, { HISTORY_RETENTION_DAYS: "30", DLQ_RETENTION_DAYS: "0" });
    r.triggers.register({
      name: "stepper",
      filter: f.type("work.step"),
      handler: async (ctx) => {
        await ctx.step("one", () => ({ n: 1 }));
        await ctx.step("two", () => ({ n: 2 }));
      },
    });
    const old = event({ type: "work.step" });
    const young = event({ type: "work.step" });
    await r.bundle.store.publish([old, young]);
    expect(await r.run()).toMatchObject({ completed: 2 });
    await r.rows(sql`update events set "timestamp" = now() - interval '31 days' where id = ${old.id}`);
    const report = await applyRetention(
      r.db.db,
      { historyDays: 30, dlqDays: 0, attemptsDays: 0, replayJobsDays: 0, batchSize: 100, maxBatches: 5 },
      new Date(),
    );
    expect(report.events).toBe(1);
    const left = await r.rows<{ event_id: string; n: number }>(
      sql`select event_id, count(*)::int as n from steps group by 1`,
    );
    expect(left).toEqual([{ event_id: young.id, n: 2 }]);
  });

  it("a step result over the size limit fails that step with a clear, recorded error", async () => {
    const r = await make(backend, { EVENT_MAX_ATTEMPTS: "1" });
    // Multi-byte characters: the limit counts bytes of JSON, not characters.
    const big = "é".repeat(MAX_STEP_RESULT_BYTES / 2 + 10);
    r.triggers.register({
      name: "hoarder",
      filter: f.type("work.big"),
      handler: async (ctx) => {
        await ctx.step("small", () => 1);
        await ctx.step("hoard", () => big);
      },
    });
    const e = event({ type: "work.big" });
    await r.bundle.store.publish([e]);
    expect(await r.run()).toMatchObject({ dlq: 1 });
    const steps = await r.rows<{ name: string; status: string; error: string | null }>(
      sql`select name, status, error from steps where event_id = ${e.id} order by name`,
    );
    const over = `ctx.step("hoard"): the result is ${new TextEncoder().encode(JSON.stringify(big)).byteLength} bytes of JSON, over the limit of ${MAX_STEP_RESULT_BYTES}`;
    expect(steps).toEqual([
      { name: "hoard", status: "failed", error: over },
      { name: "small", status: "completed", error: null },
    ]);
    const [row] = await r.rows<{ last_error: string }>(sql`select last_error from events where id = ${e.id}`);
    expect(row!.last_error).toBe(`hoarder: ${over}`);
  });

  it("one ~1 MiB event in an agent's scope: the later events of that scope still complete", async () => {
    const r = await make(backend, { EVENT_MAX_ATTEMPTS: "1" });
    const note = tool({ description: "noop", inputSchema: z.object({}), execute: async () => ({ ok: true }) });
    r.triggers.register(
      agent({
        name: "reader",
        filter: f.type("ticket.note"),
        model: searcher(),
        instructions: "Read the history.",
        tools: { history: agentTools.history({ limit: 20 }), note },
        context: { history: 10 },
        scope: "ticket",
      }),
    );
    const huge = event({ type: "ticket.note", ticket: "T-1", text: "x".repeat(1_100_000) });
    huge.timestamp = new Date(Date.now() - 60_000).toISOString();
    await r.bundle.store.publish([huge]);
    expect(await r.run()).toMatchObject({ completed: 1 });
    const later = [1, 2].map((i) => event({ type: "ticket.note", ticket: "T-1", text: `note ${i}` }));
    later[0]!.timestamp = new Date(Date.now() - 30_000).toISOString();
    await r.bundle.store.publish(later);
    expect(await r.run()).toMatchObject({ completed: 2, dlq: 0 });
    // The history the agent recorded names the big event, clipped.
    const [ctx] = await r.rows<{ len: number; has: boolean }>(sql`
      select length(result::text)::int as len, position(${huge.id} in result::text) > 0 as has
        from steps where event_id = ${later[1]!.id} and name = 'context'`);
    expect(ctx!.has).toBe(true);
    expect(ctx!.len).toBeLessThan(100_000);
  });
});
