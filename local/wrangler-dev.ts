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
 * is started with node itself (not through npx, which does not pass signals on) in its own
 * process group, so stop() ends the workerd it started with it, within `graceMs` and then
 * by SIGKILL.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./sockets";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const WRANGLER = path.join(
  path.dirname(createRequire(import.meta.url).resolve("wrangler/package.json")),
  "bin",
  "wrangler.js",
);

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
  /** Wrangler's own output goes to this process's stdout/stderr (npm run dev), not only to log(). */
  inheritOutput?: boolean;
  /** Wrangler's --log-level (default "error"). */
  logLevel?: "debug" | "info" | "log" | "warn" | "error" | "none";
  /** Time stop() gives wrangler to end before SIGKILL (default 5000 ms). */
  graceMs?: number;
}

export interface WranglerDev {
  url: string;
  /** The last few KiB wrangler printed (for error messages). */
  log(): string;
  /** Settles when wrangler has exited, by stop() or on its own, with its exit code. */
  exited: Promise<number | null>;
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
    WRANGLER,
    "dev",
    "--port",
    String(port),
    "--ip",
    "127.0.0.1",
    "--show-interactive-dev-session=false",
    "--env-file",
    envFile,
    "--log-level",
    o.logLevel ?? "error",
  ];
  if (o.testScheduled) argv.push("--test-scheduled");
  if (o.config) argv.push("--config", o.config);
  const child = spawn(process.execPath, argv, {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
    detached: true,
  });
  let tail = "";
  const keep = (to: NodeJS.WriteStream) => (d: Buffer) => {
    tail = (tail + d.toString()).slice(-8000);
    if (o.inheritOutput) to.write(d);
  };
  child.stdout!.on("data", keep(process.stdout));
  child.stderr!.on("data", keep(process.stderr));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));

  const signal = (sig: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, sig);
    } catch {
      /* the group is empty */
    }
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      signal("SIGINT");
      const grace = new Promise((r) => setTimeout(r, o.graceMs ?? 5000).unref());
      await Promise.race([exited, grace]);
    }
    // Whatever is left of wrangler's group (a workerd it did not end) goes too.
    signal("SIGKILL");
    await exited;
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
  return { url, log: () => tail, exited, stop };
}
