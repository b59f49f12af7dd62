/**
 * The EventStore contract: one interface, two backends (Redis Streams, Postgres).
 * Ingestion, consumers, triggers, DLQ and replay depend on this interface only;
 * the configuration picks the implementation (src/backends/index.ts).
 *
 * publish() resolving means the events are durably handed over: only then may ingest
 * answer 2xx.
 *
 * Consuming (src/consume) is claim -> handle -> settle:
 *  - claim() takes a batch from a lane and, before returning, checks it against Postgres
 *    history (one statement). The Postgres backend records what it hands out as
 *    'processing'; the Redis one writes nothing for a fresh read (the stream's pending-
 *    entries list is the claim; the row is written at settle, inFlight() shows the claim).
 *    Events whose history is already final (completed, dlq, or waiting for a retry) are not
 *    handed out; their receipts come back in `skipped`, for settle() to acknowledge.
 *  - claimDue() takes events whose retry is due (status 'pending', next_retry_at <= now)
 *    or whose Postgres-side claim expired, straight from history. This is what makes
 *    retries happen on time with no new traffic. A lane claim can carry the same look
 *    (ClaimRequest.due) in its own statement, so that a busy consumer looks for due
 *    retries with every batch at no extra round trip.
 *  - settle() records every outcome durably in Postgres (one statement) and only then
 *    acknowledges the transport (XACK: with the next read, or flush()) and appends DLQ
 *    entries. A crash anywhere before the acknowledgement means redelivery, and history's
 *    "already final" check makes the redelivery harmless: never a loss, never a second row.
 *
 * Postgres is the system of record for attempts, errors and retry times; a stream is only
 * the transport. Both backends share that history code (src/backends/history-writes.ts).
 */

import type { Db } from "../db/client";
import type { EventEnvelope } from "../events/envelope";
import type { Failpoints } from "../failpoints";
import type { FencesByEvent } from "./fences";
import type { DueLook } from "./history-writes";

/** Identifies one claimed delivery: what settle() needs to record and acknowledge it. */
export interface Receipt {
  readonly eventId: string;
  /** The lane (stream key) it was read from; null for claims made in Postgres (due retries). */
  readonly lane: string | null;
  /** Stream entry id to acknowledge; null when there is nothing to acknowledge in a stream. */
  readonly entryId: string | null;
}

export interface ClaimedEvent {
  event: EventEnvelope;
  receipt: Receipt;
  /** Deliveries so far, this one included (1 on the first delivery). */
  attempts: number;
}

export interface ClaimResult {
  events: ClaimedEvent[];
  /** Deliveries not to handle (already final in history, or a duplicate entry): settle acknowledges them. */
  skipped: Receipt[];
  /**
   * Entries the transport returned this round, before de-duplication. 0 means the lane has
   * nothing more in this mode. For "reclaim" mode, `cursor` says where to continue ("0-0": done).
   */
  read: number;
  cursor?: string;
  /**
   * Set when this claim also looked for due events (ClaimRequest.due): how many it claimed.
   * They are in `events`, ahead of the lane's, with receipts of lane null.
   */
  due?: number;
  /**
   * Entries of the lane never delivered yet, when a "reclaim" claim was asked for them
   * (ClaimRequest.backlogUpTo) and the backend can tell. Sizes the run's first claims
   * (../consume/claim-size.ts).
   */
  backlog?: number;
}

export interface ClaimRequest {
  /** Lane to read: a shard stream from lanes(), or another one (replay jobs use their own). */
  lane: string;
  /** Consumer name, unique per invocation (e.g. "c-<uuid>"). */
  consumer: string;
  max: number;
  /**
   * "new": entries never delivered to the group (XREADGROUP >).
   * "reclaim": entries delivered to a consumer that went silent for `reclaimIdleMs` (XAUTOCLAIM from `cursor`).
   */
  mode: "new" | "reclaim";
  reclaimIdleMs: number;
  cursor?: string;
  /**
   * Mode "reclaim": also report the lane's backlog (ClaimResult.backlog). A backend that has
   * to count it counts up to this many; one that knows it (Redis: the group's lag) says it.
   */
  backlogUpTo?: number;
  /**
   * Also claim due events (what claimDue() takes), in the same history statement: the look
   * for due retries then costs no round trip of its own. A claim that makes no history
   * statement (nothing was read) may skip the look; ClaimResult.due says whether it looked.
   */
  due?: DueLook;
  /** Crash injection for tests (src/failpoints.ts); absent in production. */
  failpoints?: Failpoints;
}

/** renew(): the claims `consumer` holds and wants to keep for `leaseMs` more from `now`. */
export interface RenewRequest {
  consumer: string;
  receipts: Receipt[];
  leaseMs: number;
  /** The consumer's clock, as claimDue's leases are. */
  now: Date;
}

/** claimDue(): `max` due events for `consumer`, on its clock `now`, leased for `leaseMs`. */
export type DueRequest = DueLook & { consumer: string };

/**
 * What happened to a claimed event. `attempts` was already counted at claim time, so:
 *  - completed: done.
 *  - retry: the attempt failed; pending again, due at `retryAt`, error appended.
 *  - defer: not attempted (scope busy elsewhere, an open circuit breaker); pending again,
 *    due at `retryAt`, and the attempt is given back - it does not count towards the maximum.
 *  - dlq: the attempt failed and it was the last; the event goes to the dead-letter queue.
 */
export type Outcome =
  | { receipt: Receipt; status: "completed" }
  | { receipt: Receipt; status: "retry"; error: string; retryAt: Date }
  | { receipt: Receipt; status: "defer"; reason: string; retryAt: Date }
  | { receipt: Receipt; status: "dlq"; error: string; event: EventEnvelope; attempts: number };

export interface SettleRequest {
  consumer: string;
  outcomes: Outcome[];
  /** Receipts from ClaimResult.skipped: acknowledged, nothing recorded. */
  skipped?: Receipt[];
  now: Date;
  /**
   * The scope fences each outcome was decided under (event id -> fences): an outcome whose
   * holder lost a scope to a newer one without releasing it is not recorded (src/backends/fences.ts).
   */
  fences?: FencesByEvent;
  failpoints?: Failpoints;
}

export interface SettleResult {
  /** Outcomes recorded. Fewer than given when another consumer took an event over meanwhile. */
  recorded: number;
}

/** Counts for health and metrics. */
export interface HistoryCounts {
  pending: number;
  processing: number;
  completed: number;
  dlq: number;
  /** Pending events waiting for a retry (next_retry_at in the future). */
  retryBacklog: number;
  /** Age of the oldest event that is pending or processing, seconds (0 when none). */
  oldestPendingAgeSeconds: number;
}

export interface LaneStats {
  lane: string;
  /** Entries in the stream (including already processed ones until trimmed). */
  length: number;
  /** Delivered to a consumer, not yet acknowledged. */
  pending: number;
  /** Entries not yet delivered to the group (null if Redis cannot tell). */
  lag: number | null;
  consumers: number;
}

export interface PublishOptions {
  /**
   * Consumer wake-up debounce window, ms. When set, the store also answers (in the same
   * round trip) whether this publish opened a new window, i.e. whether the caller should
   * send the wake-up message (src/ingest/wake.ts).
   */
  wakeWindowMs?: number;
}

export interface PublishReceipt {
  /** This publish opened a wake-up window: send the wake-up. Always false without wakeWindowMs. */
  wake: boolean;
  /** How much longer the current wake-up window stays open, ms (0 when not asked). */
  wakeWindowLeftMs: number;
}

export interface Dedupe {
  /** Logical key, e.g. "<source>:<delivery id>"; the backend namespaces it. */
  key: string;
  windowS: number;
}

export type DedupedReceipt = PublishReceipt & ({ duplicate: false } | { duplicate: true; firstId: string });

/**
 * A key an event claims for a window when it is stored (publishGuarded): a client's event
 * id, a webhook delivery id, a digest of a signed body. The key remembers the event's id and
 * `digest` (what the key stood for: the client's body).
 */
export interface Guard {
  /** Logical key, e.g. "@id:<uuid>"; the backend namespaces it. */
  key: string;
  /** Hex digest of what the key stands for. */
  digest: string;
  /**
   * The key seen with another digest: "conflict" refuses the whole publish (a client id
   * reused for another body), "duplicate" answers a duplicate (a redelivery).
   */
  onMismatch: "conflict" | "duplicate";
}

export interface GuardedEvent {
  event: EventEnvelope;
  /** Keys the event claims; none: published as is. */
  guards: Guard[];
}

export type GuardVerdict =
  | { status: "stored" }
  /** A guard key was seen within the window with this digest (or the guard says duplicate): nothing stored for it. */
  | { status: "duplicate"; firstId: string }
  /** A guard key was seen with another digest: nothing of the whole publish is stored. */
  | { status: "conflict"; firstId: string; key: string };

export interface GuardedReceipt extends PublishReceipt {
  /** One verdict per event, in order. */
  results: GuardVerdict[];
  /** Some event is a conflict: nothing was stored, no key recorded. */
  conflict: boolean;
}

/**
 * Where a replay job's copies wait to be handled: a lane of its own, drained by the replay
 * runner's consumer (src/jobs), so that a replay never queues in front of live traffic.
 */
export interface ReplayLane {
  /** The lane's name, as the consumer drains it (ClaimRequest.lane). */
  readonly name: string;
  /** Copies appended and not handled yet (back-pressure for the runner), read in `tx` where it matters. */
  backlog(tx: Pick<Db, "execute">): Promise<number>;
  /**
   * Appends copies, in order. `tx` is the runner's chunk transaction: a lane in Postgres
   * writes in it (the copies exist if and only if the job's cursor moved past them); a
   * stream cannot, and gets a chunk again when the transaction rolls back (copy ids are
   * deterministic, so history still holds each once).
   */
  append(events: EventEnvelope[], tx: Pick<Db, "execute">): Promise<void>;
}

/**
 * An event claimed and not settled, as the transport holds it (Redis: an entry of a lane's
 * pending-entries list), for the admin API, the CLI and health.
 */
export interface InFlight {
  /** null when the entry was trimmed away while pending, or not asked for (inFlight's withEvents). */
  event: EventEnvelope | null;
  lane: string;
  entryId: string;
  /** The consumer (invocation) holding it. */
  consumer: string;
  /** Its latest delivery (a read or a reclaim). */
  since: Date;
  /** Deliveries so far, this one included: one that died mid-handler counts as an attempt. */
  deliveries: number;
}

export interface EventStore {
  readonly backend: "redis" | "postgres";
  /**
   * Events in flight that history does not show as such, up to `perLane` per lane (Redis:
   * a claim is the pending-entries list, and the history row is written at the outcome).
   * `withEvents` (default true): read each entry's envelope too. Absent where history holds
   * every claim as a 'processing' row (the Postgres backend).
   */
  inFlight?(perLane: number, withEvents?: boolean): Promise<InFlight[]>;
  /**
   * Durably appends the events, in order, in one round trip. All or nothing from the
   * caller's view: on error, answer 5xx (some may have been appended: client-supplied ids
   * make a retry idempotent, history stores each id once).
   */
  publish(events: EventEnvelope[], opts?: PublishOptions): Promise<PublishReceipt>;
  /**
   * Appends one event unless `dedupe.key` was seen within `dedupe.windowS` seconds
   * (webhook redeliveries). Atomic: the key is recorded if and only if the event was
   * appended, so a failed publish never makes the provider's retry look like a duplicate.
   */
  publishOnce(event: EventEnvelope, dedupe: Dedupe, opts?: PublishOptions): Promise<DedupedReceipt>;
  /**
   * Appends the events whose guard keys are all unseen within `windowS` seconds, and records
   * those keys (event id and digest) for the window; events with a key seen are duplicates
   * and are not appended. Atomic, one round trip: keys are recorded if and only if their
   * event was appended, and when any event is a conflict nothing at all is appended.
   */
  publishGuarded(items: GuardedEvent[], windowS: number, opts?: PublishOptions): Promise<GuardedReceipt>;

  /** The lanes the consumer drains by default: one per shard. */
  lanes(): string[];
  claim(req: ClaimRequest): Promise<ClaimResult>;
  claimDue(req: DueRequest): Promise<ClaimResult>;
  settle(req: SettleRequest): Promise<SettleResult>;
  /**
   * Extends `consumer`'s claims of `receipts` by `leaseMs` from `now` (Postgres-side leases; a
   * stream entry's idle time), only where the consumer still holds them. Answers the event
   * ids still held: the others were taken over, and their handlers must not start.
   */
  renew(req: RenewRequest): Promise<Set<string>>;
  /**
   * Sends what settle() left owed: a backend may defer acknowledging the transport (the
   * Redis one sends its XACKs with the next read). The consumer calls it when its run ends.
   */
  flush(): Promise<void>;

  laneStats(lane: string): Promise<LaneStats>;
  historyCounts(now: Date): Promise<HistoryCounts>;
  /**
   * Removes consumers of `lane` that have nothing pending and were idle longer than `idleMs`
   * (consumer names are per invocation, so they pile up). Called by the scheduled sweeper
   * (src/jobs), not by the consumer itself. Returns the names removed.
   */
  pruneConsumers(lane: string, idleMs: number): Promise<string[]>;
  /**
   * Ordered scopes (src/consume/ordered-scopes.ts), where events travel in streams: per lane, the
   * oldest entry delivered and not acknowledged (every entry before it has a durable outcome
   * in history), or null when none is. A backend without it has every event in history from
   * its publish on.
   */
  pendingFloors?(lanes: string[]): Promise<Map<string, string | null>>;
}

/**
 * State of the stateful trigger filters (rate limit, dedupe): it must hold across
 * invocations and isolates, so it lives with the backend (a Redis script, a Postgres row).
 */
export interface FilterState {
  /** True while fewer than `max` distinct events used `key` in this window (or this event already did). */
  rateLimit(key: string, max: number, windowMs: number, eventId: string): Promise<boolean>;
  /** True for the first event with `key` in the window from its first sight at `nowMs` (and for that same event again). */
  dedupe(key: string, windowMs: number, eventId: string, nowMs: number): Promise<boolean>;
}

/**
 * Scope locks: events that share a scope key are handled one at a time, also across
 * concurrent invocations; a batch takes and lets go of its scopes in one call.
 *
 * Each grant carries a fencing token that only grows per scope (src/backends/fences.ts). Once
 * tryAcquire has returned a scope, no earlier holder that lost it without releasing it (a
 * lapsed lease, a dead lock session) can record an outcome or a step under its old token.
 */
export interface ScopeLocks {
  /** Takes every free scope of `scopes` without waiting; returns the ones now held by us. */
  tryAcquire(scopes: string[]): Promise<Set<string>>;
  /** The fencing token of our grant of `scope`; undefined when we do not hold it. */
  fence(scope: string): number | undefined;
  release(scopes: string[]): Promise<void>;
  /** Extends the lease of scopes we hold (Redis); Postgres locks need none. */
  renew(scopes: string[]): Promise<void>;
  /** Releases everything still held and frees resources. */
  close(): Promise<void>;
}

/** A DLQ trail entry: the event, why it died, after how many attempts, when. */
export interface DlqTrailEntry {
  event: EventEnvelope;
  error: string;
  attempts: number;
  at: string;
}

/**
 * Stream upkeep for the scheduled sweeper, where events travel in streams: trimming what
 * every consumer group has acknowledged, and the DLQ trail.
 */
export interface StreamUpkeep {
  replayLane(): ReplayLane;
  /** Trims `lane` up to `cutoffMs`, never past an entry a group still needs; returns entries removed. */
  trimAcknowledged(lane: string, cutoffMs: number): Promise<number>;
  trimDlqTrail(cutoffMs: number): Promise<number>;
  appendDlqTrail(entries: DlqTrailEntry[], maxlen: number): Promise<void>;
}
