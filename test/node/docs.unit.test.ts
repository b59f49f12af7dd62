/** Every configuration variable is documented in the README's table. */
import fs from "node:fs";
import { describe, expect, it } from "vitest";

describe("documentation", () => {
  it("the README's configuration table names every variable src/config.ts reads", () => {
    const config = fs.readFileSync("src/config/index.ts", "utf8");
    const schema = config.slice(
      config.indexOf("const schema = z.object({"),
      config.indexOf("});", config.indexOf("const schema = z.object({")),
    );
    const vars = [...schema.matchAll(/^ {2}([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1]);
    expect(vars.length).toBeGreaterThan(30);
    const readme = fs.readFileSync("README.md", "utf8");
    const table = readme.slice(readme.indexOf("## Configuration"), readme.indexOf("## Layout"));
    const missing = vars.filter((v) => !table.includes(`| \`${v}\` |`));
    expect(missing).toEqual([]);
  });
});
