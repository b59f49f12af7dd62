/**
 * Every problem of a configuration at once, sorted by what it breaks:
 *
 *  - fatal: loadConfig refuses the whole configuration (DATABASE_URL missing, a bad
 *    number, weak tokens, DESTINATIONS, ...); no route that needs it can answer;
 *  - sources: one webhook source's settings (or WEBHOOK_SOURCES as a whole); only that
 *    source's route (or the webhook routes) answers 503, everything else keeps working.
 *
 * `npm run dev` and `reflex config check` refuse either kind before anything runs; /ready
 * answers 503 naming them. Problems name the setting and the rule, never a value.
 */
import { type Config, type Env, loadConfig } from "../config";
import { ConfigError } from "../errors";
import { parseWebhookSources, sourceProblems, sourceTable } from "../ingest/sources";

export interface ConfigCheck {
  /** Parsed, when no fatal problem stops it. */
  config?: Config;
  fatal: string[];
  sources: string[];
}

export function checkConfig(env: Env): ConfigCheck {
  let config: Config | undefined;
  let fatal: string[] = [];
  try {
    config = loadConfig(env);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    fatal = e.problems;
  }
  if (config) return { config, fatal, sources: sourceProblems(sourceTable(config)) };
  // The sources are still checked, so one run lists everything to fix. A DEDUPE_WINDOW_S that
  // did not parse is among the fatal problems; the tolerance check waits for it.
  const raw = typeof env.WEBHOOK_SOURCES === "string" && env.WEBHOOK_SOURCES.trim() ? env.WEBHOOK_SOURCES : "{}";
  const window = Number(env.DEDUPE_WINDOW_S ?? 259_200);
  const table = parseWebhookSources(raw, Number.isInteger(window) && window >= 1 ? window : Infinity);
  return { fatal, sources: sourceProblems(table) };
}

/** The setting a problem names ("WEBHOOK_SOURCES.gh.secret"), without its rule. */
export function settingOf(problem: string): string {
  const i = problem.indexOf(": ");
  return i < 0 ? problem : problem.slice(0, i);
}
