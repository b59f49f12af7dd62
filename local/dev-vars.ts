/**
 * `.dev.vars` is wrangler's file of local variables (KEY=value lines, # comments).
 * `ensureDevVars()` creates it from `.dev.vars.example` when it is absent and adds any
 * variable the example has gained since, never touching a value the user has set.
 *
 * `<random>` in the example stands for the checkout's own token: one random value, written
 * wherever the placeholder appears (the stand-ins' token, in UPSTASH_REDIS_REST_TOKEN and
 * NEON_WS_PROXY), so no two checkouts share one and none is the example's.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { newToken } from "./guard";

export const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
export const DEV_VARS = path.join(ROOT, ".dev.vars");
export const DEV_VARS_EXAMPLE = path.join(ROOT, ".dev.vars.example");

const PLACEHOLDER = "<random>";

/**
 * Values that earlier examples wrote with a fixed token; they are the example's, not the
 * user's, and the stand-ins now refuse them, so they are replaced like missing variables.
 */
const FIXED_EXAMPLE_VALUES: Record<string, string> = {
  UPSTASH_REDIS_REST_TOKEN: "local-dev-token-change-me",
  NEON_WS_PROXY: "127.0.0.1:8078",
};

export function parseVars(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)\s*$/.exec(line);
    if (!m) continue;
    let v = m[2];
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1);
    out[m[1]] = v;
  }
  return out;
}

export function readDevVars(file = DEV_VARS): Record<string, string> {
  return fs.existsSync(file) ? parseVars(fs.readFileSync(file, "utf8")) : {};
}

const nameOf = (line: string) => /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=/.exec(line)?.[1];

/** Returns the names it added or replaced (all of them when it created the file). */
export function ensureDevVars(file = DEV_VARS, example = DEV_VARS_EXAMPLE): string[] {
  const token = newToken();
  const exampleText = fs.readFileSync(example, "utf8");
  const fill = (line: string) => line.split(PLACEHOLDER).join(token);
  if (!fs.existsSync(file)) {
    fs.writeFileSync(file, exampleText.split("\n").map(fill).join("\n"), { mode: 0o600 });
    return Object.keys(parseVars(exampleText));
  }
  const current = fs.readFileSync(file, "utf8");
  const have = parseVars(current);
  const exampleLines = new Map(
    exampleText.split(/\r?\n/).flatMap((l) => (nameOf(l) ? [[nameOf(l)!, fill(l)] as const] : [])),
  );
  const stale = Object.keys(FIXED_EXAMPLE_VALUES).filter(
    (k) => have[k] === FIXED_EXAMPLE_VALUES[k] && exampleLines.has(k),
  );
  let text = current
    .split("\n")
    .map((l) => {
      const k = nameOf(l);
      return k && stale.includes(k) ? exampleLines.get(k)! : l;
    })
    .join("\n");
  const missing = [...exampleLines.keys()].filter((k) => !(k in have));
  if (missing.length)
    text = `${text}${text.endsWith("\n") ? "" : "\n"}# added from .dev.vars.example\n${missing.map((k) => exampleLines.get(k)).join("\n")}\n`;
  if (text !== current) fs.writeFileSync(file, text);
  return [...stale, ...missing];
}
