/**
 * Local stand-in for Neon: a WebSocket-to-TCP proxy in front of a real Postgres.
 *
 * `@neondatabase/serverless` speaks the Postgres wire protocol over a WebSocket. With
 *   neonConfig.wsProxy = (host) => `127.0.0.1:<port>/v1?address=${host}`
 *   neonConfig.useSecureWebSocket = false; pipelineTLS = false; pipelineConnect = false
 * the unchanged driver reaches this proxy, which pipes binary frames to and from one TCP
 * connection to Postgres per WebSocket. Frames need not align with Postgres messages.
 * The target is fixed by the proxy's options; the `address` the driver sends is ignored,
 * so the proxy cannot be used to reach anything else.
 */

import http from "node:http";
import net from "node:net";
import { type WebSocket, WebSocketServer } from "ws";
import { trackSockets } from "./sockets";

export interface NeonProxyOptions {
  port?: number;
  host?: string;
  pgHost?: string;
  pgPort?: number;
}

export interface NeonProxy {
  port: number;
  /** Value for neonConfig.wsProxy-style configuration: "127.0.0.1:<port>". */
  address: string;
  close(): Promise<void>;
  /** Fault injection: while down, open connections are cut and new ones refused (503). */
  setDown(down: boolean): void;
}

export async function startNeonProxy(opts: NeonProxyOptions = {}): Promise<NeonProxy> {
  const pgHost = opts.pgHost ?? "127.0.0.1";
  const pgPort = opts.pgPort ?? 5432;
  let down = false;
  const live = new Set<{ ws: WebSocket; tcp: net.Socket }>();

  const server = http.createServer((_req, res) => {
    res.writeHead(426, { "content-type": "text/plain" });
    res.end("WebSocket upgrade required\n");
  });
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  server.on("upgrade", (req, socket, head) => {
    if (down) {
      socket.end("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n");
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => pipe(ws));
  });

  function pipe(ws: WebSocket) {
    const tcp = net.connect({ host: pgHost, port: pgPort });
    tcp.setNoDelay(true);
    const pair = { ws, tcp };
    live.add(pair);
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
    address: `127.0.0.1:${port}`,
    setDown(d) {
      down = d;
      if (d)
        for (const p of live) {
          p.tcp.destroy();
          p.ws.terminate();
        }
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
