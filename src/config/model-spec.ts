/**
 * Which model an agent calls, as configuration says it: "<provider>:<model>", e.g.
 * "workers-ai:@cf/meta/llama-3.1-8b-instruct", "openai:gpt-4.1-mini",
 * "anthropic:claude-3-5-haiku-latest". Each provider needs one thing the environment must
 * hold: Workers AI its binding (`AI`, no key on Cloudflare), the others their API key.
 */
export const MODEL_PROVIDERS = {
  "workers-ai": { needs: "AI", what: 'the Workers AI binding (wrangler.toml: [ai] binding = "AI")' },
  openai: { needs: "OPENAI_API_KEY", what: "an OpenAI API key (secret)" },
  anthropic: { needs: "ANTHROPIC_API_KEY", what: "an Anthropic API key (secret)" },
} as const;

export type ModelProvider = keyof typeof MODEL_PROVIDERS;

export interface ModelSpec {
  provider: ModelProvider;
  /** The provider's model id. */
  model: string;
  /** The spec as written: the model's label in metrics and step records. */
  label: string;
}

/** The parsed spec, or a problem saying what is wrong with it. */
export function parseModelSpec(s: string): ModelSpec | { problem: string } {
  const i = s.indexOf(":");
  const provider = s.slice(0, Math.max(0, i));
  const model = s.slice(i + 1).trim();
  if (i < 0 || !(provider in MODEL_PROVIDERS) || model === "")
    return { problem: `must be <provider>:<model> with provider ${Object.keys(MODEL_PROVIDERS).join(", ")}` };
  return { provider: provider as ModelProvider, model, label: s };
}

/** What `spec` needs and `env` lacks, as a configuration problem naming it; null when nothing. */
export function missingForModel(spec: ModelSpec, env: Record<string, unknown>): string | null {
  const p = MODEL_PROVIDERS[spec.provider];
  const v = env[p.needs];
  const present = typeof v === "string" ? v.trim() !== "" : v !== undefined && v !== null;
  return present ? null : `${p.needs}: required by model ${spec.label}: ${p.what}`;
}
