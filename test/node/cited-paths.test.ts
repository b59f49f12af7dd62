/**
 * scripts/check-cited-paths.ts on a small tree: every cited path that does not exist is
 * reported with its file and line, and nothing else (paths in strings, URLs and package names
 * are not citations; existing files, folders, module paths and anchors pass).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { anchors, checkCitedPaths, slug } from "../../scripts/check-cited-paths";

const files: Record<string, string> = {
  "src/b.ts": "export const b = 1;\n",
  "src/index.ts": "export {};\n",
  "test/support/env.ts": "export {};\n",
  "drizzle/0008_brave_hero.sql": "select 1;\n",
  "src/a.ts": [
    "/**",
    " * Reads src/b.ts and ./b (a module path), helpers in test/support/, migrations like",
    " * drizzle/0008_...sql, and src/missing.ts.",
    " */",
    'const url = "src/in-a-string.ts"; // see .ci/run, https://example.com/src/nope.ts',
    "const re = /^https?:\\/\\//; // and @scope/src/pkg.ts",
    "/* block: ./gone.ts, src/{b,index}.ts */",
    "export { re, url };",
    "",
  ].join("\n"),
  "src/s.lua": "-- KEYS[1]: see src/gone.lua\nreturn 1\n",
  "README.md": [
    "# Readme title",
    "",
    "Start with `src/b.ts`, then `src/nope/`.",
    "See [the guide](docs/guide.md#setting-up-reflex-fast) and [again](docs/guide.md#nope),",
    "[a missing page](docs/missing.md), [the title](#readme-title), [web](https://example.com/src/x).",
    "",
    "```",
    "src/{b,c}.ts",
    "```",
    "",
  ].join("\n"),
  "docs/guide.md": "# Guide\n\n## Setting up `reflex` (fast)\n\nBack to [the readme](../README.md#readme-title).\n",
};

let root: string;

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "cited-paths-"));
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
});

afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe("check-cited-paths", () => {
  it("reports each cited path that does not exist, and only those", () => {
    const found = checkCitedPaths(root).map((p) => `${p.file}:${p.line} ${p.cited} ${p.problem}`);
    expect(found.sort()).toEqual(
      [
        "src/a.ts:3 src/missing.ts does not exist",
        "src/a.ts:5 .ci/run does not exist",
        "src/a.ts:7 ./gone.ts does not exist",
        "src/s.lua:1 src/gone.lua does not exist",
        "README.md:3 src/nope/ does not exist",
        "README.md:4 docs/guide.md#nope has no heading for #nope",
        "README.md:5 docs/missing.md does not exist",
        "README.md:8 src/{b,c}.ts does not exist",
      ].sort(),
    );
  });

  it("passes once they exist", () => {
    for (const rel of [".ci/run", "src/missing.ts", "src/gone.ts", "src/gone.lua", "src/nope/x", "src/c.ts"]) {
      fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      fs.writeFileSync(path.join(root, rel), "");
    }
    fs.writeFileSync(path.join(root, "docs/missing.md"), "");
    fs.appendFileSync(path.join(root, "docs/guide.md"), "\n## Nope\n");
    expect(checkCitedPaths(root)).toEqual([]);
  });

  it("names anchors as GitHub does", () => {
    expect(slug("Operations: DLQ, replay, the `reflex` CLI")).toBe("operations-dlq-replay-the-reflex-cli");
    expect(slug("Local stand-ins (`local/`)")).toBe("local-stand-ins-local");
    expect([...anchors("# A\n## A\n```\n# not a heading\n```\n## B_c!\n")]).toEqual(["a", "a-1", "b_c"]);
  });
});
