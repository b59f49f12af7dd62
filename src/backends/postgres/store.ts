/**
 * EventStore on Postgres alone (the Postgres backend): the events table is both the
 * queue and the history, as in the original Reflex. For teams that want one managed
 * service; Redis Streams (../redis/store.ts) is the throughput option.
 *
 *  - publish: one multi-row INSERT of fresh 'pending' rows (./queue.ts); the wake
 *    gate rides in the same statement, and ingest sends the same Cloudflare Queue nudge as
 *    with Redis. No NOTIFY: Workers hold no long-lived LISTEN connection to hear it, and
 *    NOTIFY serialises committing transactions on a global lock - a cost with no listener.
 *  - claim: lane "pg:events" (live traffic), or "pg:replay" (replay copies, appended by the
 *    replay runner: src/jobs/replay-runner.ts). Mode "new" is one UPDATE ... WHERE id IN
 *    (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n) RETURNING of the lane's fresh events,
 *    leased for the request's reclaimIdleMs (VISIBILITY_TIMEOUT_MS); with ClaimRequest.due,
 *    claimDue's UPDATE rides in the same statement. Mode "reclaim" has nothing to do: expired leases
 *    (a consumer that died) are taken over by claimDue(), which also takes due retries -
 *    the shared ../history-writes.ts statement, unchanged.
 *  - settle: the shared settle statement; there is no transport to acknowledge, and the
 *    DLQ is the 'dlq' status (no DLQ stream).
 *
 * Round trips per batch: one claim, one settle (plus lock calls when triggers match).
 */
import type { Config } from "../../config";
import { type Db, openDb } from "../../db/client";
import type { EventEnvelope } from "../../events/envelope";
import { historyCounts, renewLeases, settleCompleted, settleOutcomes } from "../history-writes";
import { claimDueFromHistory, claimedEvent, dueEvent, settleRows } from "../shared";
import type {
  ClaimRequest,
  ClaimResult,
  Dedupe,
  DedupedReceipt,
  DueRequest,
  EventStore,
  GuardedEvent,
  GuardedReceipt,
  HistoryCounts,
  LaneStats,
  PublishOptions,
  PublishReceipt,
  RenewRequest,
  ReplayLane,
  SettleRequest,
  SettleResult,
} from "../types";
import { insertGuarded } from "./guarded";
import { claimFresh, freshBacklog, insertOnce, insertPending, queueStats } from "./queue";

/** The live lane of the Postgres backend: published events (column `lane` NULL). */
export const PG_LANE = "pg:events";
/** The replay lane: replay copies (column `lane` = 'replay'), drained by the replay runner. */
export const PG_REPLAY_LANE = "pg:replay";

/** The `lane` column's value for a lane name; throws on a name that is not a lane here. */
function laneColumn(lane: string): string | null {
  if (lane === PG_LANE) return null;
  if (lane === PG_REPLAY_LANE) return "replay";
  throw new Error(`PostgresEventStore: unknown lane "${lane}" (lanes: "${PG_LANE}", "${PG_REPLAY_LANE}")`);
}

type DbConfig = Pick<Config, "DATABASE_URL" | "DB_POOL_MAX" | "NEON_WS_PROXY">;

export class PostgresEventStore implements EventStore {
  readonly backend = "postgres" as const;

  constructor(
    private readonly cfg: DbConfig,
    /**
     * The invocation's database. Without it (ingest opens the store per request), each
     * publish opens a pool and ends it before answering: in Workers a connection must not
     * outlive its request.
     */
    private readonly db?: Db,
  ) {}

  private async withDb<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    if (this.db) return fn(this.db);
    const h = openDb(this.cfg);
    try {
      return await fn(h.db);
    } finally {
      await h.close();
    }
  }

  async publish(events: EventEnvelope[], opts: PublishOptions = {}): Promise<PublishReceipt> {
    if (events.length === 0) return { wake: false, wakeWindowLeftMs: 0 };
    const ask = opts.wakeWindowMs !== undefined && opts.wakeWindowMs > 0 ? opts.wakeWindowMs : undefined;
    const g = await this.withDb((db) => insertPending(db, events, ask));
    return { wake: g.opened, wakeWindowLeftMs: g.leftMs };
  }

  async publishOnce(event: EventEnvelope, dedupe: Dedupe, opts: PublishOptions = {}): Promise<DedupedReceipt> {
    const ask = opts.wakeWindowMs !== undefined && opts.wakeWindowMs > 0 ? opts.wakeWindowMs : undefined;
    const r = await this.withDb((db) => insertOnce(db, event, dedupe.key, Math.max(1, Math.ceil(dedupe.windowS)), ask));
    if (r.duplicate) return { duplicate: true, firstId: r.firstId, wake: false, wakeWindowLeftMs: 0 };
    return { duplicate: false, wake: r.opened, wakeWindowLeftMs: r.leftMs };
  }

  async publishGuarded(items: GuardedEvent[], windowS: number, opts: PublishOptions = {}): Promise<GuardedReceipt> {
    if (items.length === 0) return { results: [], conflict: false, wake: false, wakeWindowLeftMs: 0 };
    const ask = opts.wakeWindowMs !== undefined && opts.wakeWindowMs > 0 ? opts.wakeWindowMs : undefined;
    const r = await this.withDb((db) => insertGuarded(db, items, Math.max(1, Math.ceil(windowS)), ask));
    return { results: r.results, conflict: r.conflict, wake: r.opened, wakeWindowLeftMs: r.leftMs };
  }

  lanes(): string[] {
    return [PG_LANE];
  }

  async claim(req: ClaimRequest): Promise<ClaimResult> {
    const lane = laneColumn(req.lane);
    // Expired claims are claimDue()'s job here: "nothing to reclaim", with no round trip
    // unless the backlog was asked for.
    if (req.mode === "reclaim") {
      const upTo = req.backlogUpTo;
      const backlog = upTo ? await this.withDb((db) => freshBacklog(db, lane, upTo)) : undefined;
      return { events: [], skipped: [], read: 0, cursor: "0-0", ...(backlog !== undefined ? { backlog } : {}) };
    }
    // The lease is on the system clock, as ClaimRequest carries no consumer clock; claimDue()
    // compares it with the consumer's (equal to the system clock outside tests).
    const r = await this.withDb((db) =>
      claimFresh(
        db,
        { consumer: req.consumer, max: req.max, leaseUntil: new Date(Date.now() + req.reclaimIdleMs), lane },
        req.due,
      ),
    );
    const fresh = r.fresh.map((x) => claimedEvent(x, req.lane));
    return {
      events: [...r.due.map(dueEvent), ...fresh],
      skipped: [],
      read: fresh.length,
      ...(req.due ? { due: r.due.length } : {}),
    };
  }

  async claimDue(req: DueRequest): Promise<ClaimResult> {
    return this.withDb((db) => claimDueFromHistory(db, req));
  }

  async settle(req: SettleRequest): Promise<SettleResult> {
    // Every outcome 'completed' (the usual batch): the cheaper statement.
    if (req.outcomes.every((o) => o.status === "completed")) {
      const ids = req.outcomes.map((o) => o.receipt.eventId);
      const recorded = await this.withDb((db) => settleCompleted(db, req.consumer, ids, req.now, req.fences));
      req.failpoints?.hit("after-persist-before-ack");
      return { recorded };
    }
    const rows = settleRows(req.outcomes);
    const recorded = await this.withDb((db) => settleOutcomes(db, req.consumer, rows, req.now, req.fences));
    // Kept for parity with the Redis backend's crash tests: here nothing follows the write.
    req.failpoints?.hit("after-persist-before-ack");
    return { recorded: recorded.length };
  }

  /** Every claim here is a Postgres-side lease: one statement extends those still held. */
  async renew(req: RenewRequest): Promise<Set<string>> {
    const until = new Date(req.now.getTime() + req.leaseMs);
    const ids = req.receipts.map((r) => r.eventId);
    return new Set(await this.withDb((db) => renewLeases(db, req.consumer, ids, until)));
  }

  /** Nothing is ever owed: there is no transport to acknowledge. */
  async flush(): Promise<void> {}

  /** The replay lane: copies are fresh rows of lane 'replay', written in the runner's chunk transaction. */
  replayLane(): ReplayLane {
    const lane = laneColumn(PG_REPLAY_LANE);
    return {
      name: PG_REPLAY_LANE,
      // In the runner's transaction: a second pool connection could wait forever with DB_POOL_MAX=1.
      backlog: async (tx) => {
        const s = await queueStats(tx, lane);
        return s.fresh + s.processing;
      },
      append: async (events, tx) => {
        if (events.length) await insertPending(tx, events, undefined, lane);
      },
    };
  }

  async laneStats(lane: string): Promise<LaneStats> {
    const s = await this.withDb((db) => queueStats(db, laneColumn(lane)));
    // length: events not yet final; pending: claimed, unsettled; lag: fresh, never handed out.
    return { lane, length: s.open, pending: s.processing, lag: s.fresh, consumers: s.consumers };
  }

  historyCounts(now: Date): Promise<HistoryCounts> {
    return this.withDb((db) => historyCounts(db, now));
  }

  /** Consumers are not registered anywhere in Postgres: nothing to prune. */
  async pruneConsumers(): Promise<string[]> {
    return [];
  }
}
