/**
 * EventStore on Redis Streams (Upstash). The stream is the transport and work queue;
 * Postgres (src/db) remains the system of record. Composed of one module per job:
 * ./stream-publisher.ts, ./claim.ts, ./settle.ts, ./acks.ts (the acknowledgements owed),
 * ./group.ts (the consumer group), ./stream-entry.ts (what a stream entry holds).
 */
import type { Config } from "../../config";
import type { Db } from "../../db/client";
import type { EventEnvelope } from "../../events/envelope";
import { historyCounts, renewLeases } from "../history-writes";
import { claimDueFromHistory } from "../shared";
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
  InFlight,
  LaneStats,
  PublishOptions,
  PublishReceipt,
  Receipt,
  RenewRequest,
  SettleRequest,
  SettleResult,
} from "../types";
import { AckLedger } from "./acks";
import { StreamClaimer } from "./claim";
import { Deliveries } from "./claimed";
import type { Redis } from "./client";
import { ConsumerGroup } from "./group";
import { redisKeys } from "./keys";
import { redisScripts } from "./scripts";
import { StreamSettler } from "./settle";
import { envelopeOf } from "./stream-entry";
import { type PublishConfig, StreamPublisher } from "./stream-publisher";

export class RedisStreamStore implements EventStore {
  readonly backend = "redis" as const;
  readonly keys: ReturnType<typeof redisKeys>;
  private readonly publisher: StreamPublisher;
  private readonly group: ConsumerGroup;
  private readonly acks: AckLedger;
  private readonly claimer: StreamClaimer;
  private readonly settler: StreamSettler;
  private readonly deliveries: Deliveries;
  private readonly scripts: ReturnType<typeof redisScripts>;

  constructor(
    readonly redis: Redis,
    readonly cfg: Pick<Config, "REDIS_PREFIX"> & PublishConfig,
    /** Postgres history: needed to consume (claim/settle), not to publish. */
    readonly db?: Db,
  ) {
    this.keys = redisKeys(cfg.REDIS_PREFIX);
    const scripts = redisScripts(redis);
    this.scripts = scripts;
    const dlq = { stream: this.keys.dlq, maxlen: cfg.STREAM_MAXLEN };
    this.publisher = new StreamPublisher(redis, this.keys, scripts, cfg);
    this.group = new ConsumerGroup(redis, scripts, this.keys.group);
    this.acks = new AckLedger(redis, this.keys.group);
    this.deliveries = new Deliveries();
    this.claimer = new StreamClaimer(redis, scripts, this.group, this.acks, this.deliveries, dlq);
    this.settler = new StreamSettler(redis, this.acks, this.deliveries, dlq);
  }

  streamFor(e: EventEnvelope): string {
    return this.publisher.streamFor(e);
  }

  publish(events: EventEnvelope[], opts?: PublishOptions): Promise<PublishReceipt> {
    return this.publisher.publish(events, opts);
  }

  publishOnce(event: EventEnvelope, dedupe: Dedupe, opts?: PublishOptions): Promise<DedupedReceipt> {
    return this.publisher.publishOnce(event, dedupe, opts);
  }

  publishGuarded(items: GuardedEvent[], windowS: number, opts?: PublishOptions): Promise<GuardedReceipt> {
    return this.publisher.publishGuarded(items, windowS, opts);
  }

  lanes(): string[] {
    return Array.from({ length: this.cfg.STREAM_SHARDS }, (_, i) => this.keys.stream(i));
  }

  private history(): Db {
    if (!this.db) throw new Error("RedisStreamStore: consuming needs the Postgres history (pass a Db)");
    return this.db;
  }

  async claim(req: ClaimRequest): Promise<ClaimResult> {
    return this.claimer.claim(this.history(), req);
  }

  async claimDue(req: DueRequest): Promise<ClaimResult> {
    const r = await claimDueFromHistory(this.history(), req);
    this.deliveries.handedOut(req.consumer, r.events);
    return r;
  }

  async settle(req: SettleRequest): Promise<SettleResult> {
    return this.settler.settle(this.history(), req);
  }

  /**
   * Stream claims are kept by resetting their entries' idle time (one script per lane), due
   * events' Postgres-side leases by one statement. A claim lost is forgotten here: the
   * consumer no longer holds that event.
   */
  async renew(req: RenewRequest): Promise<Set<string>> {
    const inDb: string[] = [];
    const byLane = new Map<string, Receipt[]>();
    for (const r of req.receipts) {
      if (r.lane === null || r.entryId === null) inDb.push(r.eventId);
      else byLane.set(r.lane, [...(byLane.get(r.lane) ?? []), r]);
    }
    const until = new Date(req.now.getTime() + req.leaseMs);
    const [fromDb, ...fromLanes] = await Promise.all([
      renewLeases(this.history(), req.consumer, inDb, until),
      ...[...byLane].map(async ([lane, rs]) => {
        const kept = new Set(
          await this.scripts.renewClaims(
            lane,
            this.keys.group,
            req.consumer,
            rs.map((r) => r.entryId ?? ""),
          ),
        );
        return rs.filter((r) => kept.has(r.entryId ?? "")).map((r) => r.eventId);
      }),
    ]);
    const held = new Set([...fromDb, ...fromLanes.flat()]);
    this.deliveries.settled(
      req.consumer,
      req.receipts.filter((r) => !held.has(r.eventId)),
    );
    return held;
  }

  /** Sends the acknowledgements still owed (settle() defers them): the consumer calls it when its run ends. */
  flush(): Promise<void> {
    return this.acks.flush();
  }

  /** The pending-entries lists of the shard lanes and the replay lane (one script), oldest delivery first. */
  async inFlight(perLane: number, withEvents = true): Promise<InFlight[]> {
    const now = Date.now();
    const lanes = [...this.lanes(), this.keys.replayLane];
    const pel = await this.scripts.inFlight(lanes, this.keys.group, perLane, withEvents);
    return pel
      .map((p) => ({
        event: envelopeOf(p.fields) ?? null,
        lane: p.lane,
        entryId: p.entryId,
        consumer: p.consumer,
        since: new Date(now - p.idleMs),
        deliveries: p.deliveries,
      }))
      .sort((a, b) => a.since.getTime() - b.since.getTime());
  }

  laneStats(lane: string): Promise<LaneStats> {
    return this.group.laneStats(lane);
  }

  /**
   * History's counts, with 'processing' from the pending-entries lists of the lanes: an
   * event read from a stream has no history row until its outcome. An entry whose outcome
   * is durable but whose acknowledgement is still owed (see ./acks.ts) counts as processing.
   */
  async historyCounts(now: Date): Promise<HistoryCounts> {
    const [counts, lanes] = await Promise.all([
      historyCounts(this.history(), now),
      Promise.all(this.lanes().map((l) => this.group.laneStats(l))),
    ]);
    return { ...counts, processing: counts.processing + lanes.reduce((n, l) => n + l.pending, 0) };
  }

  pruneConsumers(lane: string, idleMs: number): Promise<string[]> {
    return this.group.pruneConsumers(lane, idleMs);
  }

  async pendingFloors(lanes: string[]): Promise<Map<string, string | null>> {
    const floors = await redisScripts(this.redis).pendingFloors(lanes, this.group.name);
    return new Map(lanes.map((l, i) => [l, floors[i] ?? null]));
  }
}
