/**
 * A signature scheme: how a provider signs a delivery, where its delivery id and event
 * type travel, and which headers are credentials (never copied into the event).
 */
import type { WebhookSource } from "../sources";

export interface SignedRequest {
  headers: Headers;
  /** The body exactly as received. */
  raw: Uint8Array;
  /** The same body as UTF-8 text (re-encodes to `raw` byte for byte: the decoder keeps BOMs and is fatal). */
  text: string;
  /** Receive time, ms since the epoch. */
  now: number;
}

export type Verdict = { ok: true } | { ok: false; header: string; message: string };

export type DeliveryId =
  | { ok: true; id: string | null }
  | { ok: false; error: { header: string; message: string } | { path: string; message: string } };

export interface Scheme<S extends WebhookSource = WebhookSource> {
  /**
   * What can be refused from the headers alone, before the body is read or hashed: missing
   * or malformed signature headers, too many signatures, a stale timestamp.
   */
  checkHeaders(source: S, headers: Headers, now: number): Verdict;
  /**
   * The signature covers neither a timestamp nor the delivery id (github, hmac-sha256): a
   * captured delivery re-sent under a fresh delivery id would verify again, so such
   * deliveries are also deduplicated on a digest of the signed body.
   */
  readonly replayableBody: boolean;
  /** The signature over the raw body (checkHeaders passed). */
  verify(source: S, req: SignedRequest): Promise<Verdict>;
  /** The provider's delivery id (dedupe key), from a header or the parsed body; null when the source has none. */
  deliveryId(source: S, headers: Headers, body: unknown): DeliveryId;
  /** Headers worth keeping in the event (the provider's event type and the like). */
  eventHeaders(source: S): string[];
  /** Headers that carry credentials or signatures: never kept. */
  secretHeaders(source: S): string[];
}

/**
 * Bounds on signature headers: a header longer than this, or listing more signatures, is
 * refused before any MAC is computed, so one request cannot make the worker compute
 * hundreds (a secret roll needs two or three).
 */
export const MAX_SIGNATURE_HEADER_CHARS = 1024;
export const MAX_SIGNATURES = 5;

/** The header's value when present and within MAX_SIGNATURE_HEADER_CHARS; else the verdict that refuses it. */
export function boundedHeader(headers: Headers, name: string): { ok: true; value: string } | (Verdict & { ok: false }) {
  const v = headers.get(name)?.trim();
  if (!v) return { ok: false, header: name, message: "missing" };
  if (v.length > MAX_SIGNATURE_HEADER_CHARS)
    return { ok: false, header: name, message: `longer than ${MAX_SIGNATURE_HEADER_CHARS} characters` };
  return { ok: true, value: v };
}

export function tooManySignatures(header: string): Verdict & { ok: false } {
  return { ok: false, header, message: `more than ${MAX_SIGNATURES} signatures` };
}

const DELIVERY_ID = /^[\x21-\x7e]{1,256}$/;

/** Delivery id from a header; `required`: missing is an error (the provider always sends it). */
export function idFromHeader(headers: Headers, name: string | undefined, required: boolean): DeliveryId {
  if (!name) return { ok: true, id: null };
  const v = headers.get(name)?.trim();
  if (!v)
    return required
      ? { ok: false, error: { header: name, message: "missing; the delivery id is required" } }
      : { ok: true, id: null };
  if (!DELIVERY_ID.test(v))
    return { ok: false, error: { header: name, message: "must be 1-256 printable ASCII characters" } };
  return { ok: true, id: v };
}

export function validDeliveryId(v: string): boolean {
  return DELIVERY_ID.test(v);
}

/** Seconds between a provider's timestamp and now, when it is outside the tolerance; undefined when inside. */
export function outsideTolerance(timestampS: number, nowMs: number, toleranceS: number): number | undefined {
  const skew = Math.abs(nowMs / 1000 - timestampS);
  return skew > toleranceS ? Math.round(skew) : undefined;
}
