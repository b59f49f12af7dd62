/**
 * Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature: "v1,<base64>" …),
 * verified with the spec's reference library `standardwebhooks`.
 *
 * The library checks the timestamp against its fixed 5-minute window; a source's shorter
 * `tolerance_s` is checked here first (longer ones are refused by the config schema).
 * It signs the body as a string: ours is the strict UTF-8 decoding of the raw bytes,
 * which re-encodes to exactly those bytes.
 */
import { Webhook, WebhookVerificationError } from "standardwebhooks";
import type { WebhookSource } from "../sources";
import {
  boundedHeader,
  idFromHeader,
  MAX_SIGNATURES,
  outsideTolerance,
  type Scheme,
  type SignedRequest,
  tooManySignatures,
  type Verdict,
} from "./types";

type Source = Extract<WebhookSource, { scheme: "standard-webhooks" }>;

const hooks = new Map<string, Webhook>();

function hookFor(secret: string): Webhook {
  let h = hooks.get(secret);
  if (!h) {
    h = new Webhook(secret);
    hooks.set(secret, h);
  }
  return h;
}

const REQUIRED = ["webhook-id", "webhook-timestamp", "webhook-signature"] as const;

export const standardWebhooks: Scheme<Source> = {
  replayableBody: false,
  checkHeaders(source, headers, now): Verdict {
    for (const h of REQUIRED) {
      const b = boundedHeader(headers, h);
      if (!b.ok) return b;
    }
    // Space-separated "v1,<base64>" entries; the library would try each of them.
    if (headers.get("webhook-signature")!.trim().split(/\s+/).length > MAX_SIGNATURES)
      return tooManySignatures("webhook-signature");
    const ts = headers.get("webhook-timestamp")!.trim();
    if (!/^\d{1,12}$/.test(ts)) return { ok: false, header: "webhook-timestamp", message: "must be Unix seconds" };
    const skew = outsideTolerance(Number(ts), now, source.tolerance_s);
    if (skew !== undefined) {
      return {
        ok: false,
        header: "webhook-timestamp",
        message: `outside the ${source.tolerance_s} s tolerance (${skew} s off)`,
      };
    }
    return { ok: true };
  },
  async verify(source: Source, req: SignedRequest): Promise<Verdict> {
    const pre = standardWebhooks.checkHeaders(source, req.headers, req.now);
    if (!pre.ok) return pre;
    const ts = req.headers.get("webhook-timestamp")!.trim();
    try {
      hookFor(source.secret).verify(
        req.text,
        {
          "webhook-id": req.headers.get("webhook-id")!,
          "webhook-timestamp": ts,
          "webhook-signature": req.headers.get("webhook-signature")!,
        },
        { jsonParse: false },
      );
      return { ok: true };
    } catch (e) {
      const msg = e instanceof WebhookVerificationError ? e.message : "could not be verified";
      const header = /timestamp/i.test(msg) ? "webhook-timestamp" : "webhook-signature";
      return {
        ok: false,
        header,
        message: msg === "No matching signature found" ? "no signature matches the body" : msg,
      };
    }
  },
  deliveryId: (_s, headers) => idFromHeader(headers, "webhook-id", true),
  eventHeaders: () => [],
  secretHeaders: () => ["webhook-signature"],
};
