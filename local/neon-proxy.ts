/**
 * Local stand-in for Neon: a WebSocket-to-TCP proxy in front of a real Postgres.
 *
 * `@neondatabase/serverless` speaks the Postgres wire protocol over a WebSocket. With
 *   neonConfig.wsProxy = (host) => `127.0.0.1:<port>/<token>/v1?address=${host}`
 *   neonConfig.useSecureWebSocket = false; pipelineTLS = false; pipelineConnect = false
 * the unchanged driver reaches this proxy, which pipes binary frames to and from one TCP
 * connection to Postgres per WebSocket. Frames need not align with Postgres messages.
 * The target is fixed by the proxy's options: the `address` the driver sends (host:port of
 * its connection string) only picks one of the `routes` given at start, and any other
 * address goes to pgHost:pgPort, so the proxy cannot be used to reach anything else. The token is the first segment of
 * the path (the driver's WebSocket can set no header): `address` below, the value of
 * NEON_WS_PROXY, carries it. Handshakes without it, with an `Origin` header (a web page)
 * or a non-loopback `Host` are refused (guard.ts).
 */

import http from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import { foreignRequest, newToken, sameToken } from "./guard";
import { trackSockets } from "./sockets";

export interface NeonProxyOptions {
  port?: number;
  host?: string;
  pgHost?: string;
  pgPort?: number;
  /** Required as the first path segment of every handshake (default: a fresh random one). */
  token?: string;
  /**
   * Further targets, by the address a connection string names ("127.0.0.1:6432"): the tests
   * reach a PgBouncer beside the direct server through one proxy this way.
   */
  routes?: Record<string, { host: string; port: number }>;
}

export interface NeonProxy {
  port: number;
  /** The value of NEON_WS_PROXY: "127.0.0.1:<port>/<token>". */
  address: string;
  close(): Promise<void>;
  /** Fault injection: while down, open connections are cut and new ones refused (503). */
  setDown(down: boolean): void;
  /**
   * Connections (one per Postgres session): open now, the most open at once since the last
   * call with `reset` (or the start), and opened in all. Tests read what an invocation opened.
   */
  connections(reset?: boolean): { open: number; peak: number; opened: number };
}

export async function startNeonProxy(opts: NeonProxyOptions = {}): Promise<NeonProxy> {
  const pgHost = opts.pgHost ?? "127.0.0.1";
  const pgPort = opts.pgPort ?? 5432;
  const token = opts.token ?? newToken();
  let down = false;
  const live = new Set<{ ws: WebSocket; tcp: net.Socket }>();
  let peak = 0;
  let opened = 0;

  const server = http.createServer((_req, res) => {
    res.writeHead(426, { "content-type": "text/plain" });
    res.end("WebSocket upgrade required\n");
  });
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  const refuse = (socket: Duplex, status: string, why: string) =>
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n${why}\n`);
  server.on("upgrade", (req, socket, head) => {
    const foreign = foreignRequest(req);
    if (foreign) return refuse(socket, "403 Forbidden", foreign);
    const given = new URL(req.url ?? "/", "http://proxy").pathname.split("/")[1];
    if (!sameToken(given, token)) return refuse(socket, "401 Unauthorized", "missing or wrong token");
    if (down) return refuse(socket, "503 Service Unavailable", "down");
    const asked = new URL(req.url ?? "/", "http://proxy").searchParams.get("address") ?? "";
    const target = opts.routes?.[asked] ?? { host: pgHost, port: pgPort };
    wss.handleUpgrade(req, socket, head, (ws) => pipe(ws, target));
  });

  function pipe(ws: WebSocket, target: { host: string; port: number }) {
    const tcp = net.connect(target);
    tcp.setNoDelay(true);
    const pair = { ws, tcp };
    live.add(pair);
    opened++;
    peak = Math.max(peak, live.size);
    const pending: Buffer[] = [];
    let connected = false;
    tcp.on("connect", () => {
      connected = true;
      for (const b of pending) tcp.write(b);
      pending.length = 0;
    });
    ws.on("message", (data: Buffer | ArrayBuffer | Buffer[]) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer);
      if (connected) tcp.write(buf);
      else pending.push(buf);
    });
    tcp.on("data", (d) => {
      if (ws.readyState === ws.OPEN) ws.send(d, { binary: true });
    });
    const end = () => {
      live.delete(pair);
      tcp.destroy();
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close();
    };
    ws.on("close", end);
    ws.on("error", end);
    tcp.on("close", end);
    tcp.on("error", end);
  }

  const sockets = trackSockets(server);

  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}/${token}`,
    setDown(d) {
      down = d;
      if (d)
        for (const p of live) {
          p.tcp.destroy();
          p.ws.terminate();
        }
    },
    connections(reset = false) {
      const out = { open: live.size, peak, opened };
      if (reset) peak = live.size;
      return out;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const p of live) {
          p.tcp.destroy();
          p.ws.terminate();
        }
        wss.close();
        server.closeAllConnections();
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
