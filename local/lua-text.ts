/**
 * Lets Node import src/backends/redis/scripts/*.lua as text, as wrangler's Text module rule
 * does for the bundle and the vitest pool: `import text from "./<name>.lua"` gives the file's
 * contents as the default export. Node has no such loader of its own, hence this module hook.
 *
 * Importing this module registers the hook, for modules loaded after that only: Node loads a
 * module's whole static import graph before it runs any of it. So a Node entry that reaches
 * Redis code (the benches) imports this first and the src modules dynamically after it.
 */
import { readFile } from "node:fs/promises";
import { register } from "node:module";
import { isMainThread } from "node:worker_threads";

type NextLoad = (url: string, context: unknown) => Promise<unknown>;

/** Node's load hook: a .lua file becomes a module whose default export is its text. */
export async function load(url: string, context: unknown, nextLoad: NextLoad): Promise<unknown> {
  if (!url.startsWith("file:") || !new URL(url).pathname.endsWith(".lua")) return nextLoad(url, context);
  const text = await readFile(new URL(url), "utf8");
  return { format: "module", shortCircuit: true, source: `export default ${JSON.stringify(text)};` };
}

// Hooks run on a thread of their own, which loads this module again: register from the main one.
if (isMainThread) register(import.meta.url);
