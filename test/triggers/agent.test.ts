/**
 * Agent triggers with the AI SDK's mock language model (no network), against the real Redis
 * and Postgres, with both backends: tool calls publish derived events with correlation and
 * causation ids; a crash between turns costs no model call twice; over budget ends in the
 * DLQ with a clear error; usage is recorded, shown and counted; a replay copy starts afresh.
 */
import { tool } from "ai";
import { MockLanguageModelV3 } from "ai/test";
import { sql } from "drizzle-orm";
import { describe, expect, inject, it } from "vitest";
import { z } from "zod";
import { flushMetrics } from "../../src/backends";
import { loadConfig } from "../../src/config";
import type { EventEnvelope } from "../../src/events/envelope";
import { CrashInjected, Failpoints } from "../../src/failpoints";
import { issueOpened, issueTriage, triageTool } from "../../src/handlers/issue-triage";
import { agent, agentTools, filters as f } from "../../src/triggers";
import { call, scrapeMetrics } from "../support/admin";
import { event } from "../support/consume";
import { type Rig, rigsClosedAfterEach } from "../support/rig";
import { calls, promptOf, says, scripted, toolResultsOf } from "../support/scripted-model";

const make = rigsClosedAfterEach();
const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

const issue = (n: number, repo = "acme/app"): EventEnvelope =>
  event({
    type: "webhook.received",
    source: "github",
    delivery_id: crypto.randomUUID(),
    headers: { "x-github-event": "issues" },
    body: {
      action: "opened",
      issue: { number: n, title: `App crashes on start (${n})`, body: "Stack trace..." },
      repository: { full_name: repo },
    },
    meta: {
      trace_id: "a".repeat(32),
      correlation_id: `corr-${n}`,
      ingress: { kind: "webhook", source: "github", scheme: "github" },
    },
  });

async function scrape(r: Rig): Promise<Map<string, number>> {
  await flushMetrics(r.cfg);
  const m = await scrapeMetrics(r.env);
  expect(m.status).toBe(200);
  return m.series;
}

describe.each(["redis", "postgres"] as const)("agents (%s)", (backend) => {
  it("the triage example: a tool call publishes issue.triaged with correlation and causation ids; usage recorded", async () => {
    const r = await make(backend);
    const m = scripted(calls(["triage", { labels: ["bug"], summary: "The app crashes on start" }]), says("Triaged."));
    r.triggers.register(issueTriage({ model: m }));
    const e = issue(7);
    await r.bundle.store.publish([e]);
    expect(await r.run()).toMatchObject({ completed: 2, derived: 1 });
    expect(m.doGenerateCalls).toHaveLength(2);
    // The model saw the event, and the tool's result on its second turn.
    expect(promptOf(m, 0)).toContain("App crashes on start (7)");
    expect(toolResultsOf(m, 1)).toContain("published");

    const [triaged] = await r.rows<{ id: string; payload: unknown; meta: Record<string, string> }>(
      sql`select id, payload, meta from events where type = 'issue.triaged'`,
    );
    expect(triaged!.payload).toEqual({
      repository: "acme/app",
      issue_number: 7,
      labels: ["bug"],
      summary: "The app crashes on start",
    });
    expect(triaged!.meta).toMatchObject({ causation_id: e.id, correlation_id: "corr-7", trace_id: e.meta.trace_id });

    const label = "mock-provider:mock-model-id";
    const detail = await call(r.env, "GET", `/events/${e.id}`);
    expect(detail.body.steps.map((s: { name: string }) => s.name)).toEqual([
      "turn 1 model",
      "turn 1 tool 1 triage",
      "turn 2 model",
    ]);
    expect(detail.body.steps[0].usage).toEqual({ model: label, input_tokens: 100, output_tokens: 20 });
    expect(detail.body.usage).toEqual([{ model: label, calls: 2, input_tokens: 200, output_tokens: 40 }]);
  });

  it("a crash after three turns: the retry resumes at the fourth, each model and tool call made once in total", async () => {
    const r = await make(backend);
    r.eventTypes.register("note.summary", z.looseObject({}));
    const noted: number[] = [];
    const m = scripted(
      calls(["note", { n: 1 }]),
      calls(["note", { n: 2 }]),
      calls(["note", { n: 3 }]),
      calls(["publish", { type: "note.summary", fields: { notes: 3 } }]),
      says("Done."),
    );
    r.triggers.register(
      agent({
        name: "noter",
        filter: f.type("work.start"),
        model: m,
        instructions: "Take three notes, then publish a summary.",
        tools: {
          note: tool({
            description: "Take a note",
            inputSchema: z.object({ n: z.number().int() }),
            execute: async ({ n }) => {
              noted.push(n);
              return { ok: n };
            },
          }),
          publish: agentTools.publish({ types: ["note.summary"] }),
        },
        publishes: ["note.summary"],
      }),
    );
    const e = event({ type: "work.start" });
    await r.bundle.store.publish([e]);
    // The isolate dies right after the sixth record: turn 3's tool call.
    await expect(r.run({ failpoints: new Failpoints({ "after-step-recorded": 6 }) })).rejects.toBeInstanceOf(
      CrashInjected,
    );
    expect(m.doGenerateCalls).toHaveLength(3);
    await sleep(1_100); // the claim's visibility timeout
    expect(await r.run()).toMatchObject({ completed: 2, derived: 1 });

    expect(m.doGenerateCalls).toHaveLength(5);
    expect(noted).toEqual([1, 2, 3]);
    // The fourth call (the first of the retry) carried the three recorded turns and their results.
    expect(toolResultsOf(m, 3)).toContain('"ok":3');
    const [summary] = await r.rows<{ payload: unknown; causation: string }>(
      sql`select payload, meta ->> 'causation_id' as causation from events where type = 'note.summary'`,
    );
    expect(summary).toEqual({ payload: { notes: 3 }, causation: e.id });
    const steps = await r.rows<{ name: string; attempt: number }>(
      sql`select name, attempt from steps where event_id = ${e.id} order by started_at`,
    );
    expect(steps.map((s) => `${s.name}@${s.attempt}`)).toEqual([
      "turn 1 model@1",
      "turn 1 tool 1 note@1",
      "turn 2 model@1",
      "turn 2 tool 1 note@1",
      "turn 3 model@1",
      "turn 3 tool 1 note@1",
      "turn 4 model@2",
      "turn 4 tool 1 publish@2",
      "turn 5 model@2",
    ]);
  });

  it("over the turn budget: every attempt fails with a clear error and the event ends in the DLQ, the model paid once", async () => {
    const r = await make(backend, { EVENT_MAX_ATTEMPTS: "2" });
    const m = scripted(calls(["history", {}]));
    r.triggers.register(
      agent({
        name: "looper",
        filter: f.type("work.start"),
        model: m,
        instructions: "Look around forever.",
        tools: { history: agentTools.history() },
        maxSteps: 2,
      }),
    );
    const e = event({ type: "work.start" });
    await r.bundle.store.publish([e]);
    expect(await r.run()).toMatchObject({ retried: 1 });
    r.clock.advance(100);
    expect(await r.run()).toMatchObject({ dlq: 1 });
    expect(m.doGenerateCalls).toHaveLength(2);
    const [row] = await r.rows<{ status: string; last_error: string }>(
      sql`select status, last_error from events where id = ${e.id}`,
    );
    expect(row).toEqual({
      status: "dlq",
      last_error: "looper: over budget: 2 model turns used (maxSteps) and the model still calls tools",
    });
  });

  it("a replay copy runs the agent afresh: the model is called again for it", async () => {
    const r = await make(backend);
    // Replay copies are checked against the registry: the type this test publishes directly.
    r.eventTypes.register("work.start", z.looseObject({}));
    const m = scripted(says("Nothing to do."));
    r.triggers.register(
      agent({ name: "quiet", filter: f.type("work.start"), model: m, instructions: "Say one sentence." }),
    );
    await r.bundle.store.publish([event({ type: "work.start" })]);
    expect(await r.run()).toMatchObject({ completed: 1 });
    const job = await call(r.env, "POST", "/replays", {
      body: { from: new Date(Date.now() - 3_600_000).toISOString(), types: ["work.start"] },
    });
    expect(job.status).toBe(202);
    await r.replay();
    expect(m.doGenerateCalls).toHaveLength(2);
    const [n] = await r.rows<{ n: number }>(sql`select count(*)::int as n from steps where name = 'turn 1 model'`);
    expect(n!.n).toBe(2);
  });
});

describe("agents: metrics, limits, context, tools, configuration", () => {
  it("model calls and tokens are counted in /metrics by model, once per call made (not when replayed)", async () => {
    const r = await make("redis");
    const m = scripted(calls(["history", {}]), says("Done."));
    r.triggers.register(
      agent({
        name: "counted",
        filter: f.type("work.start"),
        model: m,
        instructions: "Look once.",
        tools: { history: agentTools.history() },
      }),
    );
    const before = await scrape(r);
    const e = event({ type: "work.start" });
    await r.bundle.store.publish([e]);
    // Crash after the first turn's record: the retry replays it and makes the second call.
    await expect(r.run({ failpoints: new Failpoints({ "after-step-recorded": 1 }) })).rejects.toBeInstanceOf(
      CrashInjected,
    );
    await sleep(1_100);
    expect(await r.run()).toMatchObject({ completed: 1 });
    const after = await scrape(r);
    const label = "mock-provider:mock-model-id";
    const delta = (k: string) => (after.get(k) ?? 0) - (before.get(k) ?? 0);
    expect(delta(`reflex_model_calls_total{model="${label}"}`)).toBe(2);
    expect(delta(`reflex_model_tokens_total{kind="input",model="${label}"}`)).toBe(200);
    expect(delta(`reflex_model_tokens_total{kind="output",model="${label}"}`)).toBe(40);
    expect(delta('reflex_steps_total{outcome="replayed"}')).toBe(1);
  });

  it("over the token budget (the next call would not fit) and over the time budget: clear errors", async () => {
    const r = await make("redis", { EVENT_MAX_ATTEMPTS: "1" });
    const m = scripted(calls(["history", {}]));
    r.triggers.register(
      agent({
        name: "spender",
        filter: f.type("work.tokens"),
        model: m,
        instructions: "Spend.",
        tools: { history: agentTools.history() },
        budget: { tokens: 250 },
      }),
    );
    // A model that never answers: the time budget aborts its call.
    const silent = new MockLanguageModelV3({
      doGenerate: (o) =>
        new Promise((_, reject) => o.abortSignal?.addEventListener("abort", () => reject(o.abortSignal!.reason))),
    });
    r.triggers.register(
      agent({
        name: "waiter",
        filter: f.type("work.time"),
        model: silent,
        instructions: "Wait.",
        budget: { timeMs: 50 },
      }),
    );
    const a = event({ type: "work.tokens" });
    const b = event({ type: "work.time" });
    await r.bundle.store.publish([a, b]);
    expect(await r.run()).toMatchObject({ dlq: 2 });
    const rows = await r.rows<{ id: string; last_error: string }>(sql`select id, last_error from events`);
    const err = new Map(rows.map((x) => [x.id, x.last_error]));
    expect(err.get(a.id)).toBe(
      "spender: over budget: 240 of 250 tokens per event used; the next model call would send about 120 as input",
    );
    expect(err.get(b.id)).toBe("waiter: over budget: the time limit of 50 ms per attempt was reached");
    expect(m.doGenerateCalls).toHaveLength(2);
  });

  it("context: the last N events of the same scope go into the first prompt; the history tool searches them", async () => {
    const r = await make("postgres");
    const earlier = [issue(1), issue(2), issue(3, "acme/other")];
    // Older than the issue handled below, and already in history.
    earlier.forEach((x, i) => {
      x.timestamp = new Date(Date.now() - 60_000 + i).toISOString();
      (x.body as { action: string }).action = "closed";
    });
    await r.bundle.store.publish(earlier);
    expect(await r.run()).toMatchObject({ completed: 3 });

    const m = scripted(calls(["history", { contains: "(1)" }]), says("Seen."));
    r.triggers.register(
      agent({
        name: "reader",
        filter: f.and(f.type("webhook.received"), f.keyword('"action":"opened"')),
        model: m,
        instructions: "Read.",
        tools: { history: agentTools.history() },
        context: { history: 5 },
        scope: "body.repository.full_name",
      }),
    );
    await r.bundle.store.publish([issue(4)]);
    expect(await r.run()).toMatchObject({ completed: 1 });
    const first = promptOf(m, 0);
    expect(first).toContain("(4)"); // the event itself
    expect(first).toContain(earlier[0]!.id);
    expect(first).toContain(earlier[1]!.id);
    expect(first).not.toContain(earlier[2]!.id); // another repository: another scope
    const second = toolResultsOf(m, 1);
    expect(second).toContain(earlier[0]!.id);
    expect(second).not.toContain(earlier[1]!.id);
  });

  it("a tool call with invalid input goes back to the model as an error; publish checks a registered type's fields", async () => {
    const r = await make("redis");
    const m = scripted(
      calls(["triage", { labels: ["not-a-label"], summary: "x" }]),
      calls(["publish", { type: "issue.triaged", fields: { labels: [] } }]),
      calls(["triage", { labels: ["question"], summary: "How do I configure it?" }]),
      says("Done."),
    );
    r.triggers.register(
      agent({
        name: "strict",
        filter: issueOpened,
        model: m,
        instructions: "Triage.",
        tools: { triage: triageTool, publish: agentTools.publish() },
        publishes: ["issue.triaged"],
      }),
    );
    const e = issue(9);
    await r.bundle.store.publish([e]);
    expect(await r.run()).toMatchObject({ completed: 2, derived: 1 });
    expect(m.doGenerateCalls).toHaveLength(4);
    expect(toolResultsOf(m, 1)).toContain("not-a-label"); // the SDK's validation error, as a tool error
    expect(toolResultsOf(m, 2)).toContain("not published, the fields do not fit issue.triaged");
    const [t] = await r.rows<{ labels: string[] }>(
      sql`select payload -> 'labels' as labels from events where type = 'issue.triaged'`,
    );
    expect(t!.labels).toEqual(["question"]);
  });

  it("deliver: a failed delivery fails the attempt; the retry delivers again with the same id, the model not called again", async () => {
    const id = crypto.randomUUID().slice(0, 12);
    const receiver = inject("receiverUrl");
    const set = await fetch(`${receiver}/__control/${id}`, {
      method: "POST",
      body: JSON.stringify({ mode: "fail-n", n: 1 }),
    });
    expect(set.status).toBe(200);
    const r = await make("redis", {
      DESTINATIONS: JSON.stringify([{ name: "ops", url: `${receiver}/r/${id}`, filter: { types: ["ops.*"] } }]),
    });
    const m = scripted(
      calls(["deliver", { destination: "ops", fields: { text: "Issue 3 needs a human" } }]),
      says("Sent."),
    );
    r.triggers.register(
      agent({
        name: "notifier",
        filter: f.type("work.start"),
        model: m,
        instructions: "Tell ops.",
        tools: { deliver: agentTools.deliver({ destinations: ["ops"], type: "ops.note" }) },
      }),
    );
    const e = event({ type: "work.start", meta: { trace_id: "b".repeat(32) } });
    await r.bundle.store.publish([e]);
    expect(await r.run()).toMatchObject({ retried: 1 });
    r.clock.advance(100);
    expect(await r.run()).toMatchObject({ completed: 1 });
    expect(m.doGenerateCalls).toHaveLength(2);
    const log = (await (await fetch(`${receiver}/__log/${id}`)).json()) as Array<{ body: string; answered: number }>;
    expect(log.map((x) => x.answered)).toEqual([500, 200]);
    const [first, second] = log.map((x) => JSON.parse(x.body) as EventEnvelope);
    expect(second!.id).toBe(first!.id);
    expect(second).toMatchObject({
      type: "ops.note",
      text: "Issue 3 needs a human",
      meta: { causation_id: e.id, correlation_id: e.id, trace_id: e.meta.trace_id },
    });
    const [row] = await r.rows<{ errors: Array<{ error: string }> }>(sql`select errors from events where id = ${e.id}`);
    expect(row!.errors.map((x) => x.error)).toEqual(["notifier: deliver to ops: HTTP 500"]);
  });

  it("configuration: AGENT_MODEL names its provider's missing key or binding", async () => {
    const base = (await make("redis")).env;
    const problems = (extra: Record<string, unknown>) => {
      try {
        loadConfig({ ...base, ...extra });
        return [];
      } catch (e) {
        return (e as { problems: string[] }).problems;
      }
    };
    expect(problems({ AGENT_MODEL: "openai:gpt-4.1-mini" })).toEqual([
      "OPENAI_API_KEY: required by model openai:gpt-4.1-mini: an OpenAI API key (secret)",
    ]);
    expect(problems({ AGENT_MODEL: "anthropic:claude-3-5-haiku-latest" })).toEqual([
      "ANTHROPIC_API_KEY: required by model anthropic:claude-3-5-haiku-latest: an Anthropic API key (secret)",
    ]);
    expect(problems({ AGENT_MODEL: "workers-ai:@cf/meta/llama-3.1-8b-instruct", AI: undefined })).toEqual([
      'AI: required by model workers-ai:@cf/meta/llama-3.1-8b-instruct: the Workers AI binding (wrangler.toml: [ai] binding = "AI")',
    ]);
    expect(problems({ AGENT_MODEL: "gpt-4.1-mini" })).toEqual([
      "AGENT_MODEL: must be <provider>:<model> with provider workers-ai, openai, anthropic",
    ]);
    expect(problems({ AGENT_MODEL: "openai:gpt-4.1-mini", OPENAI_API_KEY: "sk-test" })).toEqual([]);
  });

  it("an agent without a model fails its attempt naming AGENT_MODEL", async () => {
    const r = await make("redis", { EVENT_MAX_ATTEMPTS: "1" });
    r.triggers.register(agent({ name: "modelless", filter: f.type("work.start"), instructions: "Say one sentence." }));
    const e = event({ type: "work.start" });
    await r.bundle.store.publish([e]);
    expect(await r.run()).toMatchObject({ dlq: 1 });
    const [row] = await r.rows<{ last_error: string }>(sql`select last_error from events where id = ${e.id}`);
    expect(row!.last_error).toMatch(/^modelless: no model: set AGENT_MODEL/);
  });
});
