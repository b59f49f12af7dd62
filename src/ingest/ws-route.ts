/**
 * GET /ws: typed events over a WebSocket, for clients that keep a connection open.
 *
 * The upgrade is refused, with an HTTP problem and before any socket exists, unless it is a
 * WebSocket upgrade (426) carrying a valid API key (401): in `Authorization: Bearer <key>`,
 * or, for browsers (which cannot set headers on a WebSocket), as the subprotocols
 * `reflex.v1, bearer.<key>` - the server then selects `reflex.v1`, never echoing the key.
 *
 * Each text frame is one event or {"events": [...]}, checked exactly as POST /events and
 * /events/batch are (./accept.ts), with meta.ingress {kind: "ws", key}. Frames are handled
 * one at a time, in order; each is answered, only after the append succeeded, with
 * {"id", "status": "accepted" | "duplicate"} (or {"ids", ...}), or with a problem frame
 * (the HTTP problem body: status, title, errors) for which nothing was stored.
 *
 * Limits, each a close code: a binary frame 1003; a frame over MAX_BODY_BYTES 1009; more
 * than WS_EVENTS_PER_S events in a second 1008; the store unavailable 1011 (the frame was
 * not acknowledged: resend what was not); silent for WS_IDLE_TIMEOUT_S, or WS_MAX_FRAMES
 * frames sent (one invocation's subrequests are bounded), 1000 - reconnect to go on.
 */
import { createRoute } from "@hono/zod-openapi";
import type { Config } from "../config";
import { toProblem } from "../http/errors";
import { HTTPProblem } from "../http/problem";
import { createRouter, problemResponse } from "../http/router";
import { batchItems, buildItems, type ItemPath, publishBuilt } from "./accept";
import { requireApiKey } from "./auth";
import { parseJsonText } from "./body";
import { ingestContext, rateLimit } from "./context";
import type { IngestContext } from "./publish";
import { traceIdFrom } from "./trace";

export const WS_PROTOCOL = "reflex.v1";
const BEARER_PROTOCOL = "bearer.";

/** Close codes (RFC 6455 section 7.4.1). */
export const CLOSE = {
  normal: 1000,
  unsupported: 1003,
  policy: 1008,
  tooBig: 1009,
  internal: 1011,
} as const;

const route = createRoute({
  method: "get",
  path: "/ws",
  tags: ["Ingest"],
  summary: "Publish events over a WebSocket",
  description:
    'Upgrade with an API key (Authorization: Bearer, or subprotocols `reflex.v1, bearer.<key>`). Each text frame is one event or {"events": [...]}; each is answered after the append with {id|ids, status} or a problem frame. Close codes: 1003 binary frame, 1008 over WS_EVENTS_PER_S, 1009 frame over MAX_BODY_BYTES, 1011 store unavailable (resend what was not acknowledged), 1000 idle or WS_MAX_FRAMES reached.',
  security: [{ apiKey: [] }],
  responses: {
    101: { description: "Switching protocols: the socket is open" },
    401: problemResponse("Missing or unknown API key: no socket is opened"),
    426: problemResponse("Not a WebSocket upgrade"),
  },
});

/** The API key of an upgrade, and the subprotocol to select; throws a 401 problem. */
async function credentials(headers: Headers, cfg: Config): Promise<{ keyId: string; protocol?: string }> {
  const offered = (headers.get("sec-websocket-protocol") ?? "")
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);
  const protocol = offered.includes(WS_PROTOCOL) ? WS_PROTOCOL : undefined;
  const inProtocol = offered.find((p) => p.startsWith(BEARER_PROTOCOL));
  if (headers.has("authorization") || !inProtocol) return { keyId: await requireApiKey(headers, cfg), protocol };
  if (!protocol) {
    throw new HTTPProblem(401, "Unauthorized", `A key in the subprotocols needs "${WS_PROTOCOL}" offered beside it.`, {
      errors: [{ header: "sec-websocket-protocol", message: `offer "${WS_PROTOCOL}, bearer.<API key>"` }],
    });
  }
  const key = inProtocol.slice(BEARER_PROTOCOL.length);
  return { keyId: await requireApiKey(new Headers({ authorization: `Bearer ${key}` }), cfg), protocol };
}

const one: ItemPath = () => "";
const inBatch: ItemPath = (i) => `/events/${i}`;

function isBatch(v: unknown): boolean {
  return typeof v === "object" && v !== null && !Array.isArray(v) && "events" in v && !("type" in v);
}

/** One open socket: frames handled one at a time, in arrival order. */
class Connection {
  private queue: Promise<void> = Promise.resolve();
  private storeFrames = 0;
  private idle: ReturnType<typeof setTimeout> | undefined;
  private tokens: number;
  private refilledAt = Date.now();
  private closed = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly ctx: IngestContext,
    private readonly keyId: string,
    private readonly traceId: string,
  ) {
    this.tokens = ctx.cfg.WS_EVENTS_PER_S;
  }

  start(): void {
    this.ws.addEventListener("message", (m) => {
      this.queue = this.queue.then(() => this.frame(m.data));
    });
    this.ws.addEventListener("close", () => this.stop());
    this.ws.addEventListener("error", () => this.stop());
    this.touch();
  }

  private stop(): void {
    this.closed = true;
    clearTimeout(this.idle);
  }

  private close(code: number, reason: string): void {
    if (this.closed) return;
    this.stop();
    try {
      this.ws.close(code, reason.slice(0, 120));
    } catch {
      // already closing
    }
  }

  private touch(): void {
    clearTimeout(this.idle);
    this.idle = setTimeout(
      () => this.close(CLOSE.normal, `idle for ${this.ctx.cfg.WS_IDLE_TIMEOUT_S} s`),
      this.ctx.cfg.WS_IDLE_TIMEOUT_S * 1000,
    );
  }

  private send(v: unknown): void {
    if (!this.closed) this.ws.send(JSON.stringify(v));
  }

  /** Token bucket: WS_EVENTS_PER_S events, refilled continuously. */
  private take(n: number): boolean {
    const rate = this.ctx.cfg.WS_EVENTS_PER_S;
    const now = Date.now();
    this.tokens = Math.min(rate, this.tokens + ((now - this.refilledAt) / 1000) * rate);
    this.refilledAt = now;
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }

  private async frame(data: unknown): Promise<void> {
    if (this.closed) return;
    this.touch();
    const cfg = this.ctx.cfg;
    if (typeof data !== "string") return this.close(CLOSE.unsupported, "text frames only (JSON)");
    if (data.length > cfg.MAX_BODY_BYTES || new TextEncoder().encode(data).byteLength > cfg.MAX_BODY_BYTES)
      return this.close(CLOSE.tooBig, `frame larger than ${cfg.MAX_BODY_BYTES} bytes`);
    try {
      const value = parseJsonText(data, cfg.MAX_JSON_DEPTH);
      const batch = isBatch(value);
      const at = batch ? inBatch : one;
      const items = batch ? batchItems(value, cfg.MAX_BATCH_EVENTS) : [value];
      const built = await buildItems(
        items,
        {
          traceId: this.traceId,
          now: new Date(),
          ingress: { kind: "ws", key: this.keyId },
          maxFutureSkewS: cfg.EVENT_MAX_FUTURE_SKEW_S,
        },
        at,
      );
      if (!this.take(built.events.length))
        return this.close(CLOSE.policy, `more than ${cfg.WS_EVENTS_PER_S} events per second`);
      this.storeFrames++;
      await rateLimit(this.ctx, { kind: "key", id: this.keyId, cost: built.events.length });
      const r = await publishBuilt(this.ctx, built, at);
      if (!batch) this.send({ id: r.ids[0], status: r.duplicate[0] ? "duplicate" : "accepted" });
      else {
        const duplicates = r.ids.filter((_, i) => r.duplicate[i]);
        const status = duplicates.length === r.ids.length ? "duplicate" : "accepted";
        this.send({ ids: r.ids, status, ...(status === "accepted" && duplicates.length ? { duplicates } : {}) });
      }
    } catch (e) {
      const p = toProblem(e);
      // The store did not confirm: nothing more is accepted on this socket; the client
      // resends what was not acknowledged on a new one.
      if (p.status >= 500) return this.close(CLOSE.internal, "event store unavailable; resend unacknowledged frames");
      this.send(p.body);
    }
    if (this.storeFrames >= cfg.WS_MAX_FRAMES)
      this.close(CLOSE.normal, `${cfg.WS_MAX_FRAMES} frames on this connection; reconnect to go on`);
  }
}

export const wsRouter = createRouter().openapi(route, async (c) => {
  const cfg = c.var.config;
  const headers = c.req.raw.headers;
  if ((headers.get("upgrade") ?? "").toLowerCase() !== "websocket") {
    throw new HTTPProblem(426, "Upgrade required", "GET /ws is a WebSocket endpoint: send Upgrade: websocket.", {
      errors: [{ header: "upgrade", message: "expected websocket" }],
      headers: { upgrade: "websocket" },
    });
  }
  const { keyId, protocol } = await credentials(headers, cfg);
  const pair = new WebSocketPair();
  const [client, server] = Object.values(pair) as [WebSocket, WebSocket];
  server.accept();
  new Connection(server, ingestContext(c, cfg), keyId, traceIdFrom(headers)).start();
  return new Response(null, {
    status: 101,
    webSocket: client,
    ...(protocol ? { headers: { "sec-websocket-protocol": protocol } } : {}),
  }) as never;
});
