/**
 * `.dev.vars` is wrangler's file of local variables (KEY=value lines, # comments).
 * `ensureDevVars()` creates it from `.dev.vars.example` when it is absent and adds any
 * variable the example has gained since, never touching a value the user has set.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
export const DEV_VARS = path.join(ROOT, ".dev.vars");
export const DEV_VARS_EXAMPLE = path.join(ROOT, ".dev.vars.example");

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

/** Returns the names it added (all of them when it created the file). */
export function ensureDevVars(file = DEV_VARS, example = DEV_VARS_EXAMPLE): string[] {
  const exampleText = fs.readFileSync(example, "utf8");
  if (!fs.existsSync(file)) {
    fs.writeFileSync(file, exampleText);
    return Object.keys(parseVars(exampleText));
  }
  const have = parseVars(fs.readFileSync(file, "utf8"));
  const missing = exampleText.split(/\r?\n/).filter((l) => {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=/.exec(l);
    return m && !(m[1] in have);
  });
  if (missing.length) {
    const cur = fs.readFileSync(file, "utf8");
    fs.writeFileSync(
      file,
      `${cur}${cur.endsWith("\n") ? "" : "\n"}# added from .dev.vars.example\n${missing.join("\n")}\n`,
    );
  }
  return missing.map((l) => l.split("=")[0].trim());
}
