/**
 * Ids of replayed events: a UUIDv5 (RFC 9562, SHA-1 name-based) of the original id in the
 * job's namespace. The same (job, original) pair always gives the same id, so a chunk that
 * is published again after an interruption produces the same events, and history (keyed by
 * id) keeps each one once. Two different jobs replaying the same event give different ids.
 */
function uuidBytes(uuid: string): Uint8Array {
  const hex = uuid.replace(/-/g, "");
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export async function replayId(jobId: string, originalId: string): Promise<string> {
  const name = new TextEncoder().encode(originalId.toLowerCase());
  const input = new Uint8Array(16 + name.length);
  input.set(uuidBytes(jobId), 0);
  input.set(name, 16);
  const b = new Uint8Array(await crypto.subtle.digest("SHA-1", input)).slice(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x50; // version 5
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 9562 variant
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
