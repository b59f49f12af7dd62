/** Scheme name -> implementation. Adding a scheme: a file here, an entry below, a variant in ../sources.ts. */
import type { SchemeName, WebhookSource } from "../sources";
import { github } from "./github";
import { hmacSha256Scheme } from "./hmac";
import { unsigned } from "./none";
import { standardWebhooks } from "./standard-webhooks";
import { stripe } from "./stripe";
import type { Scheme } from "./types";

const schemes: { [K in SchemeName]: Scheme<Extract<WebhookSource, { scheme: K }>> } = {
  "standard-webhooks": standardWebhooks,
  github,
  stripe,
  "hmac-sha256": hmacSha256Scheme,
  none: unsigned,
};

export function schemeOf(source: WebhookSource): Scheme {
  return schemes[source.scheme] as Scheme;
}

export type { Scheme, SignedRequest, Verdict } from "./types";
