/**
 * WEBHOOK_SOURCES: which sources exist and how each one signs.
 *
 *   {
 *     "billing": { "scheme": "stripe",            "secret": "whsec_…", "tolerance_s": 300 },
 *     "gh":      { "scheme": "github",            "secret": "…" },
 *     "svix":    { "scheme": "standard-webhooks", "secret": "whsec_<base64>", "tolerance_s": 300 },
 *     "shop":    { "scheme": "hmac-sha256",       "secret": "…", "header": "x-shop-hmac-sha256",
 *                  "encoding": "base64", "prefix": "", "id_header": "x-shop-webhook-id" },
 *     "lab":     { "scheme": "none", "unsigned": true, "id_header": "x-request-id" }
 *   }
 *
 * Optional on every source: "headers": extra request headers (lower case) to keep in the
 * event, besides content-type, user-agent and the scheme's event-type headers. Credentials
 * and signature headers are never kept, even if listed.
 *
 * Secrets must be at least 24 bytes (a whsec_ secret: after base64 decoding); a source's
 * tolerance_s may not exceed DEDUPE_WINDOW_S.
 *
 * Invalid JSON or fields raise ConfigError (answered as 500 "Server misconfigured", naming
 * the field - never a secret).
 */
import { z } from "zod";
import type { Config } from "../config";
import { ConfigError } from "../errors";

/** Shortest secret accepted, bytes: a shorter HMAC key can be guessed offline from one captured delivery. */
export const MIN_SECRET_BYTES = 24;
const secret = z
  .string()
  .refine(
    (v) => new TextEncoder().encode(v).byteLength >= MIN_SECRET_BYTES,
    `must be at least ${MIN_SECRET_BYTES} bytes`,
  );
/** A whsec_ secret's strength is that of the bytes after the prefix (base64-decoded). */
function whsecBytes(v: string): number {
  try {
    return atob(v.replace(/^whsec_/, "")).length;
  } catch {
    return 0;
  }
}
// The standardwebhooks library fixes its timestamp window at 5 minutes; a longer one cannot be honoured.
const tolerance = (max: number) => z.number().int().min(1).max(max).default(300);
const headerName = z
  .string()
  .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, "must be an HTTP header name")
  .transform((s) => s.toLowerCase());
const common = { headers: z.array(headerName).max(32).default([]) };

const sourceSchema = z.discriminatedUnion("scheme", [
  z.strictObject({
    scheme: z.literal("standard-webhooks"),
    secret: z
      .string()
      .regex(/^(whsec_)?[A-Za-z0-9+/]+={0,2}$/, "must be a whsec_ secret (base64 after the prefix)")
      .refine((v) => whsecBytes(v) >= MIN_SECRET_BYTES, `must decode to at least ${MIN_SECRET_BYTES} bytes`),
    tolerance_s: tolerance(300),
    ...common,
  }),
  z.strictObject({ scheme: z.literal("github"), secret, ...common }),
  z.strictObject({ scheme: z.literal("stripe"), secret, tolerance_s: tolerance(86_400), ...common }),
  z.strictObject({
    scheme: z.literal("hmac-sha256"),
    secret,
    header: headerName.default("x-signature"),
    encoding: z.enum(["hex", "base64"]).default("hex"),
    /** Text before the digest in the header, e.g. "sha256=". */
    prefix: z.string().max(32).default(""),
    /** Header carrying the delivery id used for deduplication (none: no deduplication). */
    id_header: headerName.optional(),
    ...common,
  }),
  z.strictObject({
    scheme: z.literal("none"),
    unsigned: z.literal(true, 'a source without signatures must say "unsigned": true'),
    id_header: headerName.optional(),
    ...common,
  }),
]);

export type WebhookSource = z.output<typeof sourceSchema> & { name: string };
export type SchemeName = WebhookSource["scheme"];

const SOURCE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

const cache = new WeakMap<Config, Map<string, WebhookSource>>();

/** The configured sources (parsed once per Config). Throws ConfigError naming each bad field. */
export function webhookSources(cfg: Config): Map<string, WebhookSource> {
  const hit = cache.get(cfg);
  if (hit) return hit;
  let raw: unknown;
  try {
    raw = JSON.parse(cfg.WEBHOOK_SOURCES);
  } catch {
    throw new ConfigError(["WEBHOOK_SOURCES: not valid JSON"]);
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(["WEBHOOK_SOURCES: must be a JSON object of source name -> settings"]);
  }
  const out = new Map<string, WebhookSource>();
  const problems: string[] = [];
  for (const [name, settings] of Object.entries(raw)) {
    if (!SOURCE_NAME.test(name))
      problems.push(`WEBHOOK_SOURCES.${name}: source names are letters, digits and _.:- (at most 128)`);
    const parsed = sourceSchema.safeParse(settings);
    if (!parsed.success) {
      for (const i of parsed.error.issues)
        problems.push(`WEBHOOK_SOURCES.${[name, ...i.path.map(String)].join(".")}: ${i.message}`);
    } else {
      const tolerance = "tolerance_s" in parsed.data ? parsed.data.tolerance_s : undefined;
      // A delivery must be remembered for as long as its signature stays valid: otherwise a
      // capture re-sent after its dedupe key expired would pass as new.
      if (tolerance !== undefined && tolerance > cfg.DEDUPE_WINDOW_S)
        problems.push(
          `WEBHOOK_SOURCES.${name}.tolerance_s: ${tolerance} s is longer than DEDUPE_WINDOW_S (${cfg.DEDUPE_WINDOW_S} s); a replay after the dedupe window would be accepted`,
        );
      out.set(name, { ...parsed.data, name });
    }
  }
  if (problems.length) throw new ConfigError(problems);
  cache.set(cfg, out);
  return out;
}
