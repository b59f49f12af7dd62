/**
 * `wrangler dev` as a child process, for the tools that drive a running worker over HTTP
 * (bench/ingest.ts, test/node/cli.test.ts).
 *
 *   const w = await startWranglerDev({ vars, ready: "/health" });
 *   await fetch(`${w.url}/health`);
 *   await w.stop();
 *
 * The variables go in an env file (`--env-file`), not `--var`: secrets stay out of the
 * process list, and wrangler then does not read a developer's `.dev.vars` either. Wrangler
 * runs in its own process group, so stop() ends the workerd it started with it.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./sockets";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export interface WranglerDevOptions {
  vars: Record<string, string>;
  /** Path answering 2xx once the worker is up (GET), or a check of its own. */
  ready: string | ((url: string) => Promise<boolean>);
  /** Another wrangler config than the project's (relative to the project root). */
  config?: string;
  /** Adds --test-scheduled (crons callable at /__scheduled). */
  testScheduled?: boolean;
  port?: number;
  readyTimeoutMs?: number;
}

export interface WranglerDev {
  url: string;
  /** The last few KiB wrangler printed (for error messages). */
  log(): string;
  stop(): Promise<void>;
}

export async function startWranglerDev(o: WranglerDevOptions): Promise<WranglerDev> {
  const port = o.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "reflex-wrangler-"));
  const envFile = path.join(dir, "dev.env");
  fs.writeFileSync(
    envFile,
    Object.entries(o.vars)
      .map(([k, v]) => `${k}=${v}\n`)
      .join(""),
    { mode: 0o600 },
  );

  const argv = [
    "wrangler",
    "dev",
    "--port",
    String(port),
    "--ip",
    "127.0.0.1",
    "--show-interactive-dev-session=false",
    "--env-file",
    envFile,
    "--log-level",
    "error",
  ];
  if (o.testScheduled) argv.push("--test-scheduled");
  if (o.config) argv.push("--config", o.config);
  const child = spawn("npx", argv, {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
    detached: true,
  });
  let tail = "";
  const keep = (d: Buffer) => {
    tail = (tail + d.toString()).slice(-8000);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const exited = new Promise<void>((r) => child.once("exit", () => r()));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      const signal = (sig: NodeJS.Signals) => {
        try {
          process.kill(-child.pid!, sig);
        } catch {
          /* already gone */
        }
      };
      signal("SIGINT");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null && child.signalCode === null) signal("SIGKILL");
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };

  const ready =
    typeof o.ready === "string"
      ? (u: string) =>
          fetch(`${u}${o.ready}`).then(
            (r) => r.ok,
            () => false,
          )
      : o.ready;
  const until = Date.now() + (o.readyTimeoutMs ?? 90_000);
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`wrangler dev exited (${child.exitCode}):\n${tail}`);
    }
    if (await ready(url).catch(() => false)) break;
    if (Date.now() > until) {
      await stop();
      throw new Error(`wrangler dev did not get ready within ${(o.readyTimeoutMs ?? 90_000) / 1000} s:\n${tail}`);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  return { url, log: () => tail, stop };
}
