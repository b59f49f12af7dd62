/**
 * Every configuration variable is documented: docs/configuration.md is what
 * scripts/config-reference.ts generates from the schema, and that names each variable with
 * a meaning (a key without JSDoc or without a group is a problem, not a blank row).
 */
import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { cell, OUTPUT, readVariables, render } from "../../scripts/config-reference";
import { schema } from "../../src/config/index";

describe("configuration reference", () => {
  const variables = readVariables();
  const { text, problems } = render(variables);

  it("reads every key of the schema, each with a meaning", () => {
    expect(variables.map((v) => v.name)).toEqual(Object.keys(schema.shape));
    expect(variables.length).toBeGreaterThan(30);
    expect(problems).toEqual([]);
  });

  it("docs/configuration.md is current (npm run docs:config) and has a row per variable", () => {
    expect(fs.readFileSync(OUTPUT, "utf8")).toBe(text);
    const missing = variables.filter((v) => !text.includes(`| \`${v.name}\` |`)).map((v) => v.name);
    expect(missing).toEqual([]);
  });

  it("the README points at it", () => {
    const readme = fs.readFileSync("README.md", "utf8");
    expect(readme.slice(readme.indexOf("## Configuration"))).toContain("(docs/configuration.md)");
  });

  it("a key without JSDoc is reported, and cells stay inside their column", () => {
    const bare = variables.map((v) => (v.name === "LOG_LEVEL" ? { ...v, meaning: "" } : v));
    expect(render(bare).problems).toEqual([expect.stringContaining("LOG_LEVEL: no JSDoc comment")]);
    expect(cell('"a"|"b" <x> `c|d` see ./api-keys.ts and LOG_LEVEL', new Set(["LOG_LEVEL"]))).toBe(
      '"a"\\|"b" \\<x> `c|d` see [`src/config/api-keys.ts`](../src/config/api-keys.ts) and `LOG_LEVEL`',
    );
  });
});
