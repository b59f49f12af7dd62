/** Tracks a server's sockets (upgraded ones too) so close() can end them without waiting on keep-alives. */
import type { Server } from "node:http";
import type { Socket } from "node:net";

export function trackSockets(server: Server): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  return sockets;
}
