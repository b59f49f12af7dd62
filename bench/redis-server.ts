/**
 * A redis-server of the bench's own: a free port, a throwaway directory, no RDB snapshots,
 * and optionally AOF with `appendfsync everysec` (set with CONFIG SET on this instance only,
 * never on the machine's shared Redis on 6379). Its pid is known, so that its CPU time is
 * this bench's alone, and INFO commandstats counts only the bench's commands.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import IORedis from "ioredis";

export interface OwnRedis {
  port: number;
  pid: number;
  aof: boolean;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function startRedisServer(o: { aof: boolean }): Promise<OwnRedis> {
  const dir = mkdtempSync(join(tmpdir(), "reflex-bench-redis-"));
  const port = await freePort();
  const child: ChildProcess = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no"],
    { stdio: "ignore" },
  );
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  let r: IORedis | undefined;
  for (let i = 0; !r; i++) {
    const c = new IORedis({ host: "127.0.0.1", port, lazyConnect: true, retryStrategy: () => null });
    c.on("error", () => {}); // refused until the server listens: retried here
    try {
      await c.connect();
      await c.ping();
      r = c;
    } catch {
      c.disconnect();
      if (i > 100) throw new Error(`bench redis-server on ${port} did not start`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }
  if (o.aof) {
    await r.config("SET", "appendonly", "yes");
    await r.config("SET", "appendfsync", "everysec");
  }
  r.disconnect();
  return {
    port,
    pid: child.pid!,
    aof: o.aof,
    async stop() {
      child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
