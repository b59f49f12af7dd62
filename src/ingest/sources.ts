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
 * A source with an invalid field is refused on its own route only (503 naming the field, never
 * a secret); the other sources keep working. WEBHOOK_SOURCES that is not a JSON object leaves
 * every webhook route answering 503; POST /events is not affected either way.
 */
import { z } from "zod";
import type { Config } from "../config";
import { ConfigError } from "../errors";
import { createLogger } from "../obs/log";

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

/**
 * The sources of one configuration: those that can be served, and the problems of each one
 * that cannot. A bad source is refused on its own route only; `whole` holds the problems of
 * WEBHOOK_SOURCES itself (not JSON, not an object), which leave no source to serve.
 */
export interface SourceTable {
  valid: Map<string, WebhookSource>;
  invalid: Map<string, string[]>;
  whole: string[];
}

/** Parses WEBHOOK_SOURCES against the deployment's dedupe window; never throws. */
export function parseWebhookSources(json: string, dedupeWindowS: number): SourceTable {
  const table: SourceTable = { valid: new Map(), invalid: new Map(), whole: [] };
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    table.whole.push("WEBHOOK_SOURCES: not valid JSON");
    return table;
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
    table.whole.push("WEBHOOK_SOURCES: must be a JSON object of source name -> settings");
    return table;
  }
  for (const [name, settings] of Object.entries(raw)) {
    const problems: string[] = [];
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
      if (tolerance !== undefined && tolerance > dedupeWindowS)
        problems.push(
          `WEBHOOK_SOURCES.${name}.tolerance_s: ${tolerance} s is longer than DEDUPE_WINDOW_S (${dedupeWindowS} s); a replay after the dedupe window would be accepted`,
        );
    }
    if (problems.length) table.invalid.set(name, problems);
    else if (parsed.success) table.valid.set(name, { ...parsed.data, name });
  }
  return table;
}

const tables = new WeakMap<Config, SourceTable>();

/** The source table of `cfg`, parsed once per Config; its problems are logged then, once. */
export function sourceTable(cfg: Config): SourceTable {
  let t = tables.get(cfg);
  if (!t) {
    tables.set(cfg, (t = parseWebhookSources(cfg.WEBHOOK_SOURCES, cfg.DEDUPE_WINDOW_S)));
    const problems = sourceProblems(t);
    if (problems.length) createLogger(cfg.LOG_LEVEL).error("webhook sources misconfigured", { problems });
  }
  return t;
}

/** Every problem of WEBHOOK_SOURCES, by field (never by value). */
export function sourceProblems(t: SourceTable): string[] {
  return [...t.whole, ...[...t.invalid.values()].flat()];
}

/** The configured sources, all of them valid: throws ConfigError naming each bad field. */
export function webhookSources(cfg: Config): Map<string, WebhookSource> {
  const t = sourceTable(cfg);
  const problems = sourceProblems(t);
  if (problems.length) throw new ConfigError(problems);
  return t.valid;
}
