/**
 * `Authorization: Bearer <key>` against API_KEYS.
 *
 * Constant time: the presented key and every configured key are compared as SHA-256
 * digests (equal lengths, so the comparison reveals neither content nor length), and every
 * configured key is compared, so the time does not say which one matched. The returned key
 * id (a digest prefix) names the key in rate-limit keys and logs without exposing it.
 */
import type { Config } from "../config";
import type { ApiKey } from "../config/api-keys";
import { HTTPProblem } from "../http/problem";
import { constantTimeEqual, sha256, toHex } from "./crypto";

interface KnownKeys {
  digests: Uint8Array[];
  /** Key id -> the key's entry (its grants). */
  byId: Map<string, ApiKey>;
}

const known = new WeakMap<Config, Promise<KnownKeys>>();

function knownKeys(cfg: Config): Promise<KnownKeys> {
  let d = known.get(cfg);
  if (!d) {
    d = Promise.all(cfg.API_KEYS.map((k) => sha256(k.key))).then((digests) => ({
      digests,
      byId: new Map(digests.map((x, i) => [keyId(x), cfg.API_KEYS[i]!])),
    }));
    known.set(cfg, d);
  }
  return d;
}

const keyId = (digest: Uint8Array) => toHex(digest.subarray(0, 8));

/** The entry of API_KEYS (with its grants) that a key id from requireApiKey names. */
export async function apiKeyOf(cfg: Config, id: string): Promise<ApiKey | undefined> {
  return (await knownKeys(cfg)).byId.get(id);
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
  const { digests } = await knownKeys(cfg);
  for (let i = 0; i < digests.length; i++) {
    if (constantTimeEqual(presented, digests[i]!) && match < 0) match = i;
  }
  if (match < 0) throw unauthorized("The API key is not valid.", "unknown API key", "invalid_token");
  return keyId(presented);
}
