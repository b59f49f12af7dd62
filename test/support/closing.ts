/**
 * What a test opens and must not leave open: WebSockets it accepted and database handles. Each
 * file calls closedAfterEach() once and registers what it opens; all of it is closed after
 * every test.
 */
import { afterEach } from "vitest";

export function closedAfterEach() {
  const sockets: WebSocket[] = [];
  const handles: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    for (const ws of sockets.splice(0)) {
      try {
        ws.close(1000, "test over");
      } catch {
        // closed already
      }
    }
    for (const h of handles.splice(0)) await h.close();
  });
  return {
    socket<T extends WebSocket>(ws: T): T {
      sockets.push(ws);
      return ws;
    },
    handle<T extends { close(): Promise<void> }>(h: T): T {
      handles.push(h);
      return h;
    },
  };
}
