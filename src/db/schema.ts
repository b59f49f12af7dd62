/**
 * Postgres schema (Drizzle). The system of record for event history, status, DLQ and replay.
 * Change it here, then `npm run db:generate` to write a migration under drizzle/.
 */
import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgEnum,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";

/** 'discarded': an operator took the event out of the DLQ for good (the row stays, with discard_reason). */
export const eventStatus = pgEnum("event_status", ["pending", "processing", "completed", "dlq", "discarded"]);
export type EventStatus = (typeof eventStatus.enumValues)[number];

export const events = pgTable(
  "events",
  {
    id: uuid("id").primaryKey(),
    type: text("type").notNull(),
    source: text("source").notNull(),
    /** The event's own time (UTC), from the envelope. */
    timestamp: timestamp("timestamp", { withTimezone: true, mode: "date" }).notNull(),
    /** The event's typed fields (everything in the envelope but id/type/source/timestamp/meta). */
    payload: jsonb("payload").$type<Record<string, unknown>>().notNull(),
    meta: jsonb("meta").$type<Record<string, unknown>>().notNull(),
    /** Scope key: events sharing it are handled one at a time. */
    scope: text("scope").notNull(),
    status: eventStatus("status").notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    lastError: text("last_error"),
    /** Every failed attempt's error, oldest first: [{attempt, error, at}]. */
    errors: jsonb("errors")
      .$type<Array<{ attempt: number; error: string; at: string }>>()
      .notNull()
      .default(sql`'[]'::jsonb`),
    nextRetryAt: timestamp("next_retry_at", { withTimezone: true, mode: "date" }),
    /** Consumer (invocation) that holds the event while it is 'processing'; settle only applies for it. */
    claimedBy: text("claimed_by"),
    /**
     * Set when the claim came from Postgres (a due retry) rather than from a stream: the claim
     * expires then and another consumer may take the event over. NULL for stream claims, whose
     * lease is the stream's pending-entries list (XAUTOCLAIM after VISIBILITY_TIMEOUT_MS).
     */
    leaseUntil: timestamp("lease_until", { withTimezone: true, mode: "date" }),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    processedAt: timestamp("processed_at", { withTimezone: true, mode: "date" }),
    /** Why an operator discarded the event from the DLQ (status 'discarded'). */
    discardReason: text("discard_reason"),
    /**
     * Postgres backend: the lane a published event waits in until claimed - NULL for
     * live traffic, 'replay' for replay copies (drained by the replay runner, never in front
     * of live events). Unused with Redis, whose lanes are streams.
     */
    lane: text("lane"),
  },
  (t) => [
    // claims and retries: "pending and due", "processing for too long". Partial: only open
    // events are looked up by status, and a row settling to completed then costs no entry here
    // (the settle UPDATE is never HOT, so every full index takes a new entry per settle).
    // The lane's class comes second, so a look for due events reads only its own lane's: a
    // redrive's backlog never slows a live consumer's claims, nor the other way round.
    index("events_status_next_retry_idx")
      .on(t.status, sql`coalesce(${t.lane} = 'redrive', false)`, t.nextRetryAt)
      .where(sql`${t.status} IN ('pending', 'processing')`),
    // History indexes: each takes an entry on every write of a row that is not HOT (with
    // status indexed, none is: 3 per event on the Postgres backend, 2 on Redis), and
    // measured, each is worth it (bench/admin-history.ts, bench/drain.ts --pg-variants):
    //  - (timestamp, id): the admin listing without a type/source filter, time ranges, every
    //    cursor page, replay chunks, retention; without it those scan and sort the history
    //    (seconds at a million rows);
    index("events_timestamp_id_idx").on(t.timestamp, t.id),
    //  - (type, timestamp): the listing and replay chunks by type; without it a rare type
    //    walks (timestamp, id) until it has a page (~0.4 s at a million rows);
    index("events_type_timestamp_idx").on(t.type, t.timestamp),
    //  - (source, timestamp): the same by source (and a scope's history, src/consume/recent-events.ts).
    index("events_source_timestamp_idx").on(t.source, t.timestamp),
    // the DLQ in timestamp order: the listing's status=dlq filter and
    // replays of dead letters stop after a page instead of sorting every dead letter. Partial:
    // a row takes an entry only when it fails for good, never on the hot path.
    index("events_dlq_timestamp_idx").on(t.timestamp, t.id).where(sql`${t.status} = 'dlq'`),
    index("events_dlq_type_idx").on(t.type, t.timestamp).where(sql`${t.status} = 'dlq'`),
    // expired Postgres-side claims (a consumer died while handling a due retry)
    index("events_lease_until_idx").on(t.leaseUntil).where(sql`${t.leaseUntil} IS NOT NULL`),
    // Postgres backend: fresh events (published, never claimed) in arrival order, live
    // and replay lanes apart; the claim of new events is an index range scan of one of them,
    // whatever the size of the history
    index("events_fresh_idx")
      .on(t.createdAt, t.timestamp)
      .where(sql`${t.status} = 'pending' AND ${t.nextRetryAt} IS NULL AND ${t.lane} IS NULL`),
    index("events_fresh_lane_idx")
      .on(t.lane, t.createdAt, t.timestamp)
      .where(sql`${t.status} = 'pending' AND ${t.nextRetryAt} IS NULL AND ${t.lane} IS NOT NULL`),
    // history in the order it was recorded (GET /events?order=recorded, `reflex events tail`).
    // BRIN: rows are appended in created_at order, so a summary per range of pages finds the
    // newest ones, costs almost nothing per insert, and needs no entry per settle.
    index("events_created_brin_idx").using("brin", t.createdAt),
    // the DLQ list is small but read often
    index("events_dlq_idx").on(t.updatedAt).where(sql`${t.status} = 'dlq'`),
    // derived events of an event (GET /events/:id), replay copies of an original
    // (partial: most events have no causation id, and they cost no entry here on insert or settle)
    index("events_causation_idx")
      .on(sql`(${t.meta} ->> 'causation_id')`)
      .where(sql`(${t.meta} ->> 'causation_id') IS NOT NULL`),
  ],
);

export type EventRow = typeof events.$inferSelect;
export type NewEventRow = typeof events.$inferInsert;

export const replayStatus = pgEnum("replay_status", ["scheduled", "running", "done", "cancelled", "failed"]);
export type ReplayStatus = (typeof replayStatus.enumValues)[number];

/**
 * Replay jobs (src/jobs/replay-runner.ts). The runner advances a job chunk by chunk with a
 * keyset cursor on (timestamp, id); publishing a chunk and moving the cursor happen under
 * the job's row lock, and republished ids are derived from (job id, original id), so a
 * chunk redone after a crash publishes the same ids and history keeps each once.
 */
export const replayJobs = pgTable(
  "replay_jobs",
  {
    id: uuid("id").primaryKey(),
    status: replayStatus("status").notNull().default("scheduled"),
    /** Range of event timestamps: from inclusive, to exclusive (fixed at creation: "now" when not given). */
    fromTs: timestamp("from_ts", { withTimezone: true, mode: "date" }).notNull(),
    toTs: timestamp("to_ts", { withTimezone: true, mode: "date" }).notNull(),
    types: text("types").array(),
    sources: text("sources").array(),
    /** Only events whose history status is this one (null: any). */
    statusFilter: eventStatus("status_filter"),
    /** One trigger or destination name; null: the stream (every trigger). */
    target: text("target"),
    dryRun: boolean("dry_run").notNull().default(false),
    /** Events per second. */
    rate: integer("rate").notNull(),
    startAt: timestamp("start_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    cursorTs: timestamp("cursor_ts", { withTimezone: true, mode: "date" }),
    cursorId: uuid("cursor_id"),
    scanned: bigint("scanned", { mode: "number" }).notNull().default(0),
    republished: bigint("republished", { mode: "number" }).notNull().default(0),
    totalEstimate: bigint("total_estimate", { mode: "number" }),
    errors: jsonb("errors").$type<Array<{ at: string; error: string }>>().notNull().default(sql`'[]'::jsonb`),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    startedAt: timestamp("started_at", { withTimezone: true, mode: "date" }),
    finishedAt: timestamp("finished_at", { withTimezone: true, mode: "date" }),
  },
  (t) => [index("replay_jobs_runnable_idx").on(t.status, t.startAt)],
);

export type ReplayJobRow = typeof replayJobs.$inferSelect;

/**
 * Small durable state of the scheduled functions (e.g. "DLQ alert sent for this crossing"),
 * kept in Postgres so it works with either event backend.
 */
export const opsState = pgTable("ops_state", {
  key: text("key").primaryKey(),
  value: jsonb("value").$type<Record<string, unknown>>().notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
});

// --- Postgres backend: state the Redis backend keeps in Redis keys ---

/**
 * Webhook deliveries and client ids seen (publishOnce, publishGuarded), for DEDUPE_WINDOW_S: the Postgres form of the
 * `<prefix>:dedupe:<key>` keys. Recorded in the same statement as the event's INSERT, so the
 * key exists if and only if the event was stored. Expired rows are overwritten on reuse and
 * deleted a few at a time by later deliveries (src/backends/postgres/queue.ts): no sweeper needed.
 */
export const webhookDeliveries = pgTable(
  "webhook_deliveries",
  {
    key: text("key").primaryKey(),
    eventId: uuid("event_id").notNull(),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "date" }).notNull(),
    /** Digest of what the key stands for (publishGuarded: a client's body); null for publishOnce rows. */
    digest: text("digest"),
  },
  (t) => [index("webhook_deliveries_expires_idx").on(t.expiresAt)],
);

/**
 * The consumer wake-up debounce gate (src/ingest/wake.ts) for the Postgres backend: one
 * row whose open_until is moved forward by the publish that opens a new window, in the same
 * statement as the INSERT of the events (the Postgres form of SET NX PX).
 */
export const wakeGate = pgTable("wake_gate", {
  name: text("name").primaryKey(),
  openUntil: timestamp("open_until", { withTimezone: true, mode: "date" }).notNull(),
});

/**
 * State of stateful trigger filters (rate limit, dedupe) for the Postgres backend: the
 * Postgres form of `<prefix>:filter:<name>` (src/backends/postgres/filter-state.ts).
 * Rate limit rows hold the admitted event ids (and their limit in window_ends_ms); dedupe
 * rows the first event id and the end of its window on the consumer's clock. expires_at
 * (real time) only cleans up.
 */
export const filterState = pgTable(
  "filter_state",
  {
    key: text("key").primaryKey(),
    members: text("members").array().notNull().default(sql`'{}'::text[]`),
    firstId: text("first_id"),
    windowEndsMs: bigint("window_ends_ms", { mode: "number" }),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (t) => [index("filter_state_expires_idx").on(t.expiresAt)],
);

/**
 * One row per delivery attempt to a destination (src/destinations), so an operator can see
 * why an event failed. Written once per consumer batch (one multi-row insert). `attempt` is
 * the event's attempt number; a failed probe of an open breaker gives its attempt back, so
 * the same number can appear twice for one destination, the earlier row with probe = true.
 */
export const deliveryAttempts = pgTable(
  "delivery_attempts",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    eventId: uuid("event_id").notNull(),
    destination: text("destination").notNull(),
    attempt: integer("attempt").notNull(),
    /** HTTP status of the answer; null when there was none (timeout, network error). */
    statusCode: integer("status_code"),
    /** Why the attempt failed ("HTTP 500", "timeout after 2000 ms", "redirect not followed: …"); null on success. */
    error: text("error"),
    durationMs: integer("duration_ms").notNull(),
    /** The answer's body, truncated to a few KiB. */
    responseBody: text("response_body"),
    /** This attempt was the half-open breaker's probe. */
    probe: boolean("probe").notNull().default(false),
    at: timestamp("at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (t) => [
    index("delivery_attempts_event_idx").on(t.eventId, t.at),
    index("delivery_attempts_destination_idx").on(t.destination, t.at),
  ],
);

/**
 * Circuit breaker of each destination, shared by every consumer invocation (and kept in
 * Postgres so that the Postgres backend needs nothing else). No row: closed, no failures.
 *  - closed: `failures` counts consecutive failed deliveries;
 *  - open: nothing is delivered until next_probe_at (the cool-down's end);
 *  - half-open: one invocation (probe_owner) sends one probe; next_probe_at is the probe's
 *    lease, after which another invocation may probe instead.
 */
export const destinationBreakers = pgTable("destination_breakers", {
  destination: text("destination").primaryKey(),
  state: text("state").$type<"closed" | "open" | "half-open">().notNull().default("closed"),
  failures: integer("failures").notNull().default(0),
  openedAt: timestamp("opened_at", { withTimezone: true, mode: "date" }),
  nextProbeAt: timestamp("next_probe_at", { withTimezone: true, mode: "date" }),
  /** The cool-down of the current opening, ms; doubled after each failed probe, up to the maximum. */
  cooldownMs: integer("cooldown_ms").notNull().default(0),
  probeOwner: text("probe_owner"),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
});

/**
 * Metrics counters (src/obs/metrics.ts) for deployments without Redis; with Redis they
 * live in a hash instead. One row per series, e.g. `reflex_events_processed_total{outcome="completed"}`.
 */
export const metricsCounters = pgTable("metrics_counters", {
  series: text("series").primaryKey(),
  value: doublePrecision("value").notNull().default(0),
});

export const stepStatus = pgEnum("step_status", ["completed", "failed"]);

/** What a model call cost, on the record of the step that made it (agent triggers). */
export interface StepUsage {
  model: string;
  input_tokens: number;
  output_tokens: number;
}

/**
 * Durable steps (ctx.step, src/triggers/steps.ts): one row per (event, trigger, step name).
 * A completed row is final - a later attempt of the event gets `result` back instead of
 * running the step again, and re-stages the derived events the step published - while a
 * failed row is overwritten by the step's next run. A replay copy is a new event id, so its
 * steps run afresh.
 */
export const steps = pgTable(
  "steps",
  {
    eventId: uuid("event_id").notNull(),
    trigger: text("trigger").notNull(),
    name: text("name").notNull(),
    status: stepStatus("status").notNull(),
    /** `{"value": <the step's JSON result>}`; `{}` when it returned undefined; null while failed. */
    result: jsonb("result").$type<{ value?: unknown }>(),
    error: text("error"),
    /** Derived events the step staged with ctx.publish, re-staged when a later attempt replays it. */
    derived: jsonb("derived").$type<Array<Record<string, unknown>>>().notNull().default(sql`'[]'::jsonb`),
    /** Set by model calls: the model and its tokens. */
    usage: jsonb("usage").$type<StepUsage>(),
    /** The event's attempt that ran it (the latest one, for a failed step). */
    attempt: integer("attempt").notNull(),
    startedAt: timestamp("started_at", { withTimezone: true, mode: "date" }).notNull(),
    durationMs: integer("duration_ms").notNull(),
  },
  (t) => [primaryKey({ columns: [t.eventId, t.trigger, t.name] })],
);

export type StepRow = typeof steps.$inferSelect;

/**
 * Fencing of scope-lock holders (src/backends/fences.ts): an outcome or step record carrying a
 * scope's token at or below `floor` is refused - its holder lost the scope to a newer one
 * without letting it go. `fence` and `released` are the advisory-lock backend's counter (the
 * last token granted, the last one let go cleanly); Redis keeps its own and writes floors only.
 */
export const scopeFences = pgTable("scope_fences", {
  scope: text("scope").primaryKey(),
  fence: bigint("fence", { mode: "number" }).notNull().default(0),
  released: bigint("released", { mode: "number" }).notNull().default(0),
  floor: bigint("floor", { mode: "number" }).notNull().default(0),
});

/**
 * Ordered scopes (src/consume/ordered-scopes.ts): one row per open event of an ordered trigger's
 * scope, keyed by its arrival (src/consume/ordered-sql.ts: a stream entry id, or created_at, as
 * fixed-width text). A scope's head is its earliest row whose event is not done; only the
 * head runs. A row goes when its event is done; `parked_at` is set once the head failed,
 * `hold` keeps a dead-lettered head in place (on_dead "hold") until an operator acts.
 */
export const orderedEvents = pgTable(
  "ordered_events",
  {
    scope: text("scope").notNull(),
    eventId: uuid("event_id").notNull(),
    arrival: text("arrival").notNull(),
    /** The stream the arrival is an entry id of (Redis); null when it is a created_at. */
    lane: text("lane"),
    hold: boolean("hold").notNull().default(false),
    parkedAt: timestamp("parked_at", { withTimezone: true, mode: "date" }),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.scope, t.eventId] }),
    index("ordered_events_arrival_idx").on(t.scope, t.arrival, t.eventId),
    index("ordered_events_event_idx").on(t.eventId),
    // the parked heads (admin, health): few rows among the open ones
    index("ordered_events_parked_idx").on(t.scope).where(sql`${t.parkedAt} IS NOT NULL`),
  ],
);
