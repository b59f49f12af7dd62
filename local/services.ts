/**
 * Checks that the local Redis and Postgres answer, and says exactly how to start them
 * when they do not. Used by `npm run dev` and the benchmarks.
 */
import net from "node:net";
import pg from "pg";

export const START_HINTS = {
  redis: [
    "Redis is not answering on 127.0.0.1:6379. Start it with:",
    '  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no',
    "(install it first if needed: apt-get install -y redis-server)",
  ].join("\n"),
  postgres: [
    "PostgreSQL is not answering on 127.0.0.1:5432. Start it with:",
    "  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "(install it first if needed: apt-get install -y postgresql; .ci/run shows the trust-auth setup)",
  ].join("\n"),
};

export function redisAnswers(host = "127.0.0.1", port = 6379, timeoutMs = 1500): Promise<boolean> {
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
  u.pathname = "/postgres";
  const c = new pg.Client({ connectionString: u.toString() });
  await c.connect();
  try {
    const { rowCount } = await c.query("select 1 from pg_database where datname = $1", [name]);
    if (!rowCount) await c.query(`CREATE DATABASE ${name}`);
  } finally {
    await c.end();
  }
}

export function adminUrlFor(url: string): string {
  const u = new URL(url);
  u.pathname = "/postgres";
  u.search = "";
  return u.toString();
}
