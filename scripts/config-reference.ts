/**
 * Writes docs/configuration.md, the reference of every configuration variable, from the
 * schema in src/config/index.ts: names, meanings and `@default` overrides from the keys'
 * JSDoc (read with the TypeScript compiler API), types and defaults from the zod schema
 * itself (z.toJSONSchema). `--check` writes nothing and fails when the committed file is not
 * what it would write, or when a variable has no meaning or no group.
 *
 *   npm run docs:config            (writes)
 *   tsx scripts/config-reference.ts --check
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { z } from "zod";
import { schema } from "../src/config/index";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SOURCE = "src/config/index.ts";
export const OUTPUT = "docs/configuration.md";

/**
 * The reading order of the reference: groups, and the variables in each. Not in the schema,
 * whose order follows the code; a variable missing here fails the check, naming this list.
 */
const GROUPS: [heading: string, names: string[]][] = [
  [
    "Services",
    [
      "UPSTASH_REDIS_REST_URL",
      "UPSTASH_REDIS_REST_TOKEN",
      "DATABASE_URL",
      "DATABASE_DIRECT_URL",
      "DATABASE_READ_URL",
      "DB_POOL_MAX",
      "NEON_WS_PROXY",
      "EVENT_BACKEND",
      "LOCK_BACKEND",
      "REDIS_PREFIX",
      "REDIS_TIMEOUT_MS",
      "DB_TIMEOUT_MS",
    ],
  ],
  ["Credentials", ["ADMIN_TOKEN", "METRICS_TOKEN", "API_KEYS", "EVENT_ID_SECRET", "WEBHOOK_SOURCES"]],
  [
    "Ingest",
    [
      "MAX_BODY_BYTES",
      "MAX_BATCH_EVENTS",
      "MAX_JSON_DEPTH",
      "EVENT_MAX_FUTURE_SKEW_S",
      "DEDUPE_WINDOW_S",
      "IDEMPOTENCY_WINDOW_S",
      "RATE_LIMIT_KEY_EVENTS",
      "RATE_LIMIT_SOURCE_REQUESTS",
      "RATE_LIMIT_WINDOW_S",
      "AUTH_FAILURE_LIMIT",
      "AUTH_FAILURE_WINDOW_S",
      "WS_EVENTS_PER_S",
      "WS_IDLE_TIMEOUT_S",
      "WS_MAX_FRAMES",
      "WS_MAX_REFUSED_FRAMES",
      "WAKE_DEBOUNCE_MS",
      "STREAM_SHARDS",
      "STREAM_MAXLEN",
      "STREAM_RETENTION_S",
    ],
  ],
  [
    "Consumers",
    [
      "EVENT_MAX_ATTEMPTS",
      "EVENT_RETRY_BASE_DELAY",
      "EVENT_RETRY_MAX_DELAY",
      "CONSUMER_BATCH_SIZE",
      "CONSUMER_BATCH_ADAPTIVE",
      "CONSUMER_BATCH_MIN",
      "CONSUMER_BATCH_TARGET_MS",
      "CONSUMER_TIME_BUDGET_MS",
      "CONSUMER_MAX_BATCHES",
      "VISIBILITY_TIMEOUT_MS",
      "HANDLER_CONCURRENCY",
      "LOCK_LEASE_MS",
      "LOCK_WAIT_MS",
      "ORDERED_RECHECK_MS",
      "ORDERED_SLEEP_MS",
    ],
  ],
  [
    "Destinations",
    [
      "DESTINATIONS",
      "PUBLIC_URL",
      "DESTINATION_BREAKER_FAILURES",
      "DESTINATION_BREAKER_COOLDOWN_S",
      "DESTINATION_BREAKER_MAX_COOLDOWN_S",
      "DESTINATION_MAX_HOLD_S",
    ],
  ],
  ["Agents", ["AGENT_MODEL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"]],
  [
    "Operations",
    [
      "DLQ_ALERT_URL",
      "DLQ_ALERT_THRESHOLD",
      "SWEEP_STUCK_AFTER_MS",
      "SWEEP_CONSUMER_IDLE_MS",
      "HISTORY_RETENTION_DAYS",
      "DLQ_RETENTION_DAYS",
      "DELIVERY_ATTEMPTS_RETENTION_DAYS",
      "REPLAY_JOBS_RETENTION_DAYS",
      "RETENTION_BATCH_SIZE",
      "RETENTION_MAX_BATCHES",
      "REPLAY_DEFAULT_RATE",
      "REPLAY_MAX_RATE",
      "REPLAY_CHUNK_SIZE",
      "REPLAY_INTERVAL_S",
      "REPLAY_TIME_BUDGET_MS",
      "REDRIVE_RATE",
    ],
  ],
  [
    "Health, cache, observability",
    [
      "HEALTH_PENDING_DEGRADED",
      "HEALTH_DLQ_DEGRADED",
      "HEALTH_LAG_DEGRADED",
      "HEALTH_OLDEST_PENDING_DEGRADED_S",
      "HEALTH_LATENCY_DEGRADED_MS",
      "HEALTH_TIMEOUT_MS",
      "CACHE_ENABLED",
      "CACHE_HEALTH_TTL_S",
      "CACHE_EVENT_TTL_S",
      "OTEL_EXPORTER_OTLP_ENDPOINT",
      "OTEL_EXPORTER_OTLP_HEADERS",
      "OTEL_SERVICE_NAME",
      "LOG_LEVEL",
    ],
  ],
];

export interface Variable {
  name: string;
  /** The JSDoc text, one paragraph. */
  meaning: string;
  /** The JSDoc `@default` text, when the schema's own default does not say it. */
  defaultNote?: string;
  /** The zod expression, as written. */
  expression: string;
}

/** The keys of `schema = z.object({...})` in src/config/index.ts, in order, with their JSDoc. */
export function readVariables(file = path.join(root, SOURCE)): Variable[] {
  const source = ts.createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
  let object: ts.ObjectLiteralExpression | undefined;
  const visit = (node: ts.Node) => {
    if (
      ts.isVariableDeclaration(node) &&
      node.name.getText(source) === "schema" &&
      node.initializer &&
      ts.isCallExpression(node.initializer) &&
      ts.isObjectLiteralExpression(node.initializer.arguments[0]!)
    )
      object = node.initializer.arguments[0];
    else ts.forEachChild(node, visit);
  };
  visit(source);
  if (!object) throw new Error(`${SOURCE}: no "const schema = z.object({...})"`);
  return object.properties.filter(ts.isPropertyAssignment).map((p) => {
    const docs = ts.getJSDocCommentsAndTags(p).filter(ts.isJSDoc);
    const doc = docs.at(-1);
    const meaning = oneLine(ts.getTextOfJSDocComment(doc?.comment) ?? "");
    const tag = doc?.tags?.find((t) => t.tagName.text === "default");
    return {
      name: p.name.getText(source),
      meaning,
      defaultNote: tag ? oneLine(ts.getTextOfJSDocComment(tag.comment) ?? "") : undefined,
      expression: p.initializer.getText(source),
    };
  });
}

const oneLine = (s: string) => s.replace(/\s+/g, " ").trim();

interface JsonProp {
  type?: string;
  default?: unknown;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minLength?: number;
  format?: string;
  pattern?: string;
}

const code = (v: unknown) => `\`${String(v)}\``;

/** What a value must look like, from its JSON Schema. */
function accepts(p: JsonProp, expression: string): string {
  if (p.enum) return p.enum.map(code).join(", ");
  if (p.type === "integer" || p.type === "number") {
    const kind = p.type === "integer" ? "integer" : "number";
    const lo =
      p.exclusiveMinimum !== undefined ? ` > ${p.exclusiveMinimum}` : p.minimum !== undefined ? ` ≥ ${p.minimum}` : "";
    const hi = p.maximum !== undefined && p.maximum < Number.MAX_SAFE_INTEGER ? `, ≤ ${p.maximum}` : "";
    return `${kind}${lo}${hi}`;
  }
  if (p.format === "uri") return "URL";
  if (p.pattern?.startsWith("^postgres")) return "`postgres://` URL";
  if (p.pattern) return `matching ${code(p.pattern)}`;
  if (/^csv\b/.test(expression)) return "comma-separated list";
  if (p.minLength && p.minLength > 1) return `string, ${p.minLength}+ characters`;
  return "string";
}

function defaultText(v: Variable, p: JsonProp, required: boolean, names: ReadonlySet<string>): string {
  if (v.defaultNote) return cell(v.defaultNote, names);
  if (required) return "(required)";
  if (p.default === undefined) return "unset";
  if (p.default === "") return "empty";
  return code(p.default);
}

/**
 * Markdown table-cell text from JSDoc (itself markdown: `code` spans pass through as written):
 * variable names become code, repository paths links, and `|` and `<` are escaped.
 */
export function cell(text: string, names: ReadonlySet<string> = new Set()): string {
  return text
    .split(/(`[^`]*`)/)
    .map((part, i) => (i % 2 ? part : prose(part, names)))
    .join("");
}

function prose(text: string, names: ReadonlySet<string>): string {
  const token =
    /(\.\/[\w.-]+\.ts|\b(?:src|test|local|cli|bench|docs)\/[\w./-]*[\w/])|\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\b|(https?:\/\/\S+[^\s.,;)])/g;
  let out = "";
  let at = 0;
  for (const m of text.matchAll(token)) {
    out += escapeCell(text.slice(at, m.index));
    const [whole, repoPath, name, url] = m;
    if (repoPath) {
      const target = repoPath.startsWith("./") ? `src/config/${repoPath.slice(2)}` : repoPath;
      out += `[${code(target)}](../${target})`;
    } else if (name && names.has(name)) out += code(name);
    else if (url) out += code(url);
    else out += escapeCell(whole);
    at = m.index + whole.length;
  }
  return out + escapeCell(text.slice(at));
}

const escapeCell = (s: string) => s.replace(/([\\|<])/g, "\\$1");

export function render(variables: Variable[]): { text: string; problems: string[] } {
  const json = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as {
    properties: Record<string, JsonProp>;
    required?: string[];
  };
  const byName = new Map(variables.map((v) => [v.name, v]));
  const names = new Set(byName.keys());
  const problems: string[] = [];
  const grouped = new Set(GROUPS.flatMap(([, n]) => n));
  for (const v of variables) {
    if (!grouped.has(v.name)) problems.push(`${v.name}: in no group of GROUPS in scripts/config-reference.ts`);
    if (!v.meaning) problems.push(`${v.name}: no JSDoc comment saying what it means in ${SOURCE}`);
  }
  for (const n of grouped) if (!byName.has(n)) problems.push(`${n}: in GROUPS but not in the schema of ${SOURCE}`);
  const lines = [
    "<!-- Generated from src/config/index.ts by `npm run docs:config`; edit the JSDoc there, not this file. -->",
    "",
    "# Configuration",
    "",
    "Every variable the worker reads, parsed in one place, `src/config/index.ts`. An invalid",
    "environment fails with one error naming every bad variable (requests answer a bare 500",
    '"Server misconfigured"; the log names the variables, never their values). Locally they live',
    "in `.dev.vars` (see `.dev.vars.example`); in production, secrets are set with",
    "`npx wrangler secret put NAME` and plain settings in `wrangler.toml` `[vars]`. An empty",
    "value means unset.",
    "",
  ];
  for (const [heading, list] of GROUPS) {
    lines.push(`## ${heading}`, "", "| Variable | Default | Accepts | Meaning |", "| --- | --- | --- | --- |");
    for (const name of list) {
      const v = byName.get(name);
      if (!v) continue;
      const p = json.properties[name] ?? {};
      const required = json.required?.includes(name) ?? false;
      lines.push(
        `| ${code(name)} | ${defaultText(v, p, required, names)} | ${accepts(p, v.expression)} | ${cell(v.meaning, names)} |`,
      );
    }
    lines.push("");
  }
  return { text: lines.join("\n"), problems };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { text, problems } = render(readVariables());
  if (problems.length) {
    console.error(`${SOURCE}: the configuration reference cannot be complete:\n  ${problems.join("\n  ")}`);
    process.exit(1);
  }
  const out = path.join(root, OUTPUT);
  if (process.argv.includes("--check")) {
    const current = fs.existsSync(out) ? fs.readFileSync(out, "utf8") : "";
    if (current !== text) {
      const [want, have] = [text.split("\n"), current.split("\n")];
      const line = want.findIndex((l, i) => l !== have[i]);
      const at = line < 0 ? have.length : line;
      console.error(
        `${OUTPUT} is not what ${SOURCE} says (first difference at line ${at + 1}):\n` +
          `  committed: ${have[at] ?? "(end of file)"}\n  generated: ${want[at] ?? "(end of file)"}\n` +
          "Run `npm run docs:config` and commit the result.",
      );
      process.exit(1);
    }
  } else {
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, text);
    console.log(`wrote ${OUTPUT}`);
  }
}
