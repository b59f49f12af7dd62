/**
 * The optional programs of the test run (local/services.ts): a missing one makes its tests
 * skip outside CI (fail in CI), the run ends with one line naming what was skipped and the
 * command that installs it, and the preflight does not stop for it.
 */
import { execFile } from "node:child_process";
import { afterEach, describe, expect, inject, it } from "vitest";
import { CHROMIUM, OPTIONAL, optionalSkippedLine, PGBOUNCER, skipsWithout } from "../../local/services";

const saved = { ...process.env };
afterEach(() => {
  for (const k of ["REFLEX_PGBOUNCER", "REFLEX_CHROMIUM", "CI"]) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});

describe("optional test programs", () => {
  it("missing ones are named in one line with the commands that install them", () => {
    process.env.REFLEX_PGBOUNCER = "/nonexistent/pgbouncer";
    process.env.REFLEX_CHROMIUM = "/nonexistent/chromium";
    const line = optionalSkippedLine()!;
    expect(line.split("\n")).toHaveLength(1);
    expect(line).toContain("PgBouncer (the scope-lock tests behind a pooler (test/backends/pooler-locks.test.ts))");
    expect(line).toContain("Chromium (the dashboard's browser test (test/node/dashboard.test.ts))");
    expect(line).toMatch(/Enable with: (sudo )?\.ci\/install-pgbouncer && (sudo )?\.ci\/install-chromium$/);
  });

  it("present ones are not mentioned, and with all present there is no line", () => {
    process.env.REFLEX_PGBOUNCER = process.execPath;
    process.env.REFLEX_CHROMIUM = "/nonexistent/chromium";
    expect(optionalSkippedLine()).not.toContain("PgBouncer");
    process.env.REFLEX_CHROMIUM = process.execPath;
    expect(optionalSkippedLine()).toBeUndefined();
    expect(OPTIONAL.map((p) => p.find())).toEqual([process.execPath, process.execPath]);
  });

  it("their tests skip when they are missing, except in CI", () => {
    process.env.REFLEX_CHROMIUM = "/nonexistent/chromium";
    delete process.env.CI;
    expect(skipsWithout(CHROMIUM)).toBe(true);
    process.env.CI = "true";
    expect(skipsWithout(CHROMIUM)).toBe(false);
    process.env.REFLEX_PGBOUNCER = process.execPath;
    delete process.env.CI;
    expect(skipsWithout(PGBOUNCER)).toBe(false);
  });

  it("the preflight goes on without them (one named elsewhere is not installed for you)", async () => {
    const out = await new Promise<{ code: number; text: string }>((resolve) =>
      execFile(
        process.execPath,
        ["--import", "tsx", "local/services.ts", "--preflight"],
        {
          env: {
            ...process.env,
            REFLEX_LOCAL_REDIS: inject("redisAddress"),
            REFLEX_PGBOUNCER: "/nonexistent/pgbouncer",
            REFLEX_CHROMIUM: "/nonexistent/chromium",
          },
        },
        (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, text: stdout + stderr }),
      ),
    );
    expect(out).toEqual({ code: 0, text: "" });
  });
});
