/**
 * From a model spec ("workers-ai:@cf/meta/llama-3.1-8b-instruct", "openai:gpt-4.1-mini",
 * "anthropic:...", src/config/model-spec.ts) to an AI SDK language model. Providers are imported
 * on first use: a deployment pays the start-up cost only of the one it calls.
 */
import type { LanguageModel } from "ai";
import type { Env } from "../config";
import { missingForModel, parseModelSpec } from "../config/model-spec";
import { ConfigError } from "../errors";

/** An AI SDK model object (never a bare id: the SDK would send that to its hosted gateway). */
export type ModelObject = Exclude<LanguageModel, string>;

/** A model object (tests pass the SDK's mock), or a spec string resolved here. */
export type AgentModel = ModelObject | string;

export interface ResolvedModel {
  model: ModelObject;
  /** How step records and metrics name it: the spec, or provider:modelId of an object. */
  label: string;
}

/** Throws ConfigError naming what is missing (the variable, or the binding). */
export async function resolveModel(spec: AgentModel, env: Env): Promise<ResolvedModel> {
  if (typeof spec !== "string") return { model: spec, label: `${spec.provider}:${spec.modelId}` };
  const s = parseModelSpec(spec);
  if ("problem" in s) throw new ConfigError([`model "${spec}": ${s.problem}`]);
  const missing = missingForModel(s, env);
  if (missing) throw new ConfigError([missing]);
  switch (s.provider) {
    case "workers-ai": {
      const { createWorkersAI } = await import("workers-ai-provider");
      return { model: createWorkersAI({ binding: env.AI as Ai })(s.model as never), label: s.label };
    }
    case "openai": {
      const { createOpenAI } = await import("@ai-sdk/openai");
      return { model: createOpenAI({ apiKey: String(env.OPENAI_API_KEY).trim() })(s.model), label: s.label };
    }
    case "anthropic": {
      const { createAnthropic } = await import("@ai-sdk/anthropic");
      return { model: createAnthropic({ apiKey: String(env.ANTHROPIC_API_KEY).trim() })(s.model), label: s.label };
    }
  }
}
