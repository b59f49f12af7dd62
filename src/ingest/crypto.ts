/**
 * Small WebCrypto helpers for credentials and signatures: SHA-256, HMAC-SHA-256, and a
 * constant-time comparison. (workerd has crypto.subtle.timingSafeEqual, Node does not;
 * this one runs in both and is what the code relies on.)
 */
const enc = new TextEncoder();

export function utf8Bytes(s: string): Uint8Array {
  return enc.encode(s);
}

/** Equal-length byte arrays compared without an early exit. Different lengths: false at once (lengths are not secret here). */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  let diff = 0;
  for (let i = 0; i < a.byteLength; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

export async function sha256(data: Uint8Array | string): Promise<Uint8Array> {
  const bytes = typeof data === "string" ? enc.encode(data) : data;
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

const keyCache = new Map<string, Promise<CryptoKey>>();

/** HMAC-SHA-256 key for a secret (cached per isolate: import costs more than the MAC of a small body). */
export function hmacKey(secret: Uint8Array | string): Promise<CryptoKey> {
  const raw = typeof secret === "string" ? enc.encode(secret) : secret;
  const id = toHex(raw);
  let k = keyCache.get(id);
  if (!k) {
    if (keyCache.size > 256) keyCache.clear();
    k = crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    keyCache.set(id, k);
  }
  return k;
}

export async function hmacSha256(secret: Uint8Array | string, ...parts: Uint8Array[]): Promise<Uint8Array> {
  const data = parts.length === 1 ? parts[0]! : concat(parts);
  return new Uint8Array(await crypto.subtle.sign("HMAC", await hmacKey(secret), data));
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

export function toHex(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += b[i]!.toString(16).padStart(2, "0");
  return s;
}

/** Hex -> bytes; undefined when not hex. */
export function fromHex(s: string): Uint8Array | undefined {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) return undefined;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Base64 or base64url -> bytes; undefined when not base64. */
export function fromBase64(s: string): Uint8Array | undefined {
  const std = s.replace(/-/g, "+").replace(/_/g, "/");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(std)) return undefined;
  try {
    const bin = atob(std.padEnd(std.length + ((4 - (std.length % 4)) % 4), "="));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return undefined;
  }
}
