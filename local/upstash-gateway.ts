/**
 * Local stand-in for Upstash Redis: the Upstash REST protocol in front of a real Redis.
 *
 * Speaks what `@upstash/redis` sends (the protocol of the open-source
 * "serverless-redis-http"):
 *   POST /            body ["SET","k","v"]             -> {"result": ...} | 400 {"error": "..."}
 *   POST /pipeline    body [["SET","k","v"], ...]      -> [{"result"}|{"error"}, ...]
 *   POST /multi-exec  body [[...], ...] (MULTI/EXEC)   -> [{"result"}|{"error"}, ...] | 400 {"error"}
 * with `Authorization: Bearer <token>` (401 otherwise; 403 for a request with an `Origin`
 * header or a non-loopback `Host`, see guard.ts) and, when the request carries
 * `Upstash-Encoding: base64`, every string in the result base64-encoded at any depth
 * (status replies such as OK included); integers and nil pass as they are.
 *
 * Why a hand-written connection pool instead of ioredis/node-redis: the gateway's whole
 * job is to hand Redis replies through *unchanged* - bulk vs status strings, nested error
 * replies inside EXEC, error texts verbatim (the client falls back from EVALSHA to EVAL on
 * "NOSCRIPT") - and to own one connection for the duration of a MULTI/EXEC. The client
 * libraries reshape replies and share connections; the RESP parser itself is the
 * well-kept `redis-parser` used by both of them.
 */

import { createHash } from "node:crypto";
import http from "node:http";
import { createRequire } from "node:module";
import net from "node:net";
import { foreignRequest, sameToken } from "./guard";
import { trackSockets } from "./sockets";

const require = createRequire(import.meta.url);
const RedisParser = require("redis-parser") as new (opts: {
  returnReply: (r: unknown) => void;
  returnError: (e: Error) => void;
  returnFatalError?: (e: Error) => void;
  returnBuffers?: boolean;
}) => { execute(b: Buffer): void; reset(): void };

type Reply = Buffer | number | null | Error | Reply[];
type Arg = string | number | boolean;

/**
 * Commands that would block a pooled connection or change its state (not part of the REST
 * protocol), and commands that reach the server's files, modules or replication role.
 */
const REFUSED = new Set([
  "BLPOP",
  "BRPOP",
  "BLMOVE",
  "BRPOPLPUSH",
  "BZPOPMIN",
  "BZPOPMAX",
  "BLMPOP",
  "BZMPOP",
  "SUBSCRIBE",
  "PSUBSCRIBE",
  "SSUBSCRIBE",
  "MONITOR",
  "SYNC",
  "PSYNC",
  "MULTI",
  "EXEC",
  "DISCARD",
  "WATCH",
  "UNWATCH",
  "SELECT",
  "QUIT",
  "RESET",
  "AUTH",
  "HELLO",
  "CLIENT",
  "SHUTDOWN",
  "DEBUG",
  "CONFIG",
  "SAVE",
  "BGSAVE",
  "BGREWRITEAOF",
  "MODULE",
  "REPLICAOF",
  "SLAVEOF",
  "MIGRATE",
  "ACL",
]);

function refusal(cmd: Arg[]): string | null {
  if (!Array.isArray(cmd) || cmd.length === 0) return "ERR command must be a non-empty array";
  for (const a of cmd) {
    if (typeof a !== "string" && typeof a !== "number" && typeof a !== "boolean") {
      return "ERR command arguments must be strings, numbers or booleans";
    }
  }
  const name = String(cmd[0]).toUpperCase();
  if (REFUSED.has(name)) return `ERR command '${name}' is not supported by the REST gateway`;
  if ((name === "XREAD" || name === "XREADGROUP") && cmd.some((a) => String(a).toUpperCase() === "BLOCK")) {
    return "ERR blocking reads are not supported by the REST gateway";
  }
  return null;
}

/**
 * Upstash's Lua dialect: scripts may declare `#!lua flags=allow-key-locking` (an Upstash
 * flag that @upstash/ratelimit uses); open-source Redis refuses unknown flags. The gateway
 * drops that flag before Redis sees the script, and maps EVALSHA of the original script's
 * SHA-1 (what the client computes) to the SHA-1 of the script Redis actually loaded.
 */
const UPSTASH_ONLY_FLAGS = new Set(["allow-key-locking"]);
const shaAlias = new Map<string, string>();

function sha1(s: string): string {
  return createHash("sha1").update(s).digest("hex");
}

function withoutUpstashFlags(script: string): string {
  const m = /^#!lua flags=([^\n]*)/.exec(script);
  if (!m) return script;
  const kept = m[1]
    .split(",")
    .map((f) => f.trim())
    .filter((f) => f && !UPSTASH_ONLY_FLAGS.has(f));
  const shebang = kept.length ? `#!lua flags=${kept.join(",")}` : "#!lua";
  return shebang + script.slice(m[0].length);
}

function upstashDialect(cmd: Arg[]): Arg[] {
  const name = String(cmd[0]).toUpperCase();
  const scriptAt =
    name === "EVAL" || name === "EVAL_RO" ? 1 : name === "SCRIPT" && String(cmd[1]).toUpperCase() === "LOAD" ? 2 : -1;
  if (scriptAt > 0 && typeof cmd[scriptAt] === "string") {
    const original = cmd[scriptAt] as string;
    const script = withoutUpstashFlags(original);
    if (script === original) return cmd;
    shaAlias.set(sha1(original), sha1(script));
    const out = [...cmd];
    out[scriptAt] = script;
    return out;
  }
  if ((name === "EVALSHA" || name === "EVALSHA_RO") && shaAlias.has(String(cmd[1]).toLowerCase())) {
    const out = [...cmd];
    out[1] = shaAlias.get(String(cmd[1]).toLowerCase())!;
    return out;
  }
  return cmd;
}

function encodeCommand(cmd: Arg[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${cmd.length}\r\n`)];
  for (const a of cmd) {
    const b = Buffer.from(typeof a === "string" ? a : String(a), "utf8");
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from("\r\n"));
  }
  return Buffer.concat(parts);
}

/** One TCP connection to Redis; replies resolve in FIFO order. */
class Conn {
  private waiting: Array<(r: Reply) => void> = [];
  private socket: net.Socket;
  private parser = new RedisParser({
    returnBuffers: true,
    returnReply: (r) => this.waiting.shift()?.(r as Reply),
    returnError: (e) => this.waiting.shift()?.(e),
    returnFatalError: (e) => this.fail(e),
  });
  broken = false;
  ready: Promise<void>;

  constructor(host: string, port: number) {
    this.socket = net.connect({ host, port });
    this.socket.setNoDelay(true);
    this.ready = new Promise((resolve, reject) => {
      this.socket.once("connect", () => resolve());
      this.socket.once("error", reject);
    });
    this.socket.on("data", (d) => this.parser.execute(d));
    this.socket.on("error", (e) => this.fail(e));
    this.socket.on("close", () => this.fail(new Error("ERR connection to Redis closed")));
  }

  private fail(e: Error) {
    this.broken = true;
    const w = this.waiting;
    this.waiting = [];
    for (const resolve of w) resolve(e);
    this.socket.destroy();
  }

  /** Writes all commands in one go and resolves with their replies, in order. */
  send(cmds: Arg[][]): Promise<Reply[]> {
    if (this.broken) return Promise.resolve(cmds.map(() => new Error("ERR connection to Redis closed")));
    const replies = cmds.map(() => new Promise<Reply>((resolve) => this.waiting.push(resolve)));
    this.socket.write(Buffer.concat(cmds.map(encodeCommand)));
    return Promise.all(replies);
  }

  close() {
    this.socket.destroy();
  }
}

class Pool {
  private idle: Conn[] = [];
  private all = new Set<Conn>();
  private queue: Array<(c: Conn) => void> = [];
  constructor(
    private host: string,
    private port: number,
    private max: number,
  ) {}

  async acquire(): Promise<Conn> {
    while (this.idle.length) {
      const c = this.idle.pop()!;
      if (!c.broken) return c;
      this.all.delete(c);
    }
    if (this.all.size < this.max) {
      const c = new Conn(this.host, this.port);
      this.all.add(c);
      try {
        await c.ready;
      } catch (e) {
        this.all.delete(c);
        throw e;
      }
      return c;
    }
    return new Promise((resolve) => this.queue.push(resolve));
  }

  release(c: Conn) {
    if (c.broken) {
      this.all.delete(c);
      c.close();
      // a waiter gets a fresh connection instead
      const next = this.queue.shift();
      if (next) this.acquire().then(next, () => next(c));
      return;
    }
    const next = this.queue.shift();
    if (next) next(c);
    else this.idle.push(c);
  }

  close() {
    for (const c of this.all) c.close();
    this.all.clear();
    this.idle = [];
  }
}

function toJson(r: Reply, base64: boolean): unknown {
  if (r === null || typeof r === "number") return r;
  if (Buffer.isBuffer(r)) return base64 ? r.toString("base64") : r.toString("utf8");
  if (Array.isArray(r)) return r.map((x) => (x instanceof Error ? { error: x.message } : toJson(x, base64)));
  return null;
}

function item(r: Reply, base64: boolean): { result: unknown } | { error: string } {
  return r instanceof Error ? { error: r.message } : { result: toJson(r, base64) };
}

export interface GatewayOptions {
  port?: number;
  host?: string;
  token: string;
  redisHost?: string;
  redisPort?: number;
  maxConnections?: number;
  /** Largest accepted request body, bytes (default 64 MiB). */
  maxBody?: number;
}

export interface Gateway {
  url: string;
  port: number;
  close(): Promise<void>;
  /**
   * Fault injection for reliability tests: while set, every request is answered with
   * this HTTP status (e.g. 503), or held until the client gives up ("hang").
   */
  setFault(fault: number | "hang" | null): void;
}

export async function startUpstashGateway(opts: GatewayOptions): Promise<Gateway> {
  const pool = new Pool(opts.redisHost ?? "127.0.0.1", opts.redisPort ?? 6379, opts.maxConnections ?? 64);
  const maxBody = opts.maxBody ?? 64 * 1024 * 1024;
  let fault: number | "hang" | null = null;
  const hanging = new Set<http.ServerResponse>();

  const server = http.createServer(async (req, res) => {
    const send = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
      res.end(text);
    };
    if (fault === "hang") {
      hanging.add(res);
      res.on("close", () => hanging.delete(res));
      return;
    }
    if (typeof fault === "number") return send(fault, { error: `injected fault ${fault}` });
    const foreign = foreignRequest(req);
    if (foreign) return send(403, { error: `Forbidden: ${foreign}` });
    const auth = req.headers.authorization;
    if (!sameToken(auth?.startsWith("Bearer ") ? auth.slice(7) : undefined, opts.token))
      return send(401, { error: "Unauthorized" });
    if (req.method !== "POST") return send(405, { error: "ERR only POST is supported" });

    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > maxBody) return send(413, { error: "ERR request body too large" });
      chunks.push(c as Buffer);
    }
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      return send(400, { error: "ERR failed to parse JSON body" });
    }
    const base64 = String(req.headers["upstash-encoding"] ?? "").toLowerCase() === "base64";
    const path = (req.url ?? "/").split("?")[0].replace(/\/+$/, "") || "/";

    const batch = path === "/pipeline" || path === "/multi-exec";
    if (path !== "/" && !batch) return send(404, { error: `ERR unknown endpoint ${path}` });
    const received = (batch ? body : [body]) as Arg[][];
    if (!Array.isArray(received) || (batch && received.length === 0))
      return send(400, { error: "ERR expected an array of commands" });
    for (const c of received) {
      const why = refusal(c);
      if (why) return send(400, { error: why });
    }
    const cmds = received.map(upstashDialect);

    let conn: Conn;
    try {
      conn = await pool.acquire();
    } catch (e) {
      return send(502, { error: `ERR Redis unreachable: ${(e as Error).message}` });
    }
    try {
      if (path === "/") {
        const [r] = await conn.send(cmds);
        return r instanceof Error ? send(400, { error: r.message }) : send(200, { result: toJson(r, base64) });
      }
      if (path === "/pipeline") {
        const replies = await conn.send(cmds);
        return send(
          200,
          replies.map((r) => item(r, base64)),
        );
      }
      // /multi-exec: MULTI, the commands, EXEC on a connection nobody else is using.
      const replies = await conn.send([["MULTI"], ...cmds, ["EXEC"]]);
      const exec = replies[replies.length - 1];
      if (exec instanceof Error) return send(400, { error: exec.message });
      if (exec === null) return send(400, { error: "ERR transaction aborted" });
      return send(
        200,
        (exec as Reply[]).map((r) => item(r, base64)),
      );
    } finally {
      pool.release(conn);
    }
  });
  server.keepAliveTimeout = 30_000;

  const sockets = trackSockets(server);

  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    setFault(f) {
      fault = f;
      if (f !== "hang") for (const r of hanging) r.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const r of hanging) r.destroy();
        server.closeAllConnections();
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
        pool.close();
      }),
  };
}
