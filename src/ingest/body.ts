/**
 * Reading a JSON request body strictly, cheapest check first, each failure a problem
 * naming what is wrong:
 *
 *   Content-Type not JSON (or a charset other than UTF-8)  -> 415  header content-type
 *   Content-Encoding other than identity                   -> 415  header content-encoding
 *   larger than MAX_BODY_BYTES (declared or actual)        -> 413
 *   not UTF-8                                              -> 400
 *   nested deeper than MAX_JSON_DEPTH                      -> 400  (checked before parsing)
 *   not JSON                                               -> 400
 *   strings Postgres cannot store (NUL, lone surrogates)   -> 422  path of the string
 *   a key "__proto__", "constructor" or "prototype"        -> 422  path of the key
 *
 * Why a depth scan before JSON.parse: V8's parser is iterative, so 1 MiB of "[[[[…" parses
 * (slowly: ~0.5 s of CPU) into an object whose later JSON.stringify overflows the stack.
 * A linear scan rejects it in about a millisecond.
 */
import { HTTPProblem, pointer } from "../http/problem";

export interface BodyLimits {
  maxBytes: number;
  maxDepth: number;
}

const JSON_MEDIA = /^application\/(?:json|[\w.+-]+\+json)$/;

/** 415 unless the Content-Type is application/json or application/*+json, UTF-8. */
export function requireJsonContentType(headers: Headers): void {
  const ct = headers.get("content-type");
  if (!ct) {
    throw new HTTPProblem(415, "Unsupported media type", "The body must be JSON; Content-Type is missing.", {
      errors: [{ header: "content-type", message: "missing; expected application/json" }],
      headers: { accept: "application/json" },
    });
  }
  const [media, ...params] = ct.split(";");
  const charset = params
    .map((p) => p.trim().split("="))
    .find(([k]) => k?.trim().toLowerCase() === "charset")?.[1]
    ?.trim()
    .replace(/^"|"$/g, "")
    .toLowerCase();
  const ok =
    JSON_MEDIA.test(media!.trim().toLowerCase()) &&
    (charset === undefined || charset === "utf-8" || charset === "utf8");
  if (!ok) {
    throw new HTTPProblem(
      415,
      "Unsupported media type",
      `The body must be JSON (UTF-8); got Content-Type "${ct.slice(0, 100)}".`,
      {
        errors: [{ header: "content-type", message: "expected application/json (charset utf-8)" }],
        headers: { accept: "application/json" },
      },
    );
  }
}

/**
 * 415 unless the body is sent as is. A compressed body would be inflated before any limit
 * could apply to what it expands to (and signatures cover the bytes as sent), so none is
 * accepted; `identity` is the only coding.
 */
export function requireIdentityEncoding(headers: Headers): void {
  const ce = headers.get("content-encoding");
  if (ce === null) return;
  const codings = ce
    .split(",")
    .map((x) => x.trim().toLowerCase())
    .filter(Boolean);
  if (codings.every((x) => x === "identity")) return;
  throw new HTTPProblem(
    415,
    "Unsupported media type",
    `Content-Encoding "${ce.slice(0, 100)}" is not accepted; send the body uncompressed.`,
    {
      errors: [{ header: "content-encoding", message: "only identity (no compression) is accepted" }],
      headers: { "accept-encoding": "identity" },
    },
  );
}

/** Content type and encoding: the header checks of a JSON body, before any of it is read. */
export function requireJsonHeaders(headers: Headers): void {
  requireJsonContentType(headers);
  requireIdentityEncoding(headers);
}

function tooLarge(maxBytes: number, what: string): HTTPProblem {
  return new HTTPProblem(413, "Content too large", `${what}; the limit is ${maxBytes} bytes.`, {
    errors: [{ path: "", message: `body exceeds ${maxBytes} bytes` }],
    max_bytes: maxBytes,
  });
}

/** The raw body, at most `maxBytes`: refused from Content-Length when declared, else while reading. */
/** 413 when Content-Length declares more than `maxBytes` (checked before anything is read). */
export function refuseDeclaredSize(headers: Headers, maxBytes: number): void {
  const declared = headers.get("content-length");
  if (declared !== null && /^\d+$/.test(declared) && Number(declared) > maxBytes) {
    throw tooLarge(maxBytes, `Content-Length is ${declared}`);
  }
}

export async function readBodyBytes(req: Request, maxBytes: number): Promise<Uint8Array> {
  refuseDeclaredSize(req.headers, maxBytes);
  if (!req.body) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge(maxBytes, "The body is larger than allowed");
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

// ignoreBOM keeps a BOM in the text, so the text re-encodes to exactly the bytes received
// (signature libraries take strings; see src/ingest/signatures).
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function malformed(detail: string, message: string): HTTPProblem {
  return new HTTPProblem(400, "Malformed JSON", detail, { errors: [{ path: "", message }] });
}

/** The body as text; 400 when it is not valid UTF-8 (JSON must be, RFC 8259). */
export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw malformed("The body is not valid UTF-8.", "invalid UTF-8 byte sequence");
  }
}

/**
 * Scans JSON text for nesting depth (outside strings) and for \u escapes that may hide a
 * NUL or a lone surrogate. Returns the offset where `maxDepth` is exceeded, or -1.
 */
function scan(text: string, maxDepth: number): { tooDeepAt: number; suspectEscape: boolean } {
  let depth = 0;
  let inString = false;
  let suspectEscape = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) {
        const n = text.charCodeAt(i + 1);
        if (n === 0x75 /* u */) {
          const hex = text.slice(i + 2, i + 6).toLowerCase();
          if (hex === "0000" || (hex[0] === "d" && hex[1]! >= "8")) suspectEscape = true;
        }
        i++;
      } else if (c === 0x22 /* " */) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxDepth) return { tooDeepAt: i, suspectEscape };
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return { tooDeepAt: -1, suspectEscape };
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function badString(s: string): string | undefined {
  if (s.includes("\u0000")) return "contains a NUL character (\\u0000), which cannot be stored";
  if (LONE_SURROGATE.test(s)) return "contains an unpaired UTF-16 surrogate, which cannot be stored";
  return undefined;
}

/**
 * Keys that reach an object's prototype when assigned with `obj[key] = value` (or that code
 * may treat as one): refused at any depth, so no later copy of the input can be polluted.
 */
const PROTOTYPE_KEYS = new Set(["__proto__", "constructor", "prototype"]);
// A cheap pre-check of the text: such a key is either spelt out or written with \u00XX escapes.
const MAYBE_PROTOTYPE_KEY = /__proto__|constructor|prototype|\\u00[0-7]/;

/** First string (key or value) that Postgres jsonb would refuse, or prototype key, with its JSON Pointer. */
function findUnstorableString(root: unknown, protoKeys: boolean): { path: string; message: string } | undefined {
  const stack: Array<{ v: unknown; path: PropertyKey[] }> = [{ v: root, path: [] }];
  while (stack.length) {
    const { v, path } = stack.pop()!;
    if (typeof v === "string") {
      const m = badString(v);
      if (m) return { path: pointer(path), message: m };
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], path: [...path, i] });
    } else if (v && typeof v === "object") {
      for (const [k, x] of Object.entries(v)) {
        if (protoKeys && PROTOTYPE_KEYS.has(k))
          return { path: pointer([...path, k]), message: `the key "${k}" is not accepted (prototype pollution)` };
        const m = badString(k);
        if (m) return { path: pointer([...path, k]), message: `key ${m}` };
        stack.push({ v: x, path: [...path, k] });
      }
    }
  }
  return undefined;
}

/** Parses JSON text under the depth limit; rejects strings that cannot be stored. */
export function parseJsonText(text: string, maxDepth: number): unknown {
  const { tooDeepAt, suspectEscape } = scan(text, maxDepth);
  if (tooDeepAt >= 0) {
    throw malformed(
      `JSON is nested deeper than ${maxDepth} levels.`,
      `nesting exceeds ${maxDepth} levels at character ${tooDeepAt}`,
    );
  }
  if (text.length === 0) throw malformed("The body is empty.", "empty body; expected a JSON value");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw malformed("The body is not valid JSON.", (e as Error).message);
  }
  const protoKeys = MAYBE_PROTOTYPE_KEY.test(text);
  if (suspectEscape || protoKeys) {
    const bad = findUnstorableString(value, protoKeys);
    if (bad) {
      const detail = bad.message.includes("prototype") ? "A key is not accepted." : "A string cannot be stored.";
      throw new HTTPProblem(422, "Invalid fields", detail, { errors: [bad] });
    }
  }
  return value;
}

/** Content type, size, UTF-8, depth, JSON: the whole strict read, for routes that need no raw bytes. */
export async function readJson(req: Request, limits: BodyLimits): Promise<unknown> {
  requireJsonHeaders(req.headers);
  const bytes = await readBodyBytes(req, limits.maxBytes);
  return parseJsonText(decodeUtf8(bytes), limits.maxDepth);
}
