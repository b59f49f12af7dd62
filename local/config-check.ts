/**
 * The worker's configuration checked on this machine, before anything runs: by `npm run dev`
 * and by `reflex config check` (a deploy pipeline runs it before `wrangler deploy`).
 *
 * Variables are strings; bindings are not, and belong to wrangler.toml: its `[ai]` section
 * stands for the AI binding an AGENT_MODEL of workers-ai needs.
 */
import fs from "node:fs";
import path from "node:path";
import { checkConfig } from "../src/health/config-check";
import { ROOT } from "./dev-vars";

/** Every problem of `vars`, fatal ones first; empty when the worker would start with them. */
export function configProblems(
  vars: Record<string, string | undefined>,
  wranglerToml = path.join(ROOT, "wrangler.toml"),
): string[] {
  const env: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(vars)) if (v !== undefined) env[k] = v;
  const toml = fs.existsSync(wranglerToml) ? fs.readFileSync(wranglerToml, "utf8") : "";
  if (/^\s*\[ai\]\s*$/m.test(toml)) env.AI ??= {};
  const check = checkConfig(env);
  return [...check.fatal, ...check.sources];
}
