/**
 * The Redis and PostgreSQL that `npm run dev` and `npm test` use on this machine: the ones
 * answering on the usual local addresses, or, when none answers, ones they start
 * themselves (an embedded PostgreSQL from npm; `redis-server` from the PATH, for the
 * tests). One implementation for both, and for CI (.ci/run runs `npm test`).
 *
 * The probed addresses can be moved, e.g. to closed ports to act out a bare machine
 * without stopping its services:
 *   REFLEX_LOCAL_REDIS=127.0.0.1:6379                           (host:port)
 *   REFLEX_LOCAL_POSTGRES=postgresql://postgres@127.0.0.1:5432  (server URL, user included)
 *
 * Run directly (`tsx local/services.ts --preflight`, first step of `npm test`) it makes
 * sure the tests can have a Redis: one answers, `redis-server` is on the PATH, or it
 * installs one (root with apt-get, saying so); otherwise it stops at once with the command
 * to run. Then the optional programs (OPTIONAL): each missing one is installed the same way,
 * by its .ci/install-* script; one that cannot be skips its tests, and the test run ends
 * with one line naming them and the command that enables them (optionalSkippedLine).
 */
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { startEmbeddedPostgres, tempClusterDir } from "./embedded-postgres";
import { freePort } from "./sockets";

export interface Address {
  host: string;
  port: number;
}

export function localRedis(): Address {
  const [host, port] = (process.env.REFLEX_LOCAL_REDIS ?? "127.0.0.1:6379").split(":");
  return { host: host || "127.0.0.1", port: Number(port || 6379) };
}

/** The local PostgreSQL server to probe: REFLEX_LOCAL_POSTGRES, else `fallback`'s server. */
export function localPostgres(fallback = "postgresql://postgres@127.0.0.1:5432/postgres"): string {
  return adminUrlFor(process.env.REFLEX_LOCAL_POSTGRES ?? fallback);
}

export function redisAnswers({ host, port }: Address, timeoutMs = 1500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.on("error", () => done(false));
    s.on("connect", () => s.write("PING\r\n"));
    s.on("data", (d) => done(d.toString().startsWith("+PONG")));
  });
}

export async function postgresAnswers(adminUrl: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 1500 });
  c.on("error", () => {});
  try {
    await c.connect();
    await c.query("select 1");
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

/** Creates the database named in `url` when it does not exist (local URLs only). */
export async function ensureDatabase(url: string): Promise<void> {
  const u = new URL(url);
  const name = decodeURIComponent(u.pathname.slice(1));
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`unsupported database name: ${name}`);
  const c = new pg.Client({ connectionString: adminUrlFor(url) });
  await c.connect();
  try {
    const { rowCount } = await c.query("select 1 from pg_database where datname = $1", [name]);
    if (!rowCount) await c.query(`CREATE DATABASE ${name}`);
  } finally {
    await c.end();
  }
}

/** The same server's `postgres` database. */
export function adminUrlFor(url: string): string {
  return withDatabase(url, "postgres");
}

export function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  u.search = "";
  return u.toString();
}

export function isLocalUrl(url: string): boolean {
  return ["localhost", "127.0.0.1", "[::1]", "::1"].includes(new URL(url).hostname);
}

function onPath(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const file = path.join(dir, cmd);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      /* next */
    }
  }
  return null;
}

const canApt = () => process.getuid?.() === 0 && onPath("apt-get") !== null;

/** The one command that installs Redis here. */
export function redisInstallCommand(): string {
  if (process.platform === "darwin") return "brew install redis";
  if (onPath("apt-get")) return `${process.getuid?.() === 0 ? "" : "sudo "}apt-get install -y redis-server`;
  if (onPath("dnf")) return "sudo dnf install -y redis";
  return "install Redis 7 so that redis-server is on the PATH";
}

/** The one command that starts a Redis where `npm run dev` looks for it. */
export function redisStartCommand({ host, port }: Address = localRedis()): string {
  const start = `redis-server --daemonize yes --bind ${host} --port ${port} --save "" --appendonly no`;
  return onPath("redis-server") ? start : `${redisInstallCommand()} && ${start}`;
}

/** redis-server on the PATH, installed first when missing and the machine allows it. */
function redisServerBinary(): string {
  const found = onPath("redis-server");
  if (found) return found;
  if (canApt()) {
    console.log("redis-server is not installed: installing it (apt-get install -y redis-server)");
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
    execFileSync("apt-get", ["install", "-y", "-qq", "redis-server"], { stdio: "inherit", env });
    const installed = onPath("redis-server");
    if (installed) return installed;
  }
  const { host, port } = localRedis();
  throw new Error(
    `The tests need Redis: none answers on ${host}:${port} and redis-server is not installed. Run:\n  ${redisInstallCommand()}`,
  );
}

/** A program some tests need and the rest do without: they skip, visibly, when it is missing. */
export interface OptionalProgram {
  name: string;
  /** What is skipped without it. */
  skips: string;
  /** The script that installs it (idempotent; apt-get, as root). */
  script: string;
  /** The variable naming where it is instead (then it is not installed for you). */
  variable: string;
  /** Where it is, or undefined. */
  find(): string | undefined;
}

/** Chromium for the dashboard's browser test: REFLEX_CHROMIUM, else Debian's. */
export function chromiumPath(): string | undefined {
  const at = process.env.REFLEX_CHROMIUM ?? "/usr/bin/chromium";
  return fs.existsSync(at) ? at : undefined;
}

/** PgBouncer: REFLEX_PGBOUNCER, else on the PATH, else where Debian puts it (outside a user's PATH). */
export function pgbouncerPath(): string | undefined {
  const named = process.env.REFLEX_PGBOUNCER;
  if (named !== undefined) return fs.existsSync(named) ? named : undefined;
  return onPath("pgbouncer") ?? ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"].find((b) => fs.existsSync(b));
}

export const PGBOUNCER: OptionalProgram = {
  name: "PgBouncer",
  skips: "the scope-lock tests behind a pooler (test/backends/pooler-locks.test.ts)",
  script: ".ci/install-pgbouncer",
  variable: "REFLEX_PGBOUNCER",
  find: pgbouncerPath,
};

export const CHROMIUM: OptionalProgram = {
  name: "Chromium",
  skips: "the dashboard's browser test (test/node/dashboard.test.ts)",
  script: ".ci/install-chromium",
  variable: "REFLEX_CHROMIUM",
  find: chromiumPath,
};

export const OPTIONAL = [PGBOUNCER, CHROMIUM];

/**
 * Whether tests needing `p` skip when it is missing: everywhere but CI, which installs
 * them first and must fail rather than pass without them.
 */
export const skipsWithout = (p: OptionalProgram) => p.find() === undefined && !process.env.CI;

/** The one line a test run ends with when optional programs were missing; undefined when none was. */
export function optionalSkippedLine(programs: OptionalProgram[] = OPTIONAL): string | undefined {
  const missing = programs.filter((p) => p.find() === undefined);
  if (!missing.length) return undefined;
  const sudo = process.getuid?.() === 0 ? "" : "sudo ";
  const what = missing.map((p) => `${p.name} (${p.skips})`).join(", ");
  return `Skipped, not installed: ${what}. Enable with: ${missing.map((p) => sudo + p.script).join(" && ")}`;
}

/** Installs each missing optional program with its script when this machine allows it (root, apt-get). */
function provisionOptional(): void {
  if (!canApt()) return;
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
  for (const p of OPTIONAL) {
    if (p.find() !== undefined || process.env[p.variable] !== undefined) continue;
    console.log(`${p.name} is not installed: installing it with ${p.script}, for ${p.skips}`);
    try {
      execFileSync(path.join(root, p.script), { stdio: "inherit" });
    } catch {
      /* said below */
    }
    if (p.find() === undefined) console.log(`${p.name} could not be installed: its tests will be skipped`);
  }
}

export interface Provided {
  /** "host:port" for Redis, a server URL for PostgreSQL. */
  address: string;
  /** What it is, for the one line that says what runs. */
  label: string;
  /** Started here (and stopped by stop()), as opposed to found answering. */
  own: boolean;
  stop(): Promise<void>;
}

const found = (address: string, label: string): Provided => ({ address, label, own: false, stop: async () => {} });

/** The tests' Redis: the one answering, else a redis-server of their own on a free port. */
export async function provideRedis(): Promise<Provided> {
  const local = localRedis();
  if (await redisAnswers(local)) return found(`${local.host}:${local.port}`, `Redis ${local.host}:${local.port}`);
  const bin = redisServerBinary();
  const port = await freePort();
  const child = spawn(bin, ["--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  for (let i = 0; !(await redisAnswers({ host: "127.0.0.1", port }, 500)); i++) {
    if (child.exitCode !== null || i > 50) {
      child.kill("SIGKILL");
      throw new Error(`redis-server did not start on 127.0.0.1:${port}:\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    address: `127.0.0.1:${port}`,
    label: `redis-server of its own on 127.0.0.1:${port}`,
    own: true,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/**
 * A PostgreSQL server: the one answering at `probe`, else an embedded one, persistent in
 * `dir` (dev) or throwaway (tests, when `dir` is not given).
 */
export async function providePostgres(o: { probe: string; dir?: string }): Promise<Provided> {
  if (await postgresAnswers(o.probe)) {
    const u = new URL(o.probe);
    return found(o.probe, `PostgreSQL ${u.host}`);
  }
  const dir = o.dir ?? tempClusterDir();
  const pg = await startEmbeddedPostgres({ dir, persistent: o.dir !== undefined, fast: o.dir === undefined });
  const where = o.dir ? `data in ${path.relative(process.cwd(), dir) || dir}` : "throwaway";
  return {
    address: pg.url,
    label: `embedded PostgreSQL on 127.0.0.1:${pg.port} (${where})`,
    own: true,
    stop: () => pg.stop(),
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (!process.argv.includes("--preflight")) {
    console.error("usage: tsx local/services.ts --preflight");
    process.exit(2);
  }
  redisAnswers(localRedis())
    .then((ok) => ok || redisServerBinary())
    .then(() => provisionOptional())
    .catch((e: unknown) => {
      console.error(e instanceof Error ? e.message : e);
      process.exit(1);
    });
}
