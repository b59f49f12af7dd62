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
 * Limits, each a close code, count every frame, refused or not: a binary frame 1003; a frame
 * over MAX_BODY_BYTES 1009; more than WS_EVENTS_PER_S events in a second, WS_MAX_REFUSED_FRAMES
 * problem frames in a row, or more than WS_MAX_WAITING_FRAMES frames waiting for their
 * answers 1008; the store unavailable 1011 (the frame was not acknowledged: resend what was
 * not); no accepted frame for WS_IDLE_TIMEOUT_S, or WS_MAX_FRAMES frames sent (one
 * invocation's subrequests are bounded), 1000 - reconnect to go on.
 */
import { createRoute } from "@hono/zod-openapi";
import type { Config } from "../config";
import { toProblem } from "../http/error-handler";
import { HTTPProblem } from "../http/problem";
import { createRouter, problemResponse } from "../http/router";
import { batchItems, buildItems, type ItemPath, publishBuilt } from "./accept";
import { requireApiKey } from "./api-key-auth";
import { parseJsonText } from "./body";
import { ingestContext, rateLimit } from "./context";
import { authorizeEvents } from "./grants";
import type { IngestContext } from "./publish";
import { traceIdFrom } from "./trace-id";

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
    'Upgrade with an API key (Authorization: Bearer, or subprotocols `reflex.v1, bearer.<key>`). Each text frame is one event or {"events": [...]}; each is answered after the append with {id|ids, status} or a problem frame. Every frame, refused or not, counts toward the limits. Close codes: 1003 binary frame, 1008 over WS_EVENTS_PER_S, WS_MAX_REFUSED_FRAMES problem frames in a row or too many frames waiting for their answers, 1009 frame over MAX_BODY_BYTES, 1011 store unavailable (resend what was not acknowledged), 1000 no accepted frame for WS_IDLE_TIMEOUT_S or WS_MAX_FRAMES reached.',
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

/**
 * Frames waiting behind the one being handled; one more closes the socket (1008) rather than
 * buffering it (each may be MAX_BODY_BYTES, and the invocation's memory is bounded).
 */
export const WS_MAX_WAITING_FRAMES = 16;

/**
 * One open socket. Every frame is charged on arrival, before it is parsed: its size, then the
 * frame budget (WS_MAX_FRAMES) and the rate (one token per frame; a batch's further events
 * when it is parsed), then the bound on waiting frames. Frames are then handled one at a time,
 * in arrival order. A limit reached on arrival takes no more frames and closes once the
 * frames before it are answered; a limit reached while handling a frame closes at once, so an
 * answer never follows an unanswered frame. Only an accepted frame resets the idle timer.
 */
class Connection {
  private readonly waiting: string[] = [];
  private handling = false;
  private frames = 0;
  private refusedInARow = 0;
  /** Set when a limit was reached on arrival: the close that follows the frames already taken. */
  private ending: { code: number; reason: string } | undefined;
  private idle: ReturnType<typeof setTimeout> | undefined;
  /** The idle timeout passed while a frame was being handled: close unless that frame is accepted. */
  private idleDue = false;
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
    this.ws.addEventListener("message", (m) => this.arrive(m.data));
    this.ws.addEventListener("close", () => this.stop());
    this.ws.addEventListener("error", () => this.stop());
    this.touch();
  }

  private stop(): void {
    this.closed = true;
    this.waiting.length = 0;
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

  /** Takes no more frames; closes once the frames already taken are answered. */
  private end(code: number, reason: string): void {
    this.ending ??= { code, reason };
    if (!this.handling) this.close(this.ending.code, this.ending.reason);
  }

  private idleReason(): string {
    return `idle for ${this.ctx.cfg.WS_IDLE_TIMEOUT_S} s`;
  }

  private touch(): void {
    this.idleDue = false;
    clearTimeout(this.idle);
    this.idle = setTimeout(() => {
      if (this.handling) this.idleDue = true;
      else this.close(CLOSE.normal, this.idleReason());
    }, this.ctx.cfg.WS_IDLE_TIMEOUT_S * 1000);
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

  /** A frame as it arrives: charged against every limit before anything parses it. */
  private arrive(data: unknown): void {
    if (this.closed || this.ending) return;
    const refused = this.charge(data);
    if (refused) this.end(...refused);
    else {
      this.waiting.push(data as string);
      void this.drain();
      if (this.frames >= this.ctx.cfg.WS_MAX_FRAMES)
        this.end(CLOSE.normal, `${this.ctx.cfg.WS_MAX_FRAMES} frames on this connection; reconnect to go on`);
    }
  }

  /** Counts a frame: its size, then the frame budget and the rate, then the frames waiting; the limit it reached, if any. */
  private charge(data: unknown): [code: number, reason: string] | undefined {
    const cfg = this.ctx.cfg;
    if (typeof data !== "string") return [CLOSE.unsupported, "text frames only (JSON)"];
    if (data.length > cfg.MAX_BODY_BYTES || new TextEncoder().encode(data).byteLength > cfg.MAX_BODY_BYTES)
      return [CLOSE.tooBig, `frame larger than ${cfg.MAX_BODY_BYTES} bytes`];
    this.frames++;
    if (!this.take(1)) return [CLOSE.policy, `more than ${cfg.WS_EVENTS_PER_S} events per second`];
    if (this.waiting.length >= WS_MAX_WAITING_FRAMES)
      return [CLOSE.policy, `more than ${WS_MAX_WAITING_FRAMES} frames waiting for their answers`];
    return undefined;
  }

  /** Handles the waiting frames one at a time, then closes if a limit or the idle timeout said so. */
  private async drain(): Promise<void> {
    if (this.handling) return;
    this.handling = true;
    try {
      for (let data = this.waiting.shift(); data !== undefined && !this.closed; data = this.waiting.shift()) {
        await this.frame(data);
        if (this.idleDue) this.close(CLOSE.normal, this.idleReason());
      }
    } finally {
      this.handling = false;
    }
    if (this.ending) this.close(this.ending.code, this.ending.reason);
  }

  private async frame(data: string): Promise<void> {
    const cfg = this.ctx.cfg;
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
      await authorizeEvents(cfg, this.keyId, built.events, at);
      // The frame paid one token on arrival; a batch pays for the rest of its events.
      if (!this.take(built.events.length - 1))
        return this.close(CLOSE.policy, `more than ${cfg.WS_EVENTS_PER_S} events per second`);
      await rateLimit(this.ctx, { kind: "key", id: this.keyId, cost: built.events.length });
      const r = await publishBuilt(this.ctx, built, at);
      if (!batch) this.send({ id: r.ids[0], status: r.duplicate[0] ? "duplicate" : "accepted" });
      else {
        const duplicates = r.ids.filter((_, i) => r.duplicate[i]);
        const status = duplicates.length === r.ids.length ? "duplicate" : "accepted";
        this.send({ ids: r.ids, status, ...(status === "accepted" && duplicates.length ? { duplicates } : {}) });
      }
      this.refusedInARow = 0;
      if (!this.closed) this.touch();
    } catch (e) {
      const p = toProblem(e);
      // The store did not confirm: nothing more is accepted on this socket; the client
      // resends what was not acknowledged on a new one.
      if (p.status >= 500) return this.close(CLOSE.internal, "event store unavailable; resend unacknowledged frames");
      this.send(p.body);
      if (++this.refusedInARow >= cfg.WS_MAX_REFUSED_FRAMES)
        this.close(CLOSE.policy, `${cfg.WS_MAX_REFUSED_FRAMES} refused frames in a row`);
    }
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
