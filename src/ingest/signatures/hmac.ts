/**
 * Generic "hmac-sha256": the hex or base64 HMAC-SHA256 of the raw body in a configurable
 * header (optionally after a prefix such as "sha256="), for providers without a library
 * of their own (Shopify-style senders and the like). No timestamp, so no
 * tolerance; deduplication only when the source names an `id_header`.
 */

import { constantTimeEqual, fromBase64, fromHex, hmacSha256 } from "../crypto";
import type { WebhookSource } from "../sources";
import { boundedHeader, idFromHeader, type Scheme, type SignedRequest, type Verdict } from "./types";

type Source = Extract<WebhookSource, { scheme: "hmac-sha256" }>;

/** The digest in the source's header, decoded; or the verdict that refuses the header. */
function presented(source: Source, headers: Headers): { ok: true; digest: Uint8Array } | (Verdict & { ok: false }) {
  const b = boundedHeader(headers, source.header);
  if (!b.ok) return b;
  const h = b.value;
  const p = source.prefix;
  if (p && h.slice(0, p.length).toLowerCase() !== p.toLowerCase()) {
    return { ok: false, header: source.header, message: `must start with "${p}"` };
  }
  const digest = h.slice(p.length);
  const got = source.encoding === "hex" ? fromHex(digest) : fromBase64(digest);
  if (!got) return { ok: false, header: source.header, message: `not ${source.encoding}` };
  return { ok: true, digest: got };
}

export const hmacSha256Scheme: Scheme<Source> = {
  replayableBody: true,
  checkHeaders(source, headers): Verdict {
    const p = presented(source, headers);
    return p.ok ? { ok: true } : p;
  },
  async verify(source: Source, req: SignedRequest): Promise<Verdict> {
    const p = presented(source, req.headers);
    if (!p.ok) return p;
    const got = p.digest;
    const expected = await hmacSha256(source.secret, req.raw);
    return constantTimeEqual(got, expected)
      ? { ok: true }
      : { ok: false, header: source.header, message: "does not match the body" };
  },
  deliveryId: (s, headers) => idFromHeader(headers, s.id_header, false),
  eventHeaders: () => [],
  secretHeaders: (s) => [s.header],
};
