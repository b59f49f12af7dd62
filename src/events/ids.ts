/**
 * Deterministic event ids: a SHA-256 of the given parts shaped as a UUID (version 8,
 * "custom", RFC 9562). The same parts always give the same id, so an event built again
 * after a crash or a retry is stored (and deduplicated by receivers) as the same event.
 */
export async function hashedUuid(...parts: Array<string | number>): Promise<string> {
  const bytes = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(parts.join("\u0000"))),
  ).slice(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x80; // version 8
  bytes[8] = (bytes[8]! & 0x3f) | 0x80; // RFC 9562 variant
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
