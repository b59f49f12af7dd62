/** "none": sources explicitly configured `"unsigned": true` (e.g. an internal sender on a private network). */
import type { WebhookSource } from "../sources";
import { idFromHeader, type Scheme } from "./types";

type Source = Extract<WebhookSource, { scheme: "none" }>;

export const unsigned: Scheme<Source> = {
  replayableBody: false,
  checkHeaders: () => ({ ok: true }),
  verify: async () => ({ ok: true }),
  deliveryId: (s, headers) => idFromHeader(headers, s.id_header, false),
  eventHeaders: () => [],
  secretHeaders: () => [],
};
