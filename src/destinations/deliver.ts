/**
 * One HTTP delivery: POST the event envelope as JSON to a destination.
 *
 *  - Signed with Standard Webhooks when the destination has a secret: webhook-id is the
 *    event id (stable across attempts, so the receiver can deduplicate), webhook-timestamp
 *    the real time of this attempt (receivers check it against their clock, so it is never
 *    the consumer's injected clock).
 *  - `reflex-fence: <scope>:<token>`: the fencing token of the scope lock the delivery ran
 *    under. It only grows per scope, so a receiver that keeps the highest token seen per scope
 *    and refuses lower ones never applies a delivery from a holder that lost its lock.
 *  - `redirect: "manual"`: a 3xx is a failure ("redirect not followed: <scheme://host>"). A
 *    redirect silently followed would change the method, drop the body or leave the
 *    destination the operator configured.
 *  - The timeout (AbortSignal.timeout) covers the whole exchange, body included.
 *  - Only the first RESPONSE_BODY_LIMIT bytes of the answer are read and kept; the rest is
 *    cancelled (CPU time is billed).
 * Never throws: every result, good or bad, is an attempt to record. Errors name the
 * destination's scheme and host, never its path (a webhook URL's path is its secret).
 */
import { Webhook } from "standardwebhooks";
import { version } from "../../package.json";
import type { Destination } from "../config/destination-specs";
import type { EventEnvelope } from "../events/envelope";

export const USER_AGENT = `reflex-edge/${version}`;
/** Bytes of a response body kept with the attempt. */
export const RESPONSE_BODY_LIMIT = 4096;

export interface AttemptResult {
  ok: boolean;
  statusCode: number | null;
  /** Null on success. */
  error: string | null;
  durationMs: number;
  responseBody: string | null;
}

const signers = new Map<string, Webhook>();
function signer(secret: string): Webhook {
  let w = signers.get(secret);
  if (!w) signers.set(secret, (w = new Webhook(secret)));
  return w;
}

/** The scope lock a delivery runs under: its scope and its grant's fencing token. */
export interface DeliveryFence {
  scope: string;
  token: number;
}

/** The request headers for one delivery (exported for tests and docs). */
export function deliveryHeaders(
  d: Destination,
  event: EventEnvelope,
  body: string,
  now = new Date(),
  fence?: DeliveryFence,
): Record<string, string> {
  const h: Record<string, string> = { ...d.headers, "content-type": "application/json", "user-agent": USER_AGENT };
  // A header value is visible ASCII: other characters of the scope (and %) percent-encoded.
  if (fence) h["reflex-fence"] = `${fence.scope.replace(/[^\x21-\x24\x26-\x7e]/gu, encodeURIComponent)}:${fence.token}`;
  if (d.secret) {
    h["webhook-id"] = event.id;
    h["webhook-timestamp"] = String(Math.floor(now.getTime() / 1000));
    h["webhook-signature"] = signer(d.secret).sign(event.id, now, body);
  }
  return h;
}

async function readLimited(res: Response): Promise<string | null> {
  if (!res.body) return null;
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < RESPONSE_BODY_LIMIT) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const buf = new Uint8Array(Math.min(size, RESPONSE_BODY_LIMIT));
  let off = 0;
  for (const c of chunks) {
    const take = Math.min(c.byteLength, buf.length - off);
    buf.set(c.subarray(0, take), off);
    off += take;
    if (off >= buf.length) break;
  }
  // A cut may split a UTF-8 sequence: decode leniently.
  return new TextDecoder().decode(buf);
}

/** `text` with the destination's URL (and its path, which can be its secret) cut to scheme and host. */
function withoutPath(text: string, url: string): string {
  const u = new URL(url);
  let out = text.split(u.href).join(u.origin).split(url).join(u.origin);
  const rest = u.pathname + u.search;
  if (rest.length > 1) out = out.split(rest).join("/…");
  return out;
}

function describeError(e: unknown, d: Destination): string {
  const name = e instanceof Error ? e.name : "";
  if (name === "TimeoutError" || name === "AbortError") return `timeout after ${d.timeoutMs} ms`;
  const msg = e instanceof Error ? e.message || e.name : String(e);
  return withoutPath(`network error: ${msg}`, d.url).slice(0, 500);
}

/** Where a refused redirect pointed: scheme and host (a path on the destination's host can be its secret). */
function redirectTarget(location: string | null, url: string): string {
  if (location === null) return "(no location)";
  try {
    return new URL(location, url).origin;
  } catch {
    return "(invalid location)";
  }
}

export async function deliver(d: Destination, event: EventEnvelope, fence?: DeliveryFence): Promise<AttemptResult> {
  const body = JSON.stringify(event);
  const started = Date.now();
  const signal = AbortSignal.timeout(d.timeoutMs);
  const elapsed = () => Date.now() - started;
  let res: Response;
  try {
    res = await fetch(d.url, {
      method: "POST",
      headers: deliveryHeaders(d, event, body, new Date(), fence),
      body,
      redirect: "manual",
      signal,
    });
  } catch (e) {
    return {
      ok: false,
      statusCode: null,
      error: describeError(e, d),
      durationMs: elapsed(),
      responseBody: null,
    };
  }
  // The status decides: a body cut short (timeout, reset) only loses what is kept of it. A 2xx
  // means the receiver took the event; failing it would only send a duplicate.
  const responseBody = await readLimited(res).catch(() => null);
  const durationMs = elapsed();
  const s = res.status;
  let error: string | null = null;
  if (s >= 300 && s < 400) error = `redirect not followed: ${redirectTarget(res.headers.get("location"), d.url)}`;
  else if (s < 200 || s >= 300) error = `HTTP ${s}`;
  return { ok: error === null, statusCode: s, error, durationMs, responseBody };
}
