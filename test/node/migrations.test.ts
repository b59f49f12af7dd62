/**
 * .ci/check-migrations (run by CI): drizzle-kit finds no difference between src/db/schema.ts
 * and the migrations in drizzle/, and a schema change without its migration is caught.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { describe, expect, it } from "vitest";

const check = (...args: string[]) => spawnSync(".ci/check-migrations", args, { encoding: "utf8", timeout: 150_000 });

describe(".ci/check-migrations", () => {
  it("passes: the migrations match the schema", () => {
    const r = check();
    expect(r.status, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toContain("matches ./src/db/schema.ts");
  });

  it("fails on a schema with a column no migration adds, printing the missing migration", () => {
    fs.mkdirSync(".wrangler", { recursive: true });
    const drifted = `.wrangler/schema-drift-${process.pid}.ts`;
    const schema = fs.readFileSync("src/db/schema.ts", "utf8");
    expect(schema).toContain('    lane: text("lane"),');
    fs.writeFileSync(
      drifted,
      schema.replace('    lane: text("lane"),', '    lane: text("lane"),\n    drift: text("drift"),'),
    );
    try {
      const r = check(drifted);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`${drifted} differs from the migrations`);
      expect(r.stderr).toContain('ALTER TABLE "events" ADD COLUMN "drift" text;');
    } finally {
      fs.rmSync(drifted, { force: true });
    }
  });
});
