/**
 * DESTINATIONS: HTTP endpoints that receive events, declared in configuration.
 *
 *   [{ "name": "orders", "url": "https://orders.internal.example/hooks/reflex",
 *      "filter": { "types": ["order.*"], "sources": ["shopify"] },
 *      "timeout_ms": 5000, "headers": { "authorization": "Bearer …" },
 *      "secret": "whsec_<base64>", "scope": "order_id" }]
 *
 * Parsed by loadConfig (src/config/index.ts), so a bad value fails at start with problems such as
 * `DESTINATIONS[1] (orders).url: …` - the destination by index and name, then the field;
 * never a value (headers and secrets are credentials).
 *
 * Loop guard: a destination whose host is one of PUBLIC_URL's hosts is refused. The worker
 * answers every path of its hosts (POST /events would re-ingest the event it is delivering),
 * and Workers route a subrequest to the worker's own custom domain or workers.dev host like
 * any other request, so scheme, port and path do not make such a URL safe. The worker
 * cannot learn its own hostnames, hence PUBLIC_URL; without it the check cannot run.
 */
import { z } from "zod";

export interface Destination {
  name: string;
  url: string;
  /** Types and sources as globs ("order.*"); empty list: any. Both must match. */
  filter: { types: string[]; sources: string[] };
  timeoutMs: number;
  /** Extra request headers (e.g. authorization), names lower case. */
  headers: Record<string, string>;
  /** Standard Webhooks secret ("whsec_<base64>"): requests are signed when set. */
  secret?: string;
  /** Dotted path into the envelope whose value is the scope key (default "source"). */
  scope: string;
  /** Deliver each scope's events strictly in arrival order (src/consume/ordered-scopes.ts). */
  ordered: boolean;
  /** Ordered: a dead head resumes the scope ("skip") or keeps it parked ("hold"). */
  onDead: "skip" | "hold";
}

export const DEFAULT_TIMEOUT_MS = 10_000;
/** Longer than this would hold a consumer invocation (and its scope locks) for too long. */
export const MAX_TIMEOUT_MS = 60_000;

/** Headers the deliverer sets itself; a destination may not override them. */
const RESERVED = new Set([
  "content-type",
  "content-length",
  "host",
  "user-agent",
  "connection",
  "transfer-encoding",
  "webhook-id",
  "webhook-timestamp",
  "webhook-signature",
]);

const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
const glob = z.string().min(1, "must not be empty").max(256);
const itemSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, "must be 1-64 letters, digits, '_', '.', '-'"),
  url: z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" }),
  filter: z.strictObject({
    types: z.array(glob).min(1, "must list at least one type (omit it to match any)").optional(),
    sources: z.array(glob).min(1, "must list at least one source (omit it to match any)").optional(),
  }),
  timeout_ms: z.number().int().min(100).max(MAX_TIMEOUT_MS).default(DEFAULT_TIMEOUT_MS),
  headers: z
    .record(
      z.string(),
      z
        .string()
        .max(8192)
        .regex(/^[^\r\n\0]*$/, "must not contain line breaks"),
    )
    // Checked here rather than as a key schema, so that the problem names the header.
    .superRefine((h, ctx) => {
      for (const k of Object.keys(h)) {
        if (!HEADER_NAME.test(k)) ctx.addIssue({ code: "custom", path: [k], message: "must be an HTTP header name" });
        else if (RESERVED.has(k.toLowerCase()))
          ctx.addIssue({ code: "custom", path: [k], message: "is set by the deliverer and cannot be overridden" });
      }
    })
    .default({}),
  secret: z
    .string()
    .regex(/^whsec_[A-Za-z0-9+/]+={0,2}$/, {
      message: "must be a Standard Webhooks secret: whsec_ then base64",
      abort: true,
    })
    .refine((s) => {
      const n = base64Length(s.slice(6));
      return n >= 24 && n <= 64;
    }, "must decode to 24-64 bytes")
    .optional(),
  scope: z
    .string()
    .regex(/^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/, 'must be a dotted field path, e.g. "source" or "order.id"')
    .default("source"),
  ordered: z.boolean().default(false),
  on_dead: z.enum(["skip", "hold"]).default("skip"),
});

function base64Length(b64: string): number {
  const pad = b64.endsWith("==") ? 2 : b64.endsWith("=") ? 1 : 0;
  return Math.floor((b64.length * 3) / 4) - pad;
}

/**
 * A destination's URL as any view shows it: scheme and host (and port), nothing more. Its path
 * and query can be the credential itself (a Slack or Discord webhook URL), and its user info is one.
 */
export function shownUrl(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return "(not a URL)";
  }
}

function hostOf(url: string): string | undefined {
  try {
    return new URL(url).hostname.toLowerCase().replace(/\.$/, "");
  } catch {
    return undefined;
  }
}

export interface ParsedDestinations {
  list: Destination[];
  problems: string[];
}

/**
 * Parses the DESTINATIONS JSON. `publicUrls`: the worker's own URLs (PUBLIC_URL), whose hosts
 * are refused. Returns every problem rather than stopping at the first.
 */
export function parseDestinations(raw: string, publicUrls: string[] = []): ParsedDestinations {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { list: [], problems: ["DESTINATIONS: not valid JSON"] };
  }
  if (!Array.isArray(json)) return { list: [], problems: ["DESTINATIONS: must be a JSON array of destinations"] };

  const selfHosts = new Set(publicUrls.map(hostOf).filter((h): h is string => !!h));
  const problems: string[] = [];
  const list: Destination[] = [];
  const seen = new Set<string>();
  json.forEach((item, i) => {
    const rawName =
      item && typeof item === "object" && typeof (item as { name?: unknown }).name === "string"
        ? (item as { name: string }).name
        : undefined;
    const label = `DESTINATIONS[${i}]${rawName ? ` (${rawName})` : ""}`;
    const r = itemSchema.safeParse(item);
    if (!r.success) {
      for (const issue of r.error.issues) {
        const path = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
        problems.push(`${label}${path}: ${issue.message}`);
      }
      return;
    }
    const d = r.data;
    if (seen.has(d.name)) problems.push(`${label}.name: another destination already has this name`);
    seen.add(d.name);
    const host = hostOf(d.url);
    if (host && selfHosts.has(host)) {
      problems.push(`${label}.url: points at this worker (${host} is in PUBLIC_URL); delivering there would loop`);
    }
    list.push({
      name: d.name,
      url: d.url,
      filter: { types: d.filter.types ?? [], sources: d.filter.sources ?? [] },
      timeoutMs: d.timeout_ms,
      headers: Object.fromEntries(Object.entries(d.headers).map(([k, v]) => [k.toLowerCase(), v])),
      ...(d.secret ? { secret: d.secret } : {}),
      scope: d.scope,
      ordered: d.ordered,
      onDead: d.on_dead,
    });
  });
  return { list, problems };
}
