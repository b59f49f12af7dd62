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
import { idFromHeader, outsideTolerance, type Scheme, type SignedRequest, type Verdict } from "./types";

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
  async verify(source: Source, req: SignedRequest): Promise<Verdict> {
    for (const h of REQUIRED) {
      if (!req.headers.get(h)) return { ok: false, header: h, message: "missing" };
    }
    const ts = req.headers.get("webhook-timestamp")!;
    if (!/^\d{1,12}$/.test(ts.trim()))
      return { ok: false, header: "webhook-timestamp", message: "must be Unix seconds" };
    const skew = outsideTolerance(Number(ts), req.now, source.tolerance_s);
    if (skew !== undefined) {
      return {
        ok: false,
        header: "webhook-timestamp",
        message: `outside the ${source.tolerance_s} s tolerance (${skew} s off)`,
      };
    }
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
