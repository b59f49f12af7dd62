/**
 * Deterministic event ids: an HMAC-SHA256 (WebCrypto) of the given parts, keyed with the
 * server's EVENT_ID_SECRET, shaped as a UUID (version 8, "custom", RFC 9562). The same parts
 * always give the same id, so an event built again after a crash or a retry is stored (and
 * deduplicated by receivers) as the same event; without the secret nobody can compute an id
 * in advance and claim it with an event of their own.
 */
import type { Config } from "../config";

const enc = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

/**
 * The HMAC key of derived ids (imported once per isolate and secret). Without
 * EVENT_ID_SECRET (local development only: the configuration refuses it elsewhere), a key
 * derived from DATABASE_URL.
 */
export function derivedIdKey(cfg: Pick<Config, "EVENT_ID_SECRET" | "DATABASE_URL">): Promise<CryptoKey> {
  const secret = cfg.EVENT_ID_SECRET ?? `reflex derived ids\u0000${cfg.DATABASE_URL}`;
  let k = keys.get(secret);
  if (!k) {
    if (keys.size > 16) keys.clear();
    k = crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    keys.set(secret, k);
  }
  return k;
}

/** The id of `parts` under `key`. */
export async function keyedUuid(
  key: CryptoKey | Promise<CryptoKey>,
  ...parts: Array<string | number>
): Promise<string> {
  const mac = await crypto.subtle.sign("HMAC", await key, enc.encode(parts.join("\u0000")));
  const bytes = new Uint8Array(mac).slice(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x80; // version 8
  bytes[8] = (bytes[8]! & 0x3f) | 0x80; // RFC 9562 variant
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
