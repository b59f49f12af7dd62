/**
 * `Authorization: Bearer <key>` against API_KEYS.
 *
 * Constant time: the presented key and every configured key are compared as SHA-256
 * digests (equal lengths, so the comparison reveals neither content nor length), and every
 * configured key is compared, so the time does not say which one matched. The returned key
 * id (a digest prefix) names the key in rate-limit keys and logs without exposing it.
 */
import type { Config } from "../config";
import { HTTPProblem } from "../http/problem";
import { constantTimeEqual, sha256, toHex } from "./crypto";

const digests = new WeakMap<Config, Promise<Uint8Array[]>>();

function keyDigests(cfg: Config): Promise<Uint8Array[]> {
  let d = digests.get(cfg);
  if (!d) {
    d = Promise.all(cfg.API_KEYS.map((k) => sha256(k)));
    digests.set(cfg, d);
  }
  return d;
}

function unauthorized(detail: string, message: string, error?: string): HTTPProblem {
  return new HTTPProblem(401, "Unauthorized", detail, {
    errors: [{ header: "authorization", message }],
    headers: { "www-authenticate": error ? `Bearer realm="reflex", error="${error}"` : `Bearer realm="reflex"` },
  });
}

/** Returns the key id of a valid API key; throws a 401 problem otherwise. */
export async function requireApiKey(headers: Headers, cfg: Config): Promise<string> {
  const h = headers.get("authorization");
  if (!h) throw unauthorized("An API key is required.", "missing; expected `Bearer <API key>`");
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(h);
  if (!m)
    throw unauthorized(
      "The Authorization header is not a Bearer token.",
      "expected `Bearer <API key>`",
      "invalid_request",
    );
  const presented = await sha256(m[1]!);
  let match = -1;
  const known = await keyDigests(cfg);
  for (let i = 0; i < known.length; i++) {
    if (constantTimeEqual(presented, known[i]!) && match < 0) match = i;
  }
  if (match < 0) throw unauthorized("The API key is not valid.", "unknown API key", "invalid_token");
  return toHex(presented.subarray(0, 8));
}
