/**
 * A scripted language model for agent tests: the AI SDK's own MockLanguageModelV3 answering
 * tool calls and text in a given order. Redis and Postgres stay real; only the model is scripted.
 */
import { MockLanguageModelV3 } from "ai/test";

export type Answer = Awaited<ReturnType<MockLanguageModelV3["doGenerate"]>>;

export const usage = (input: number, output: number) => ({
  inputTokens: { total: input, noCache: input, cacheRead: 0, cacheWrite: 0 },
  outputTokens: { total: output, text: output, reasoning: 0 },
});

let callIds = 0;

/** A turn that calls `tools`, each [name, input]. */
export const calls = (...tools: Array<[name: string, input: unknown]>): Answer => ({
  content: tools.map(([toolName, input]) => ({
    type: "tool-call" as const,
    toolCallId: `call-${++callIds}`,
    toolName,
    input: JSON.stringify(input),
  })),
  finishReason: { unified: "tool-calls", raw: "tool_calls" },
  usage: usage(100, 20),
  warnings: [],
});

/** A turn that answers `text` and stops. */
export const says = (text: string): Answer => ({
  content: [{ type: "text", text }],
  finishReason: { unified: "stop", raw: "stop" },
  usage: usage(100, 20),
  warnings: [],
});

/** A model that gives `answers` in order (the last one again when they run out). */
export function scripted(...answers: Answer[]): MockLanguageModelV3 {
  let n = 0;
  return new MockLanguageModelV3({ doGenerate: async () => answers[Math.min(n++, answers.length - 1)]! });
}

/** Every message the model was sent in call `i` (0-based), as JSON. */
export const promptOf = (m: MockLanguageModelV3, i: number) => JSON.stringify(m.doGenerateCalls[i]!.prompt);

/** The tool results it was sent in call `i`, as JSON. */
export const toolResultsOf = (m: MockLanguageModelV3, i: number) =>
  JSON.stringify(m.doGenerateCalls[i]!.prompt.filter((x) => x.role === "tool"));
