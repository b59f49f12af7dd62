#!/usr/bin/env node
// `npx reflex ...`: loads the TypeScript CLI (cli/reflex.ts) through tsx.
import { register } from "tsx/esm/api";

register();
const { run } = await import("../cli/reflex.ts");
process.exitCode = await run(process.argv.slice(2));
