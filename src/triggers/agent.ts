/**
 * Agent triggers: a trigger whose handler runs a tool-calling loop with the AI SDK.
 *
 *   defaultTriggers.register(agent({
 *     name: "triage", filter: f.type("ticket.opened"), instructions: "Classify ...",
 *     tools: { publish: agentTools.publish({ types: ["ticket.triaged"] }) },
 *     maxSteps: 4, budget: { tokens: 20_000, timeMs: 30_000 },
 *   }));
 *
 * The loop is driven here, one model call per turn, each inside a durable step
 * (ctx.step, ./steps.ts), and each tool call in a step of its own. The SDK's own multi-step
 * loop (stopWhen) cannot start from turns recorded by an earlier attempt; one generateText
 * call per turn, with the conversation rebuilt from the recorded turns, can. So a crash
 * after three turns resumes at the fourth: the first three model calls and their tool calls
 * are read back, not made again. Tools are passed to the model without their `execute`, so
 * the SDK only parses and validates the calls (invalid ones go back to the model as tool
 * errors, as the SDK does) and the tools run here, as steps.
 *
 * Limits, per trigger: `maxSteps` model turns per event, `budget.tokens` tokens per event
 * (input + output, recorded turns included), `budget.timeMs` per attempt. Over any of them
 * the attempt fails with an error saying which; it is retried like any failure (recorded
 * turns are not paid again) and ends in the DLQ. Each call's `maxOutputTokens` is what is
 * left of the token budget, less the input it will at least send (the previous turn's
 * tokens): the budget caps the call rather than being checked after it.
 *
 * What the model may do, whatever it asks for:
 *  - `maxToolCalls.perTurn` and `.perEvent` tool calls run; calls past either are not run and
 *    go back to the model as tool errors;
 *  - ctx.publish (from any tool) only the types in `publishes`; others go back as tool errors;
 *  - ctx.history only the events of the agent's scope value (`scope`: an event without a
 *    value there sees none), each cut to a few KiB, so no event in the scope can make a
 *    recorded step of a later one too large;
 *  - ctx.deliver only through a destination's own path (filter, breaker, fence, records),
 *    bounded by the time left.
 *
 * A tool that throws fails the attempt (its step is retried); a tool that wants the model to
 * know something went wrong returns it instead.
 */
import { generateText, type ModelMessage, stepCountIs, type Tool, type ToolResultPart } from "ai";
import type { EventEnvelope } from "../events/envelope";
import { fieldAt } from "./fields";
import type { Filter } from "./filters";
import { type AgentModel, resolveModel } from "./models";
import type { HandlerContext, HistoryQuery, TriggerSpec } from "./registry";
import type { StepUsage } from "./steps";

export interface AgentBudget {
  /** Tokens (input + output) per event, over every turn. Default 100,000. */
  tokens?: number;
  /** Wall time of the agent in one attempt, ms. Default 30,000 (keep it under VISIBILITY_TIMEOUT_MS). */
  timeMs?: number;
}

export interface AgentSpec {
  name: string;
  filter: Filter;
  /** An AI SDK model object, or "<provider>:<model>"; default AGENT_MODEL. */
  model?: AgentModel;
  /** The system prompt. */
  instructions: string;
  /** AI SDK tools (`tool({ description, inputSchema: z.object(...), execute })`); built-ins in ./agent-tools.ts. */
  tools?: Record<string, Tool>;
  /** Most model calls (turns) per event. Default 8. */
  maxSteps?: number;
  /** Tool calls run per model turn (default 5) and per event (default 20); the excess is refused. */
  maxToolCalls?: { perTurn?: number; perEvent?: number };
  /**
   * The event types its tools may publish (default none): other types are refused to the tool.
   * Declared types are the agent's trigger's (TriggerSpec.publishes): refused from API keys.
   */
  publishes?: string[];
  budget?: AgentBudget;
  /** Put the last `history` events of this scope into the first prompt (0, the default: none; at most 50). */
  context?: { history?: number };
  /**
   * A dotted path into the event whose value is the scope ("body.repository.full_name"):
   * one event at a time per value, and the history the agent sees is that value's. Default:
   * the event's source.
   */
  scope?: string;
  priority?: number;
}

/** What tools get as `options.experimental_context`: the handler's context and the agent. */
export interface AgentToolContext extends HandlerContext {
  agent: {
    name: string;
    /** The scope path, when the agent has one and this event has a value there. */
    scopeField?: string;
  };
}

/** The agent's context, for a tool's `execute(input, options)`. */
export function agentContext(options: { experimental_context?: unknown }): AgentToolContext {
  const c = options.experimental_context as AgentToolContext | undefined;
  if (!c?.agent) throw new Error("this tool runs inside an agent trigger only");
  return c;
}

/**
 * Thrown by the agent's ctx.publish for a type the agent does not declare: the tool call's
 * result is this message, for the model to read, and nothing is published.
 */
export class AgentRefusal extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AgentRefusal";
  }
}

/** An agent past one of its limits: the attempt fails with this (and ends in the DLQ). */
export class AgentBudgetError extends Error {
  constructor(message: string) {
    super(`over budget: ${message}`);
    this.name = "AgentBudgetError";
  }
}

const DEFAULTS = { maxSteps: 8, tokens: 100_000, timeMs: 30_000, toolCallsPerTurn: 5, toolCallsPerEvent: 20 };
const HISTORY_MAX = 50;
/** JSON characters of one event in a prompt. */
const EVENT_CHARS = 8000;
const HISTORY_EVENT_CHARS = 1000;
/** JSON characters of one event a history search returns (ctx.history inside an agent). */
export const HISTORY_TOOL_EVENT_CHARS = 2000;

/** One model call, as its step records it. */
interface Turn {
  /** The SDK's response messages: the assistant's, and tool errors for calls it refused. */
  messages: ModelMessage[];
  /** Valid tool calls, to run. */
  calls: Array<{ toolCallId: string; toolName: string; input: unknown }>;
  /** Tool calls made, invalid ones included: none means the agent is done. */
  toolCalls: number;
  text: string;
  finishReason: string;
  usage: StepUsage;
}

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}...(truncated)` : s);

/** An event's JSON for the model, envelope keys first (they survive the cut), at most `n` characters. */
export function eventJson(e: EventEnvelope, n: number): string {
  const { id, type, source, timestamp, meta, ...fields } = e;
  return clip(JSON.stringify({ id, type, source, timestamp, meta, ...fields }), n);
}

/** `history`: the earlier events as the prompt shows them (each JSON, clipped). */
function firstPrompt(e: EventEnvelope, history: string[]): string {
  const parts = [`The event (JSON):\n${eventJson(e, EVENT_CHARS)}`];
  if (history.length)
    parts.push(`Earlier events of the same scope, newest first (JSON, one per line):\n${history.join("\n")}`);
  return parts.join("\n\n");
}

const positive = (n: number) => Number.isInteger(n) && n >= 1;

export function agent(spec: AgentSpec): TriggerSpec {
  const maxSteps = spec.maxSteps ?? DEFAULTS.maxSteps;
  const tokens = spec.budget?.tokens ?? DEFAULTS.tokens;
  const timeMs = spec.budget?.timeMs ?? DEFAULTS.timeMs;
  const history = spec.context?.history ?? 0;
  const perTurn = spec.maxToolCalls?.perTurn ?? DEFAULTS.toolCallsPerTurn;
  const perEvent = spec.maxToolCalls?.perEvent ?? DEFAULTS.toolCallsPerEvent;
  const publishes = new Set(spec.publishes ?? []);
  if (!positive(maxSteps)) throw new Error(`agent "${spec.name}": maxSteps must be 1 or more`);
  if (!(positive(perTurn) && positive(perEvent)))
    throw new Error(`agent "${spec.name}": maxToolCalls.perTurn and .perEvent must be 1 or more`);
  if (!(tokens > 0 && timeMs > 0))
    throw new Error(`agent "${spec.name}": budget.tokens and budget.timeMs must be positive`);
  if (!(Number.isInteger(history) && history >= 0 && history <= HISTORY_MAX))
    throw new Error(`agent "${spec.name}": context.history must be 0 to ${HISTORY_MAX}`);
  const tools = spec.tools ?? {};
  // What the model is shown: the tools without `execute`, which the loop below runs as steps.
  const declared = Object.fromEntries(Object.entries(tools).map(([k, t]) => [k, { ...t, execute: undefined }]));
  const path = spec.scope;

  return {
    name: spec.name,
    filter: spec.filter,
    priority: spec.priority ?? 0,
    ...(spec.publishes ? { publishes: spec.publishes } : {}),
    ...(path ? { scope: (e: EventEnvelope) => fieldAt(e, path) ?? e.source } : {}),
    handler: async (ctx) => {
      const started = Date.now();
      const left = () => timeMs - (Date.now() - started);
      const outOfTime = () => new AgentBudgetError(`the time limit of ${timeMs} ms per attempt was reached`);
      const configured = spec.model ?? ctx.config.AGENT_MODEL;
      if (configured === undefined)
        throw new Error(
          "no model: set AGENT_MODEL (e.g. workers-ai:@cf/meta/llama-3.1-8b-instruct) or give the agent a model",
        );
      const { model, label } = await resolveModel(configured, ctx.env);
      const scopeField = path && fieldAt(ctx.event, path) !== undefined ? path : undefined;
      // The scope's value only: with a scope path and no value there, no history at all.
      const scoped = async (q: HistoryQuery): Promise<EventEnvelope[]> =>
        path && !scopeField ? [] : ctx.history({ ...q, ...(scopeField ? { field: scopeField } : {}) });
      const toolCtx: AgentToolContext = {
        ...ctx,
        agent: { name: spec.name, ...(scopeField ? { scopeField } : {}) },
        publish: (input) => {
          if (!publishes.has(input.type))
            throw new AgentRefusal(
              `not published: agent ${spec.name} may publish ${
                publishes.size ? [...publishes].join(", ") : "no event types"
              }, not ${JSON.stringify(input.type)}`,
            );
          return ctx.publish(input);
        },
        history: scoped,
        deliver: (name, event, o) => ctx.deliver(name, event, { timeLeftMs: Math.max(1, left()), ...o }),
      };

      const earlier = history
        ? await ctx.step("context", async () =>
            (await scoped({ limit: history })).map((h) => eventJson(h, HISTORY_EVENT_CHARS)),
          )
        : [];
      const messages: ModelMessage[] = [{ role: "user", content: firstPrompt(ctx.event, earlier) }];
      let used = 0;
      // Tokens of the previous turn: the next call sends at least that much again as input.
      let lastTurn = 0;
      let ran = 0;
      for (let turn = 1; ; turn++) {
        if (turn > maxSteps)
          throw new AgentBudgetError(`${maxSteps} model turns used (maxSteps) and the model still calls tools`);
        if (left() <= 0) throw outOfTime();
        const room = tokens - used - lastTurn;
        if (room < 1)
          throw new AgentBudgetError(
            `${used} of ${tokens} tokens per event used; the next model call would send about ${lastTurn} as input`,
          );
        const t = await ctx.step(
          `turn ${turn} model`,
          async (): Promise<Turn> => {
            const signal = AbortSignal.timeout(Math.max(1, left()));
            try {
              const r = await generateText({
                model,
                system: spec.instructions,
                messages,
                tools: declared,
                stopWhen: stepCountIs(1),
                maxOutputTokens: room,
                abortSignal: signal,
              });
              return {
                messages: r.response.messages,
                calls: r.toolCalls
                  .filter((c) => !c.invalid)
                  .map((c) => ({ toolCallId: c.toolCallId, toolName: c.toolName, input: c.input })),
                toolCalls: r.toolCalls.length,
                text: r.text,
                finishReason: r.finishReason,
                usage: {
                  model: label,
                  input_tokens: r.usage.inputTokens ?? 0,
                  output_tokens: r.usage.outputTokens ?? 0,
                },
              };
            } catch (e) {
              throw signal.aborted ? outOfTime() : e;
            }
          },
          { usage: (x) => x.usage },
        );
        lastTurn = t.usage.input_tokens + t.usage.output_tokens;
        used += lastTurn;
        if (used > tokens) throw new AgentBudgetError(`${used} tokens used, over the limit of ${tokens} per event`);
        messages.push(...t.messages);
        if (t.toolCalls === 0) {
          ctx.log.debug("agent done", { turns: turn, tokens: used, text: clip(t.text, 500) });
          return;
        }
        const results: ToolResultPart[] = [];
        for (const [k, call] of t.calls.entries()) {
          if (left() <= 0) throw outOfTime();
          // Decided from recorded turns alone, so a retry refuses the same calls.
          const over =
            k >= perTurn
              ? `${perTurn} tool calls per turn (maxToolCalls.perTurn)`
              : ran >= perEvent
                ? `${perEvent} tool calls per event (maxToolCalls.perEvent)`
                : null;
          if (!over) ran++;
          const value = over
            ? { error: `not run: the limit of ${over} is reached` }
            : await ctx.step(`turn ${turn} tool ${k + 1} ${call.toolName}`, async () => {
                const execute = tools[call.toolName]?.execute;
                if (!execute) return { error: `tool ${call.toolName} cannot be run here` };
                try {
                  return await execute(call.input, {
                    toolCallId: call.toolCallId,
                    messages,
                    abortSignal: AbortSignal.timeout(Math.max(1, left())),
                    experimental_context: toolCtx,
                  });
                } catch (e) {
                  if (e instanceof AgentRefusal) return { error: e.message };
                  throw e;
                }
              });
          results.push({
            type: "tool-result",
            toolCallId: call.toolCallId,
            toolName: call.toolName,
            output: { type: "json", value: (value ?? null) as never },
          });
        }
        // The SDK's own tool message (errors of refused calls) and these results form one message.
        const last = messages[messages.length - 1];
        if (last?.role === "tool") last.content.push(...results);
        else if (results.length) messages.push({ role: "tool", content: results });
      }
    },
  };
}
