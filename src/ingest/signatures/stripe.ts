/**
 * Stripe: `Stripe-Signature: t=<unix s>,v1=<hex HMAC-SHA256 of "t.body">[,v1=…]`, with a
 * timestamp tolerance; the delivery id is the event id (`id` in the body).
 *
 * Why not the `stripe` package: its verifier (webhooks.constructEventAsync) comes with the
 * whole API client, several hundred KB in a worker that must start fast, for twenty lines
 * of documented HMAC. This follows Stripe's documented scheme (any v1 may match, so secret
 * rolls work; v0 and other schemes are ignored) and the tests sign with the stripe
 * package's own generateTestHeaderStringAsync, so compatibility is what they check.
 */

import { constantTimeEqual, fromHex, hmacSha256, utf8Bytes } from "../crypto";
import type { WebhookSource } from "../sources";
import {
  boundedHeader,
  MAX_SIGNATURES,
  outsideTolerance,
  type Scheme,
  type SignedRequest,
  tooManySignatures,
  type Verdict,
  validDeliveryId,
} from "./types";

type Source = Extract<WebhookSource, { scheme: "stripe" }>;

const HEADER = "stripe-signature";

function parse(header: string): { t?: number; v1: string[] } {
  const out: { t?: number; v1: string[] } = { v1: [] };
  for (const part of header.split(",")) {
    const i = part.indexOf("=");
    if (i < 0) continue;
    const k = part.slice(0, i).trim();
    const v = part.slice(i + 1).trim();
    if (k === "t" && /^\d{1,12}$/.test(v)) out.t = Number(v);
    else if (k === "v1") out.v1.push(v);
  }
  return out;
}

/** The parsed header, or the verdict that refuses it from the headers alone. */
function parsed(headers: Headers): { ok: true; t: number; v1: string[] } | (Verdict & { ok: false }) {
  const b = boundedHeader(headers, HEADER);
  if (!b.ok) return b;
  const { t, v1 } = parse(b.value);
  if (t === undefined) return { ok: false, header: HEADER, message: "no timestamp (t=)" };
  if (v1.length === 0) return { ok: false, header: HEADER, message: "no v1 signature" };
  if (v1.length > MAX_SIGNATURES) return tooManySignatures(HEADER);
  return { ok: true, t, v1 };
}

export const stripe: Scheme<Source> = {
  replayableBody: false,
  // The timestamp is checked only once the signature matched (a forged t= says nothing);
  // before the body is read, only the header's form and size.
  checkHeaders(_s, headers): Verdict {
    const p = parsed(headers);
    return p.ok ? { ok: true } : p;
  },
  async verify(source: Source, req: SignedRequest): Promise<Verdict> {
    const p = parsed(req.headers);
    if (!p.ok) return p;
    const { t, v1 } = p;
    const expected = await hmacSha256(source.secret, utf8Bytes(`${t}.`), req.raw);
    let match = false;
    for (const s of v1) {
      const got = fromHex(s);
      if (got && constantTimeEqual(got, expected)) match = true;
    }
    if (!match) return { ok: false, header: HEADER, message: "no v1 signature matches the body" };
    const skew = outsideTolerance(t, req.now, source.tolerance_s);
    if (skew !== undefined)
      return {
        ok: false,
        header: HEADER,
        message: `timestamp outside the ${source.tolerance_s} s tolerance (${skew} s off)`,
      };
    return { ok: true };
  },
  deliveryId(_s, _h, body) {
    const id = body && typeof body === "object" && !Array.isArray(body) ? (body as { id?: unknown }).id : undefined;
    if (typeof id !== "string" || !validDeliveryId(id)) {
      return {
        ok: false,
        error: { path: "/id", message: "a Stripe event needs its event id (string) for deduplication" },
      };
    }
    return { ok: true, id };
  },
  eventHeaders: () => [],
  secretHeaders: () => [HEADER],
};
