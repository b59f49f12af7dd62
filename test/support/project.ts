/**
 * Helpers for the node tests that run the project's own commands (npm run dev, vitest) the
 * way a developer does: in a throwaway copy of the checkout, so that its .dev.vars and
 * .reflex/ are the test's own and never the developer's.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

const COPIED = [
  "src",
  "local",
  "drizzle",
  "test",
  "package.json",
  "tsconfig.json",
  "wrangler.toml",
  "vitest.config.ts",
  ".dev.vars.example",
  "worker-configuration.d.ts",
  "worker-globals.d.ts",
];

/** A copy of the checkout (its node_modules linked, not copied); remove() deletes it. */
export function projectCopy(): { dir: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "reflex-copy-"));
  // Readable by others: as root, an embedded PostgreSQL in it runs as the user `postgres`.
  fs.chmodSync(dir, 0o755);
  for (const entry of COPIED) fs.cpSync(path.join(ROOT, entry), path.join(dir, entry), { recursive: true });
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"), "dir");
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Every process descended from `pid`, as `ps` lists them now. */
export function descendants(pid: number): number[] {
  const rows = execFileSync("ps", ["-A", "-o", "pid=,ppid="], { encoding: "utf8" })
    .trim()
    .split("\n")
    .map((l) => l.trim().split(/\s+/).map(Number));
  const out: number[] = [];
  for (let frontier = [pid]; frontier.length; ) {
    const next = rows.filter(([, ppid]) => frontier.includes(ppid)).map(([p]) => p);
    out.push(...next);
    frontier = next;
  }
  return out;
}

/** Those of `pids` still running (a zombie waiting for its parent counts as gone). */
export function alive(pids: number[]): string[] {
  if (!pids.length) return [];
  let listed = "";
  try {
    listed = execFileSync("ps", ["-o", "pid=,stat=,comm=", "-p", pids.join(",")], { encoding: "utf8" });
  } catch {
    return []; // ps exits 1 when none of them exists
  }
  return listed
    .trim()
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !/^\d+\s+Z/.test(l));
}

/** Whether something accepts connections on 127.0.0.1:port. */
export function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}
