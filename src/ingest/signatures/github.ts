/**
 * GitHub: X-Hub-Signature-256 ("sha256=<hex HMAC of the body>"), verified with Octokit's
 * @octokit/webhooks-methods (WebCrypto in workerd, constant-time verify). The delivery id
 * is X-GitHub-Delivery; the event name (X-GitHub-Event) is kept in the event's headers.
 * GitHub has no signed timestamp, so redeliveries are caught by the delivery id alone.
 */
import { verify } from "@octokit/webhooks-methods";
import type { WebhookSource } from "../sources";
import { boundedHeader, idFromHeader, type Scheme, type SignedRequest, type Verdict } from "./types";

type Source = Extract<WebhookSource, { scheme: "github" }>;

const HEADER = "x-hub-signature-256";

const FORM = /^sha256=[0-9a-f]{64}$/i;

export const github: Scheme<Source> = {
  replayableBody: true,
  checkHeaders(_s, headers): Verdict {
    const h = boundedHeader(headers, HEADER);
    if (!h.ok) return h;
    return FORM.test(h.value) ? { ok: true } : { ok: false, header: HEADER, message: "must be sha256=<64 hex digits>" };
  },
  async verify(source: Source, req: SignedRequest): Promise<Verdict> {
    const pre = github.checkHeaders(source, req.headers, req.now);
    if (!pre.ok) return pre;
    const sig = req.headers.get(HEADER)!.trim();
    let ok = false;
    try {
      ok = await verify(source.secret, req.text, sig.toLowerCase());
    } catch {
      ok = false; // the library throws on an empty payload
    }
    return ok ? { ok: true } : { ok: false, header: HEADER, message: "does not match the body" };
  },
  deliveryId: (_s, headers) => idFromHeader(headers, "x-github-delivery", true),
  eventHeaders: () => [
    "x-github-event",
    "x-github-delivery",
    "x-github-hook-id",
    "x-github-hook-installation-target-type",
    "x-github-hook-installation-target-id",
  ],
  secretHeaders: () => [HEADER, "x-hub-signature"],
};
