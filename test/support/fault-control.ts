/**
 * Node side (global setup): a small control server that starts *private* stand-in pairs
 * (Upstash gateway + Neon proxy) on demand and switches their faults. Tests that break a
 * dependency on purpose use their own pair, so files running in parallel are unaffected.
 *
 *   POST   /pairs                 -> {id, upstashUrl, upstashToken, neonProxy}
 *   POST   /pairs/:id/gateway     {"fault": 503 | "hang" | null}
 *   POST   /pairs/:id/proxy       {"down": true | false}
 *   GET    /pairs/:id/proxy       -> {open, peak, opened} Postgres connections (?reset=1: peak restarts)
 *   DELETE /pairs/:id
 *
 * It listens on 127.0.0.1 only and is reachable only for the duration of a test run.
 */

import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { type NeonProxy, startNeonProxy } from "../../local/neon-proxy";
import { type Gateway, startUpstashGateway } from "../../local/upstash-gateway";

export async function startFaultControl(at: { host: string; port: number; redisHost: string; redisPort: number }) {
  const pairs = new Map<string, { gateway: Gateway; proxy: NeonProxy }>();
  const server = http.createServer(async (req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    try {
      let text = "";
      for await (const c of req) text += c;
      const body = text ? JSON.parse(text) : {};
      const url = new URL(req.url ?? "/", "http://control");
      const parts = url.pathname.split("/").filter(Boolean);
      if (req.method === "POST" && parts.length === 1 && parts[0] === "pairs") {
        const id = randomBytes(6).toString("hex");
        const token = randomBytes(16).toString("hex");
        const gateway = await startUpstashGateway({ token, redisHost: at.redisHost, redisPort: at.redisPort });
        const proxy = await startNeonProxy({ pgHost: at.host, pgPort: at.port });
        pairs.set(id, { gateway, proxy });
        return send(201, { id, upstashUrl: gateway.url, upstashToken: token, neonProxy: proxy.address });
      }
      const pair = pairs.get(parts[1] ?? "");
      if (parts[0] !== "pairs" || !pair) return send(404, { error: "no such pair" });
      if (req.method === "DELETE" && parts.length === 2) {
        pairs.delete(parts[1]);
        await Promise.all([pair.gateway.close(), pair.proxy.close()]);
        return send(200, { ok: true });
      }
      if (req.method === "POST" && parts[2] === "gateway") {
        pair.gateway.setFault(body.fault ?? null);
        return send(200, { ok: true });
      }
      if (req.method === "GET" && parts[2] === "proxy") {
        return send(200, pair.proxy.connections(url.searchParams.get("reset") === "1"));
      }
      if (req.method === "POST" && parts[2] === "proxy") {
        pair.proxy.setDown(Boolean(body.down));
        return send(200, { ok: true });
      }
      return send(404, { error: "unknown control path" });
    } catch (e) {
      return send(500, { error: (e as Error).message });
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      for (const p of pairs.values()) await Promise.all([p.gateway.close(), p.proxy.close()]);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
