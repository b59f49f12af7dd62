/** Socket helpers for the local tools. */
import type { Server } from "node:http";
import net, { type Socket } from "node:net";

/** A TCP port on 127.0.0.1 that was free a moment ago (for child processes that need one up front). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** Tracks a server's sockets (upgraded ones too) so close() can end them without waiting on keep-alives. */
export function trackSockets(server: Server): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  return sockets;
}
