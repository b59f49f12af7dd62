/**
 * Typed configuration, parsed once per environment object.
 *
 * Every variable the worker reads is declared here with its type and default; a missing
 * or invalid value produces one ConfigError that lists every problem by name. Nothing
 * else in the code reads `env.SOMETHING` for configuration.
 */
import { z } from "zod";
import { ConfigError } from "../errors";
import { type ApiKey, parseApiKeys } from "./api-keys";
import { type Destination, parseDestinations } from "./destination-specs";
import { missingForModel, parseModelSpec } from "./model-spec";

/** The worker's bindings: variables and secrets (strings) plus the Queue producer. */
export interface Env {
  [key: string]: unknown;
  WAKE_QUEUE?: Queue<WakeMessage>;
}

/** Body of the Cloudflare Queue message that wakes the consumer. */
export interface WakeMessage {
  kind: "wake";
  at: number;
}

const int = (min: number) => z.coerce.number().int().min(min);
const seconds = z.coerce.number().positive();
const csv = z.string().transform((s) =>
  s
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean),
);
const httpUrl = z.url({ protocol: /^https?$/ });
const pgUrl = z.string().regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL");

export const schema = z.object({
  /** Upstash REST URL (secret). @default (required for `redis`) */
  UPSTASH_REDIS_REST_URL: httpUrl.optional(),
  /** Upstash REST token (secret). @default (required for `redis`) */
  UPSTASH_REDIS_REST_TOKEN: z.string().min(1).optional(),
  /** Neon Postgres connection string, for writes (secret). */
  DATABASE_URL: pgUrl,
  /** Read replica: history listing and event detail (secret). */
  DATABASE_READ_URL: pgUrl.optional(),
  /**
   * A direct (non-pooled) connection string for the Postgres scope locks (LOCK_BACKEND=postgres):
   * session advisory locks belong to one server session, which a transaction-mode pooler
   * (Neon's -pooler host, PgBouncer) does not keep for a client (secret; see the README's "Pool sizing").
   * @default DATABASE_URL
   */
  DATABASE_DIRECT_URL: pgUrl.optional(),
  /** "redis" (Redis Streams, history in Postgres) or "postgres" (Postgres alone). */
  EVENT_BACKEND: z.enum(["redis", "postgres"]).default("redis"),
  /** Scope locks: "redis" or Postgres advisory locks. @default `redis`, or `postgres` with `EVENT_BACKEND=postgres` */
  LOCK_BACKEND: z.enum(["redis", "postgres"]).optional(),
  /** Attempts before the DLQ. */
  EVENT_MAX_ATTEMPTS: int(1).default(3),
  /** Seconds; an attempt that failed is retried after min(base * 2^(attempts-1), max). */
  EVENT_RETRY_BASE_DELAY: seconds.default(1),
  /** Longest retry delay, seconds. */
  EVENT_RETRY_MAX_DELAY: seconds.default(60),
  /** Postgres connections per invocation (see the README's "Pool sizing"). */
  DB_POOL_MAX: int(1).default(5),
  /**
   * Deadline of one Postgres connect or query, ms (client side): a query on a connection that
   * went silent fails after it instead of holding the invocation, its pool and its scope locks.
   */
  DB_TIMEOUT_MS: int(100).default(10_000),
  /** Bearer token of the admin API, /metrics and the CLI (secret). @default unset (admin API off) */
  ADMIN_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  /**
   * Read-only token: /metrics, the figures of /health/detailed and the read-only admin views
   * (GET); no action. For scrapers and dashboards, which must not be able to change anything (secret).
   */
  METRICS_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  /**
   * Bearer keys accepted by POST /events, /events/batch and GET /ws, each at least 16
   * characters: comma-separated, or a JSON array with each key's grants (./api-keys.ts).
   * None: those routes answer 401. A secret.
   */
  API_KEYS: z.string().default(""),
  /**
   * Key of the HMAC that makes derived-event ids (ctx.publish), so no client can compute one
   * in advance and claim it with an event of its own (secret). Required unless DATABASE_URL is
   * local (loopback host: local development), where a key derived from DATABASE_URL stands in.
   * @default required unless `DATABASE_URL` is local (there: a key derived from it)
   */
  EVENT_ID_SECRET: z.string().min(24, "must be at least 24 characters").optional(),
  /**
   * Webhook sources, JSON: {"<source>": {"scheme": "standard-webhooks"|"github"|"stripe"|
   * "hmac-sha256"|"none", "secret": "...", "tolerance_s": 300, ...}}. Parsed and checked by
   * src/ingest/sources.ts (a bad value answers 500 "Server misconfigured" naming the field). A secret.
   */
  WEBHOOK_SOURCES: z.string().default("{}"),
  /** Deadline of one Redis (Upstash REST) request, ms: a request that hangs fails after it. */
  REDIS_TIMEOUT_MS: int(100).default(10_000),
  /** Prefix of every Redis key (lets several deployments, or tests, share one Redis). */
  REDIS_PREFIX: z.string().min(1).default("reflex"),
  /** Number of stream shards; events are assigned by a hash of their scope key. */
  STREAM_SHARDS: int(1).default(1),
  /** Approximate stream retention (entries per shard) for XADD MAXLEN ~. */
  STREAM_MAXLEN: int(1000).default(1_000_000),
  /** Largest request body accepted at ingest, bytes (413 above). */
  MAX_BODY_BYTES: int(1024).default(1024 * 1024),
  /** Most events in one POST /events/batch. */
  MAX_BATCH_EVENTS: int(1).default(500),
  /**
   * Optional stream retention by age, seconds: when set, XADD trims with MINID ~ (entries
   * older than this) instead of MAXLEN ~ STREAM_MAXLEN. Keep it well above the longest
   * consumer outage you want to survive: trimming does not wait for consumers.
   */
  STREAM_RETENTION_S: int(60).optional(),
  /** Deepest JSON nesting accepted at ingest (checked before parsing; deeper is a 400). */
  MAX_JSON_DEPTH: int(2).default(64),
  /**
   * An event's own `timestamp` (POST /events, /events/batch, GET /ws) may be at most this far
   * ahead of the server's clock, seconds; further is a 422. Bounds the clock skew a client may
   * claim, so a future-dated event cannot sort after everything history and replays will see.
   */
  EVENT_MAX_FUTURE_SKEW_S: int(0).default(300),
  /**
   * How long a webhook delivery id is remembered for deduplication, seconds. Providers
   * redeliver for up to ~3 days (Stripe), hence the default.
   */
  DEDUPE_WINDOW_S: int(1).default(259_200),
  /**
   * How long a client-supplied event id is remembered with a digest of its body, seconds:
   * within it the same id and body answer 200 "duplicate", the same id with another body 409.
   * Each remembered id costs a key (Redis) or a row (Postgres) for the window.
   */
  IDEMPOTENCY_WINDOW_S: int(1).default(86_400),
  /**
   * Rate limit per API key: events per RATE_LIMIT_WINDOW_S (a batch counts each event).
   * 0 turns it off (and saves the one Redis command per request it costs). Both ingest limits
   * need Upstash: without UPSTASH_* (a Postgres-only deployment) they are off - a Postgres
   * limiter would write per request to the database that is also the queue.
   */
  RATE_LIMIT_KEY_EVENTS: int(0).default(10_000),
  /** Rate limit per webhook source: deliveries per RATE_LIMIT_WINDOW_S; 0 turns it off. */
  RATE_LIMIT_SOURCE_REQUESTS: int(0).default(1_000),
  /** Sliding window of both rate limits, seconds. */
  RATE_LIMIT_WINDOW_S: int(1).default(10),
  /**
   * Wrong admin/metrics tokens (bearer or dashboard sign-in) a client address may send per
   * AUTH_FAILURE_WINDOW_S before every token from it gets 429 (src/http/auth-throttle.ts); 0: off.
   */
  AUTH_FAILURE_LIMIT: int(0).default(10),
  /** Sliding window of AUTH_FAILURE_LIMIT, seconds. */
  AUTH_FAILURE_WINDOW_S: int(1).default(300),
  /** GET /ws: events per second one connection may send (over it: closed with 1008). */
  WS_EVENTS_PER_S: int(1).default(1_000),
  /** GET /ws: a connection without an accepted frame this long is closed (1000), seconds. */
  WS_IDLE_TIMEOUT_S: int(1).default(60),
  /**
   * GET /ws: frames one connection may send, refused ones included, before the server closes
   * it (1000, "reconnect"): a connection is one Workers invocation, whose subrequests are
   * capped (1,000), and a frame costs up to two of them (the rate-limit check and the publish).
   */
  WS_MAX_FRAMES: int(1).max(450).default(400),
  /** GET /ws: problem frames in a row after which the connection is closed (1008). */
  WS_MAX_REFUSED_FRAMES: int(1).default(5),
  /**
   * Wake-up debounce, ms: at most one wake-up (plus one trailing, delayed) is sent to
   * WAKE_QUEUE per window, however many events arrive (src/ingest/wake.ts).
   */
  WAKE_DEBOUNCE_MS: int(100).default(1000),
  /** Events claimed per XREADGROUP / claim round (with CONSUMER_BATCH_ADAPTIVE: the most). */
  CONSUMER_BATCH_SIZE: int(1).default(1000),
  /**
   * "true": the claim size adapts between CONSUMER_BATCH_MIN and CONSUMER_BATCH_SIZE to the
   * backlog a run starts with, to how long batches take and to the time left in the
   * invocation (src/consume/claim-size.ts). "false": CONSUMER_BATCH_SIZE every claim.
   */
  CONSUMER_BATCH_ADAPTIVE: z
    .enum(["true", "false"])
    .default("true")
    .transform((v) => v === "true"),
  /** The smallest adaptive claim. */
  CONSUMER_BATCH_MIN: int(1).default(50),
  /** Adaptive claims: a batch handled in longer than this, ms, halves the next claims. */
  CONSUMER_BATCH_TARGET_MS: int(10).default(1_000),
  /** Wall-clock budget of one consumer invocation, milliseconds. */
  CONSUMER_TIME_BUDGET_MS: int(100).default(20_000),
  /** A claim's lease, ms: renewed while its consumer runs; a claim not renewed this long is reclaimed. */
  VISIBILITY_TIMEOUT_MS: int(1000).default(60_000),
  /** Handlers running at once within one invocation. */
  HANDLER_CONCURRENCY: int(1).default(16),
  /**
   * Most claim rounds (batches) per consumer invocation. Each round costs a few subrequests
   * (Redis REST calls); Workers allow 1,000 per invocation on the paid plan.
   */
  CONSUMER_MAX_BATCHES: int(1).default(150),
  /**
   * Lease of a scope lock, ms; renewed while the batch that holds it is still running. A holder
   * whose lease ran out is fenced off once another takes the scope (the README's "Guarantees").
   */
  LOCK_LEASE_MS: int(1000).default(30_000),
  /** How long a batch waits for a scope locked by another invocation before deferring its events (no attempt used), ms. */
  LOCK_WAIT_MS: int(0).default(2_000),
  /** Ordered scopes: how soon a scope's head waiting for earlier arrivals to settle is looked at again, ms. */
  ORDERED_RECHECK_MS: int(10).default(500),
  /**
   * Ordered scopes: longest an event waiting behind its scope's head sleeps before it looks
   * again, ms. It is woken as soon as the head is done; this bounds a wake-up lost to a crash.
   */
  ORDERED_SLEEP_MS: int(100).default(60_000),
  // --- Operations (src/jobs, src/admin): DLQ sweeper, replay runner, admin API ---
  /** When set, the DLQ sweeper POSTs a JSON summary here once the DLQ grows past DLQ_ALERT_THRESHOLD (once per crossing). */
  DLQ_ALERT_URL: httpUrl.optional(),
  /** DLQ size (events) above which the alert fires. */
  DLQ_ALERT_THRESHOLD: int(0).default(100),
  /**
   * An event 'processing' for longer than this (its consumer died and nothing reclaimed it,
   * e.g. its stream entry was trimmed) is swept: to the DLQ when its attempts are exhausted,
   * else back to pending for a retry, ms. Keep it well above VISIBILITY_TIMEOUT_MS.
   */
  SWEEP_STUCK_AFTER_MS: int(60_000).default(600_000),
  /** Consumers (one per invocation) idle this long with nothing pending are removed from their group, ms. */
  SWEEP_CONSUMER_IDLE_MS: int(60_000).default(3_600_000),
  /**
   * History retention, days (0: keep forever). The sweeper deletes completed and discarded
   * events whose timestamp is older than this, in bounded batches (src/jobs/retention.ts):
   * replays reach back this far, and a client resending an id older than this stores it again.
   */
  HISTORY_RETENTION_DAYS: int(0).default(90),
  /** Dead-lettered events are kept this many days after they entered the DLQ (0: forever). */
  DLQ_RETENTION_DAYS: int(0).default(365),
  /** Destination delivery attempts (delivery_attempts) are kept this many days (0: forever). */
  DELIVERY_ATTEMPTS_RETENTION_DAYS: int(0).default(30),
  /** Finished replay jobs (done, cancelled, failed) are kept this many days after they ended (0: forever). */
  REPLAY_JOBS_RETENTION_DAYS: int(0).default(90),
  /** Rows one retention statement deletes at most: a short statement that locks only those rows. */
  RETENTION_BATCH_SIZE: int(1).default(5_000),
  /** Retention statements per table in one sweeper run (the rest waits for the next run). */
  RETENTION_MAX_BATCHES: int(1).default(20),
  /** Replay rate when a job does not say, events per second. */
  REPLAY_DEFAULT_RATE: int(1).default(200),
  /** Highest replay rate a job may ask for, events per second. */
  REPLAY_MAX_RATE: int(1).default(5_000),
  /** Events read and republished per replay chunk (one read, one pipeline, one cursor update). */
  REPLAY_CHUNK_SIZE: int(1).default(500),
  /**
   * Period of the replay runner's cron, seconds: one invocation republishes at most
   * rate x this per job, so a job averages its rate whatever the chunking.
   */
  REPLAY_INTERVAL_S: int(1).default(120),
  /** Wall-clock budget of one replay-runner invocation (advancing jobs, then draining the replay lane), ms. */
  REPLAY_TIME_BUDGET_MS: int(100).default(25_000),
  /**
   * DLQ redrive rate, events per second: a retry-all of N events spreads their next_retry_at
   * over N / rate seconds, so a big redrive trickles in beside live traffic.
   */
  REDRIVE_RATE: int(1).default(100),
  // --- Destinations (src/destinations): events POSTed to HTTP endpoints, as triggers ---
  /**
   * JSON list of destinations: [{"name", "url", "filter": {"types"?, "sources"?}, "timeout_ms"?,
   * "headers"?, "secret"?, "scope"?}] (./destination-specs.ts). Checked at load: problems
   * name the destination and the field. A secret: headers and signing secrets live in it.
   */
  DESTINATIONS: z.string().default("[]"),
  /**
   * The worker's own URLs, comma-separated (custom domain, workers.dev). Destinations on these
   * hosts are refused: delivering there would feed the worker its own events.
   */
  PUBLIC_URL: csv.default([]),
  /** Consecutive failed deliveries to one destination that open its circuit breaker. */
  DESTINATION_BREAKER_FAILURES: int(1).default(5),
  /** First cool-down of an open breaker, seconds; doubled after each failed probe. */
  DESTINATION_BREAKER_COOLDOWN_S: int(1).default(30),
  /** Longest cool-down, seconds. */
  DESTINATION_BREAKER_MAX_COOLDOWN_S: int(1).default(600),
  /**
   * Longest an event waits behind a destination's open circuit breaker, seconds: the sweeper
   * moves events held longer (while the breaker stayed open) to the DLQ, naming the breaker.
   */
  DESTINATION_MAX_HOLD_S: int(60).default(259_200),
  /**
   * Local development only: "host:port/token" of the WebSocket proxy standing in for Neon
   * (local/neon-proxy.ts); the driver sends the token as the first segment of the path. It
   * turns TLS off, so it is refused unless DATABASE_URL's host is a loopback address
   * (localhost, 127.0.0.0/8, ::1): "local" means the database itself is on this machine.
   */
  NEON_WS_PROXY: z
    .string()
    .regex(/^[\w.-]+:\d+\/[\w-]+$/, "must be host:port/token")
    .optional(),
  // --- Agents (src/triggers/agent.ts): the model agents call unless they name their own ---
  /**
   * "<provider>:<model>": workers-ai (the `AI` binding), openai (OPENAI_API_KEY) or anthropic
   * (ANTHROPIC_API_KEY), e.g. "workers-ai:@cf/meta/llama-3.1-8b-instruct". Unset: an agent
   * without a model of its own fails its attempts, naming this variable.
   */
  AGENT_MODEL: z.string().optional(),
  /** OpenAI API key, for openai:* models (secret). */
  OPENAI_API_KEY: z.string().optional(),
  /** Anthropic API key, for anthropic:* models (secret). */
  ANTHROPIC_API_KEY: z.string().optional(),
  // --- health, observability, cache (src/health, src/obs) ---
  /** /health/detailed: pending (claimed, unacknowledged) above this is degraded (Reflex: 10,000). */
  HEALTH_PENDING_DEGRADED: int(0).default(10_000),
  /** /health/detailed: DLQ size above this is degraded (Reflex: 100). */
  HEALTH_DLQ_DEGRADED: int(0).default(100),
  /** /health/detailed: consumer-group lag (entries never delivered) above this is degraded. */
  HEALTH_LAG_DEGRADED: int(0).default(10_000),
  /** /health/detailed: oldest pending event older than this (seconds) is degraded. */
  HEALTH_OLDEST_PENDING_DEGRADED_S: int(1).default(300),
  /** /ready and /health/detailed: a dependency slower than this (ms) is degraded... */
  HEALTH_LATENCY_DEGRADED_MS: int(1).default(1_000),
  /** ...and one that has not answered after this (ms) is down. */
  HEALTH_TIMEOUT_MS: int(100).default(3_000),
  /** Hot-data cache in Redis: "true" (default) or "false". Health figures and event detail. */
  CACHE_ENABLED: z
    .enum(["true", "false"])
    .default("true")
    .transform((v) => v === "true"),
  /** TTL of cached health figures, seconds. */
  CACHE_HEALTH_TTL_S: int(1).default(5),
  /** TTL of cached event detail (final states only), seconds. */
  CACHE_EVENT_TTL_S: int(1).default(60),
  /** OpenTelemetry: OTLP/HTTP traces endpoint (e.g. https://logfire-api.pydantic.dev/v1/traces). @default unset (tracing off) */
  OTEL_EXPORTER_OTLP_ENDPOINT: httpUrl.optional(),
  /** OTLP headers, "k=v,k2=v2" (e.g. Authorization=<Logfire write token>): a secret. */
  OTEL_EXPORTER_OTLP_HEADERS: z.string().optional(),
  /** Service name on the spans. */
  OTEL_SERVICE_NAME: z.string().min(1).default("reflex-edge"),
  /** Least severe log line written: debug, info, warn or error. */
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
});

export type Config = Omit<z.output<typeof schema>, "DESTINATIONS" | "API_KEYS"> & {
  /** Parsed and checked (./api-keys.ts). */
  API_KEYS: ApiKey[];
  LOCK_BACKEND: "redis" | "postgres";
  /** Parsed and checked (./destination-specs.ts). */
  DESTINATIONS: Destination[];
};

/** The URL's host is this machine (localhost, 127.0.0.0/8, ::1). */
function isLoopbackUrl(url: string): boolean {
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase();
  } catch {
    return false;
  }
  return host === "localhost" || host === "[::1]" || host === "::1" || /^127(?:\.\d{1,3}){3}$/.test(host);
}

const cache = new WeakMap<object, Config>();

/** Neon's pooled endpoints are named `<endpoint>-pooler.<region>...`: PgBouncer in transaction mode. */
function pooledHost(url: string): boolean {
  try {
    return new URL(url).hostname.split(".")[0]!.endsWith("-pooler");
  } catch {
    return false;
  }
}

/** Parses `env` (cached per env object). Throws ConfigError naming every bad variable. */
export function loadConfig(env: Env): Config {
  const hit = cache.get(env);
  if (hit) return hit;
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(schema.shape)) {
    const v = env[key];
    // Empty strings mean "not set", so `.dev.vars` can list a variable without a value.
    if (typeof v === "string" && v.trim() !== "") raw[key] = v.trim();
    else if (typeof v === "number" || typeof v === "boolean") raw[key] = String(v);
  }
  const parsed = schema.safeParse(raw);
  const problems = parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join(".") || "(env)"}: ${i.message}`);
  const cfg = parsed.success ? parsed.data : undefined;
  if (cfg) {
    if (cfg.EVENT_BACKEND === "redis") {
      if (!cfg.UPSTASH_REDIS_REST_URL) problems.push("UPSTASH_REDIS_REST_URL: required when EVENT_BACKEND=redis");
      if (!cfg.UPSTASH_REDIS_REST_TOKEN) problems.push("UPSTASH_REDIS_REST_TOKEN: required when EVENT_BACKEND=redis");
    }
    if (cfg.EVENT_RETRY_MAX_DELAY < cfg.EVENT_RETRY_BASE_DELAY) {
      problems.push("EVENT_RETRY_MAX_DELAY: must be at least EVENT_RETRY_BASE_DELAY");
    }
    if (
      cfg.DLQ_RETENTION_DAYS !== 0 &&
      (cfg.HISTORY_RETENTION_DAYS === 0 || cfg.DLQ_RETENTION_DAYS < cfg.HISTORY_RETENTION_DAYS)
    ) {
      // Dead letters are the evidence of what failed: never gone before the history around them.
      problems.push("DLQ_RETENTION_DAYS: must be 0 (forever) or at least HISTORY_RETENTION_DAYS");
    }
    if (cfg.DESTINATION_BREAKER_MAX_COOLDOWN_S < cfg.DESTINATION_BREAKER_COOLDOWN_S) {
      problems.push("DESTINATION_BREAKER_MAX_COOLDOWN_S: must be at least DESTINATION_BREAKER_COOLDOWN_S");
    }
    if (cfg.NEON_WS_PROXY !== undefined) {
      for (const [name, url] of [
        ["DATABASE_URL", cfg.DATABASE_URL],
        ["DATABASE_READ_URL", cfg.DATABASE_READ_URL],
      ] as const) {
        if (url !== undefined && !isLoopbackUrl(url))
          problems.push(
            `NEON_WS_PROXY: local development only (unencrypted); ${name} must point at localhost, 127.0.0.1 or ::1`,
          );
      }
    }
    // Local development is a database on this machine; anywhere else derived ids need a real key.
    if (cfg.EVENT_ID_SECRET === undefined && !isLoopbackUrl(cfg.DATABASE_URL)) {
      problems.push(
        "EVENT_ID_SECRET: required unless DATABASE_URL is local (localhost, 127.0.0.1, ::1): it keys the HMAC of derived event ids",
      );
    }
    if (cfg.METRICS_TOKEN !== undefined && cfg.METRICS_TOKEN === cfg.ADMIN_TOKEN) {
      problems.push("METRICS_TOKEN: must differ from ADMIN_TOKEN (it is the read-only one)");
    }
    if (cfg.AGENT_MODEL !== undefined) {
      const spec = parseModelSpec(cfg.AGENT_MODEL);
      const missing = "problem" in spec ? `AGENT_MODEL: ${spec.problem}` : missingForModel(spec, env);
      if (missing) problems.push(missing);
    }
  }
  const lockBackend = cfg && (cfg.LOCK_BACKEND ?? (cfg.EVENT_BACKEND === "postgres" ? "postgres" : "redis"));
  if (cfg && lockBackend === "postgres" && !cfg.DATABASE_DIRECT_URL && pooledHost(cfg.DATABASE_URL)) {
    problems.push(
      "DATABASE_DIRECT_URL: required with LOCK_BACKEND=postgres when DATABASE_URL is a pooled (-pooler) host: advisory locks need a direct connection",
    );
  }
  const destinations = cfg ? parseDestinations(cfg.DESTINATIONS, cfg.PUBLIC_URL) : undefined;
  if (destinations) problems.push(...destinations.problems);
  const apiKeys = cfg ? parseApiKeys(cfg.API_KEYS) : undefined;
  if (apiKeys) problems.push(...apiKeys.problems);
  if (problems.length || !cfg) throw new ConfigError(problems);
  const out: Config = {
    ...cfg,
    // Redis locks need Redis; a Postgres-only deployment defaults to advisory locks.
    LOCK_BACKEND: lockBackend!,
    DESTINATIONS: destinations?.list ?? [],
    API_KEYS: apiKeys?.list ?? [],
  };
  cache.set(env, out);
  return out;
}
