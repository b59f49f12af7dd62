/**
 * Node side (global setup): a real PgBouncer (Debian's `pgbouncer`) in transaction mode in
 * front of the test PostgreSQL, on a free port - what Neon's pooled (-pooler) connection
 * string is. Every database name is routed to the same server; auth_type trust, as the local
 * PostgreSQL. default_pool_size 1: every client's transactions share one server session, so
 * what a transaction-mode pooler does to session state (advisory locks among it) shows on
 * every run, not by chance.
 *
 * `npm test` installs it when it can (local/services.ts, by .ci/install-pgbouncer). Without
 * it the suite that needs it skips (fails in CI), and the run ends saying so.
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { PGBOUNCER, pgbouncerPath } from "../../local/services";
import { freePort } from "../../local/sockets";

export interface PgBouncer {
  /** postgresql://<user>@127.0.0.1:<port> (append /<database>). */
  url: string;
  host: string;
  port: number;
  stop(): Promise<void>;
}

const answers = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });

/** Starts PgBouncer in transaction mode in front of `server` (host, port, user); throws when it cannot. */
export async function startPgBouncer(server: { host: string; port: number; user: string }): Promise<PgBouncer> {
  const bin = pgbouncerPath();
  if (!bin) throw new Error(`pgbouncer is not installed: run ${PGBOUNCER.script} (Debian's pgbouncer package)`);
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "reflex-pgbouncer-"));
  // PgBouncer refuses to run as root: it switches to `nobody`, which must read its files.
  fs.chmodSync(dir, 0o755);
  const users = path.join(dir, "userlist.txt");
  fs.writeFileSync(users, `"${server.user}" ""\n`, { mode: 0o644 });
  const ini = path.join(dir, "pgbouncer.ini");
  fs.writeFileSync(
    ini,
    [
      "[databases]",
      `* = host=${server.host} port=${server.port}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${users}`,
      "pool_mode = transaction",
      "default_pool_size = 1",
      "max_client_conn = 200",
      // The Neon driver and pg send these at startup; PgBouncer passes on only what it knows.
      "ignore_startup_parameters = extra_float_digits,options",
      "server_reset_query =",
      "",
    ].join("\n"),
    { mode: 0o644 },
  );
  const args = [...(process.getuid?.() === 0 ? ["-u", "nobody"] : []), ini];
  const child: ChildProcess = spawn(bin, args, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr!.on("data", (d) => {
    log = (log + String(d)).slice(-4000);
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  for (let i = 0; ; i++) {
    if (await answers(port)) break;
    if (child.exitCode !== null || i > 100) {
      child.kill("SIGTERM");
      throw new Error(`pgbouncer did not start on 127.0.0.1:${port}:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `postgresql://${server.user}@127.0.0.1:${port}`,
    host: "127.0.0.1",
    port,
    async stop() {
      child.kill("SIGTERM");
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
