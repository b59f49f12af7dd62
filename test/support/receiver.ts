/**
 * A controllable HTTP receiver for destination tests (runs in Node, started by
 * test/global-setup.ts: workerd tests cannot listen on a socket).
 *
 * Every test uses its own id, so tests never see each other's traffic:
 *   POST /r/<id>[/...]          a delivery: logged, then answered as the id's mode says
 *   POST /__control/<id>        {"mode": "ok" | "fail-n" | "always-500" | "hang" | "down-until" | "redirect",
 *                                "n"?: number, "status"?: number, "location"?: string}
 *   GET  /__log/<id>            [{path, headers, body, answered}] in arrival order
 * Modes:
 *   ok           200 {"ok":true}
 *   fail-n       the next n deliveries answer `status` (default 500), then ok
 *   always-500   `status` (default 500), always
 *   hang         never answers (the caller's timeout must cut it)
 *   down-until   the connection is dropped without an answer - a receiver that is down - for
 *                the next n deliveries (default: until the mode changes), then ok
 *   redirect     302 to `location`
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

interface Mode {
  mode: "ok" | "fail-n" | "always-500" | "hang" | "down-until" | "redirect";
  n?: number;
  status?: number;
  location?: string;
}

interface Logged {
  path: string;
  headers: Record<string, string>;
  body: string;
  answered: number | "hang" | "dropped";
}

export interface Receiver {
  url: string;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export async function startReceiver(): Promise<Receiver> {
  const modes = new Map<string, Mode>();
  const logs = new Map<string, Logged[]>();
  const sockets = new Set<Socket>();

  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://receiver");
    const [, kind, id] = url.pathname.split("/");
    const body = await readBody(req);
    if (!id) return json(res, 404, { error: "no id" });
    if (kind === "__control" && req.method === "POST") {
      modes.set(id, JSON.parse(body) as Mode);
      return json(res, 200, { ok: true });
    }
    if (kind === "__log" && req.method === "GET") return json(res, 200, logs.get(id) ?? []);
    if (kind !== "r") return json(res, 404, { error: "unknown path" });

    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
    const entry: Logged = { path: url.pathname, headers, body, answered: 200 };
    const log = logs.get(id) ?? [];
    logs.set(id, log);
    log.push(entry);

    const m = modes.get(id) ?? { mode: "ok" };
    const countDown = () => {
      if (m.n === undefined) return true;
      if (m.n <= 0) return false;
      m.n--;
      return true;
    };
    switch (m.mode) {
      case "hang":
        entry.answered = "hang";
        return; // never answered; closed with the server
      case "down-until":
        if (countDown()) {
          entry.answered = "dropped";
          req.socket.destroy();
          return;
        }
        break;
      case "fail-n":
        if ((m.n ?? 0) > 0) {
          m.n = (m.n ?? 0) - 1;
          entry.answered = m.status ?? 500;
          return json(res, entry.answered, { error: "failing on purpose" });
        }
        break;
      case "always-500":
        entry.answered = m.status ?? 500;
        return json(res, entry.answered, { error: "always failing" });
      case "redirect":
        entry.answered = 302;
        res.writeHead(302, { location: m.location ?? "http://elsewhere.invalid/" });
        return res.end();
      case "ok":
        break;
    }
    entry.answered = 200;
    json(res, 200, { ok: true });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
