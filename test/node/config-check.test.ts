/**
 * A bad setting is refused before anything runs, naming it: `reflex config check` (what a
 * deploy pipeline runs before `wrangler deploy`) exits 1 listing each bad variable, from an
 * --env-file or from the environment; `npm run dev` refuses to start and starts nothing.
 */
import { execFile, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../../local/sockets";
import { projectCopy, ROOT } from "../support/project";

const WEAK_SOURCES = JSON.stringify({
  gh: { scheme: "github", secret: "0123456789abcdefghi" },
  demo: { scheme: "none", unsigned: true },
});
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "reflex-config-"));
const copy = projectCopy();

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  copy.remove();
});

function reflex(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(ROOT, "bin", "reflex.mjs"), ...args],
      { cwd: ROOT, env: { PATH: process.env.PATH ?? "", ...env } },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("reflex config check", () => {
  it("exits 1 naming each bad variable of an --env-file, and 0 for a good one", async () => {
    const bad = path.join(tmp, "bad.vars");
    fs.writeFileSync(
      bad,
      `EVENT_BACKEND=postgres\nDATABASE_URL=postgres://u@db.example/x\nADMIN_TOKEN=short\nWEBHOOK_SOURCES=${WEAK_SOURCES}\n`,
    );
    const r = await reflex(["config", "check", "--env-file", bad], {});
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("ADMIN_TOKEN: must be at least 16 characters");
    expect(r.stdout).toContain("WEBHOOK_SOURCES.gh.secret: must be at least 24 bytes");
    expect(r.stdout).not.toContain("0123456789abcdefghi");

    const good = path.join(tmp, "good.vars");
    fs.writeFileSync(
      good,
      "EVENT_BACKEND=postgres\nDATABASE_URL=postgres://u@db.example/x\nEVENT_ID_SECRET=an-event-id-secret-0123456789\n",
    );
    const ok = await reflex(["config", "check", "--env-file", good, "--json"], {});
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual({ ok: true, problems: [] });
  });

  it("reads the environment without --env-file; a missing DATABASE_URL is named", async () => {
    const r = await reflex(["config", "check", "--json"], { EVENT_BACKEND: "postgres", WEBHOOK_SOURCES: WEAK_SOURCES });
    expect(r.code).toBe(1);
    const { ok, problems } = JSON.parse(r.stdout) as { ok: boolean; problems: string[] };
    expect(ok).toBe(false);
    expect(problems.map((p) => p.split(":")[0])).toEqual(["DATABASE_URL", "WEBHOOK_SOURCES.gh.secret"]);
  });
});

describe("npm run dev with a bad .dev.vars", () => {
  it("refuses to start, naming the variable, and starts no service", async () => {
    const example = fs.readFileSync(path.join(copy.dir, ".dev.vars.example"), "utf8");
    fs.writeFileSync(
      path.join(copy.dir, ".dev.vars"),
      example
        .replaceAll("<random>", "devtesttoken0123456789")
        .replace(/^WEBHOOK_SOURCES=.*$/m, `WEBHOOK_SOURCES=${WEAK_SOURCES}`),
    );
    const [port, closedRedis, closedPg] = await Promise.all([freePort(), freePort(), freePort()]);
    const child = spawn("npm", ["run", "dev"], {
      cwd: copy.dir,
      env: {
        ...process.env,
        PORT: String(port),
        REFLEX_LOCAL_REDIS: `127.0.0.1:${closedRedis}`,
        REFLEX_LOCAL_POSTGRES: `postgresql://postgres@127.0.0.1:${closedPg}`,
      },
      stdio: "pipe",
    });
    let output = "";
    child.stdout!.on("data", (d) => {
      output += d;
    });
    child.stderr!.on("data", (d) => {
      output += d;
    });
    const code = await new Promise<number | null>((res) => child.once("exit", res));
    expect(code, output).toBe(1);
    expect(output).toContain("WEBHOOK_SOURCES.gh.secret: must be at least 24 bytes");
    expect(output).not.toContain("mode: EVENT_BACKEND");
    expect(fs.existsSync(path.join(copy.dir, ".reflex", "pg"))).toBe(false);
  }, 120_000);
});
