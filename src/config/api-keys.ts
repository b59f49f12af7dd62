/**
 * API_KEYS: the bearer keys of POST /events, /events/batch and GET /ws, and what each may
 * claim. Two forms:
 *
 *   key-a-0123456789abcdef,key-b-0123456789abcdef          plain CSV: bare keys
 *   [{"key": "key-a-0123456789abcdef", "sources": ["billing", "cron:*"], "types": ["order.*"]},
 *    "key-b-0123456789abcdef"]                              JSON (starts with "["): grants
 *
 * `sources` and `types` are globs (`*` any run of characters); a key without them may use
 * any source or type, except the names reserved below. Reserved names - a configured
 * webhook source's name, a type a trigger declares it publishes - are a key's only when its
 * grant lists that exact name (a glob never grants them), checked at ingest
 * (src/ingest/grants.ts).
 *
 * Problems name the entry by index and the field, never a key.
 */
import { z } from "zod";

export interface ApiKey {
  key: string;
  /** Sources the key may publish under (globs); absent: any but a webhook source's name. */
  sources?: string[];
  /** Types the key may publish (globs); absent: any but a trigger's declared output. */
  types?: string[];
}

const key = z.string().min(16, "each key must be at least 16 characters");
const glob = z.string().min(1, "must not be empty").max(256);
const grant = z.strictObject({
  key,
  sources: z.array(glob).min(1, "must list at least one source (omit it for any)").optional(),
  types: z.array(glob).min(1, "must list at least one type (omit it for any)").optional(),
});

type Entry = { ok: true; value: ApiKey } | { ok: false; issues: Array<{ path: PropertyKey[]; message: string }> };

function parseEntry(item: unknown): Entry {
  if (typeof item === "string") {
    const r = key.safeParse(item.trim());
    return r.success ? { ok: true, value: { key: r.data } } : { ok: false, issues: r.error.issues };
  }
  if (!item || typeof item !== "object" || Array.isArray(item))
    return { ok: false, issues: [{ path: [], message: 'must be a key or {"key", "sources"?, "types"?}' }] };
  const r = grant.safeParse(item);
  return r.success ? { ok: true, value: r.data } : { ok: false, issues: r.error.issues };
}

export interface ParsedApiKeys {
  list: ApiKey[];
  problems: string[];
}

/** Parses API_KEYS (CSV of bare keys, or a JSON array of keys and grants); every problem listed. */
export function parseApiKeys(raw: string | undefined): ParsedApiKeys {
  const text = (raw ?? "").trim();
  let items: unknown[];
  if (text.startsWith("[")) {
    try {
      const json: unknown = JSON.parse(text);
      if (!Array.isArray(json)) throw new Error();
      items = json;
    } catch {
      return { list: [], problems: ["API_KEYS: not valid JSON (a value starting with [ is a JSON array of keys)"] };
    }
  } else {
    items = text
      .split(",")
      .map((x) => x.trim())
      .filter(Boolean);
  }
  const list: ApiKey[] = [];
  const problems: string[] = [];
  const seen = new Map<string, string>();
  items.forEach((item, i) => {
    const r = parseEntry(item);
    if (!r.ok) {
      for (const x of r.issues)
        problems.push(`API_KEYS[${i}]${x.path.map((p) => `.${String(p)}`).join("")}: ${x.message}`);
      return;
    }
    // One key, two grants: which one holds would be arbitrary. The same entry twice is one.
    const earlier = seen.get(r.value.key);
    if (earlier === undefined) {
      seen.set(r.value.key, JSON.stringify(r.value));
      list.push(r.value);
    } else if (earlier !== JSON.stringify(r.value))
      problems.push(`API_KEYS[${i}]: the same key as an earlier entry, with other grants`);
  });
  return { list, problems };
}
