/**
 * EventStore on Redis Streams (Upstash). The stream is the transport and work queue;
 * Postgres (src/db) remains the system of record.
 *
 * Stream entry: one field `e` holding the whole envelope as JSON, so that no client-side
 * deserialisation can alter it. XADD trims approximately (MAXLEN ~) in the same command.
 */
import type { Config } from "../../config";
import type { Db } from "../../db/client";
import { historyCounts, persistClaimed, settleCompleted, settleOutcomes } from "../../db/history";
import type { EventEnvelope } from "../../events/envelope";
import { claimDueFromHistory, dueEvent, settleRows } from "../shared";
import type {
  ClaimedEvent,
  ClaimRequest,
  ClaimResult,
  Dedupe,
  DedupedReceipt,
  DueRequest,
  EventStore,
  HistoryCounts,
  LaneStats,
  Outcome,
  PublishOptions,
  PublishReceipt,
  Receipt,
  SettleRequest,
  SettleResult,
} from "../types";
import type { Redis } from "./client";
import { redisKeys, shardOf } from "./keys";

export const ENTRY_FIELD = "e";

export class RedisStreamStore implements EventStore {
  readonly backend = "redis" as const;
  readonly keys: ReturnType<typeof redisKeys>;

  /**
   * Stream entries whose outcome is durable in Postgres but not yet acknowledged, by lane.
   * settle() leaves its XACKs here; the next read of new entries sends them in the same
   * script (ACK_THEN_READ), and flush() at the end of a run sends what is left. A batch thus
   * costs one Redis command (the read) instead of two. Deferring an XACK is safe: until it is
   * sent the entry stays pending, and a consumer that reclaims it (a crash in between) finds
   * its history final and only acknowledges it.
   */
  private readonly unacked = new Map<string, string[]>();
  /** EVALSHA, falling back to EVAL on NOSCRIPT (the SDK's Script); one per store. */
  private readonly ackThenRead: ReturnType<Redis["createScript"]>;

  constructor(
    readonly redis: Redis,
    readonly cfg: Pick<Config, "REDIS_PREFIX" | "STREAM_SHARDS" | "STREAM_MAXLEN"> &
      Partial<Pick<Config, "STREAM_RETENTION_S">>,
    /** Postgres history: needed to consume (claim/settle), not to publish. */
    readonly db?: Db,
  ) {
    this.keys = redisKeys(cfg.REDIS_PREFIX);
    this.ackThenRead = redis.createScript(ACK_THEN_READ);
  }

  streamFor(e: EventEnvelope): string {
    return this.keys.stream(shardOf(e.source, this.cfg.STREAM_SHARDS));
  }

  /**
   * Approximate trimming done by every XADD of publish(): by age (MINID ~ now minus
   * STREAM_RETENTION_S) when that is set, else by length (MAXLEN ~ STREAM_MAXLEN).
   */
  private publishTrim(): { type: "MAXLEN"; threshold: number } | { type: "MINID"; threshold: string } {
    const retention = this.cfg.STREAM_RETENTION_S;
    return retention
      ? { type: "MINID", threshold: String(Date.now() - retention * 1000) }
      : { type: "MAXLEN", threshold: this.cfg.STREAM_MAXLEN };
  }

  /**
   * One XADD per event, all in one pipeline (one HTTP request). With `wakeWindowMs`, the
   * wake-up gate rides in the same pipeline: SET wake NX PX (did this publish open a
   * window?) and PTTL (how long until the next may), so debouncing costs no round trip.
   */
  async publish(events: EventEnvelope[], opts: PublishOptions = {}): Promise<PublishReceipt> {
    const ask = opts.wakeWindowMs !== undefined && opts.wakeWindowMs > 0;
    if (events.length === 0) return { wake: false, wakeWindowLeftMs: 0 };
    const trim = { ...this.publishTrim(), comparison: "~" as const };
    if (events.length === 1 && !ask) {
      // The usual single-event publish: one plain command. (A Pipeline object is a few
      // hundred closures to build; this path is most of ingest's traffic.)
      const e = events[0]!;
      await this.redis.xadd(this.streamFor(e), "*", { [ENTRY_FIELD]: JSON.stringify(e) }, { trim });
      return { wake: false, wakeWindowLeftMs: 0 };
    }
    const p = this.redis.pipeline();
    for (const e of events) p.xadd(this.streamFor(e), "*", { [ENTRY_FIELD]: JSON.stringify(e) }, { trim });
    if (ask) {
      p.set(this.keys.wake, "1", { nx: true, px: opts.wakeWindowMs! });
      p.pttl(this.keys.wake);
    }
    const r = (await p.exec()) as unknown[];
    if (!ask) return { wake: false, wakeWindowLeftMs: 0 };
    return { wake: r[events.length] === "OK", wakeWindowLeftMs: Math.max(0, Number(r[events.length + 1])) };
  }

  /**
   * publish() of one event guarded by a dedupe key, as one script (one command, one round
   * trip, atomic): GET the key -> duplicate; else XADD, then SET key = event id EX window.
   * The key exists if and only if the XADD happened, whatever fails when: had we SET NX
   * first and XADDed after, a failure in between would leave a key that makes the
   * provider's retry a "duplicate" of an event that was never stored. If the answer is
   * lost after the script ran, the retry finds the key and gets the first id - correct,
   * since that event is in the stream.
   */
  async publishOnce(event: EventEnvelope, dedupe: Dedupe, opts: PublishOptions = {}): Promise<DedupedReceipt> {
    const trim = this.publishTrim();
    const wakeMs = opts.wakeWindowMs && opts.wakeWindowMs > 0 ? opts.wakeWindowMs : 0;
    const r = (await this.redis
      .createScript<unknown[]>(PUBLISH_ONCE)
      .exec(
        [this.keys.dedupe(dedupe.key), this.streamFor(event), this.keys.wake],
        [
          event.id,
          String(Math.ceil(dedupe.windowS)),
          JSON.stringify(event),
          trim.type,
          String(trim.threshold),
          String(wakeMs),
          ENTRY_FIELD,
        ],
      )) as unknown[];
    if (Number(r[0]) === 0) return { duplicate: true, firstId: String(r[1]), wake: false, wakeWindowLeftMs: 0 };
    return { duplicate: false, wake: Number(r[1]) === 1, wakeWindowLeftMs: Math.max(0, Number(r[2])) };
  }

  // ---------------------------------------------------------------------------------
  // Consuming (src/consume). The stream is the work queue; Postgres holds the outcome.
  // ---------------------------------------------------------------------------------

  lanes(): string[] {
    return Array.from({ length: this.cfg.STREAM_SHARDS }, (_, i) => this.keys.stream(i));
  }

  private history(): Db {
    if (!this.db) throw new Error("RedisStreamStore: consuming needs the Postgres history (pass a Db)");
    return this.db;
  }

  /**
   * Reads one batch (XREADGROUP > or XAUTOCLAIM), then records it in history in one
   * statement before returning it (claiming due events in the same statement when asked).
   * The group is created on first use (NOGROUP), from id 0 so that events published before
   * any consumer ran are not skipped.
   */
  async claim(req: ClaimRequest): Promise<ClaimResult> {
    const db = this.history();
    const { entries, cursor } = await this.withGroup(req.lane, () => this.read(req));
    if (entries.length) req.failpoints?.hit("after-claim-before-persist");

    const skipped: Receipt[] = [];
    const poison: Array<{ entryId: string; raw: string | undefined }> = [];
    const byId = new Map<string, { event: EventEnvelope; receipt: Receipt }>();
    for (const [entryId, fields] of entries) {
      const raw = fieldOf(fields, ENTRY_FIELD);
      const event = parseEnvelope(raw);
      if (!event) {
        poison.push({ entryId, raw });
        continue;
      }
      const receipt: Receipt = { eventId: event.id, lane: req.lane, entryId };
      // The same event twice in one read (a republish after a crash): handle it once.
      if (byId.has(event.id)) skipped.push(receipt);
      else byId.set(event.id, { event, receipt });
    }
    if (poison.length) await this.quarantine(req.lane, poison);

    // Nothing read: no history statement to make, so no look for due events either.
    const due = entries.length ? req.due : undefined;
    const persisted = await persistClaimed(
      db,
      req.consumer,
      [...byId.values()].map((x) => x.event),
      due,
    );
    const events: ClaimedEvent[] = persisted.due.map(dueEvent);
    const ownedIds = new Map(persisted.owned.map((o) => [o.id, o.attempts]));
    for (const [id, x] of byId) {
      const attempts = ownedIds.get(id);
      if (attempts === undefined)
        skipped.push(x.receipt); // already final in history
      else events.push({ ...x, attempts });
    }
    return {
      events,
      skipped,
      read: entries.length,
      ...(cursor !== undefined ? { cursor } : {}),
      ...(due ? { due: persisted.due.length } : {}),
    };
  }

  private async read(req: ClaimRequest): Promise<{ entries: StreamEntry[]; cursor?: string }> {
    const group = this.keys.group;
    if (req.mode === "reclaim") {
      const r = (await this.redis.xautoclaim(req.lane, group, req.consumer, req.reclaimIdleMs, req.cursor ?? "0-0", {
        count: req.max,
      })) as [string, Array<StreamEntry | null>, string[]?];
      // Entries trimmed away while pending come back as null (or in the deleted list) and
      // are dropped from the pending list by Redis itself; their history, if any, is the
      // sweeper's concern (rows stuck in 'processing').
      return { entries: (r[1] ?? []).filter((x): x is StreamEntry => Array.isArray(x)), cursor: String(r[0]) };
    }
    // XREADGROUP, with the acknowledgements deferred by settle() in the same script.
    const r = (await this.sendingOwedAcks((acks) =>
      this.ackThenRead.exec(
        [req.lane, ...acks.map(([lane]) => lane)],
        [group, req.consumer, String(req.max), ...acks.flatMap(([, ids]) => [String(ids.length), ...ids])],
      ),
    )) as Array<[string, StreamEntry[]]> | null;
    return { entries: r?.[0]?.[1] ?? [] };
  }

  private async withGroup<T>(lane: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (!String((e as Error)?.message).includes("NOGROUP")) throw e;
      try {
        await this.redis.xgroup(lane, { type: "CREATE", group: this.keys.group, id: "0", options: { MKSTREAM: true } });
      } catch (e2) {
        if (!String((e2 as Error)?.message).includes("BUSYGROUP")) throw e2;
      }
      return await fn();
    }
  }

  /** Entries that are not an envelope cannot enter history: park them in the DLQ stream, raw. */
  private async quarantine(lane: string, bad: Array<{ entryId: string; raw: string | undefined }>) {
    const p = this.redis.pipeline();
    for (const b of bad) {
      p.xadd(
        this.keys.dlq,
        "*",
        { raw: b.raw ?? "", lane, entry: b.entryId, error: "stream entry is not an event envelope" },
        {
          trim: { type: "MAXLEN", comparison: "~", threshold: this.cfg.STREAM_MAXLEN },
        },
      );
    }
    p.xack(
      lane,
      this.keys.group,
      bad.map((b) => b.entryId),
    );
    await p.exec();
  }

  async claimDue(req: DueRequest): Promise<ClaimResult> {
    return claimDueFromHistory(this.history(), req);
  }

  /** Outcomes into Postgres (one statement), then DLQ entries (now) and XACKs (owed: see `unacked`). */
  async settle(req: SettleRequest): Promise<SettleResult> {
    // Every outcome 'completed' (the usual batch): the cheaper statement, and no DLQ entries.
    if (req.outcomes.every((o) => o.status === "completed")) {
      const recorded = await settleCompleted(
        this.history(),
        req.consumer,
        req.outcomes.map((o) => o.receipt.eventId),
        req.now,
      );
      req.failpoints?.hit("after-persist-before-ack");
      // Acknowledge only what this consumer recorded (see below). The cheap statement counts
      // rows, not ids: if any event was taken over, acknowledge none of the batch's entries;
      // the recorded ones are reclaimed later and skipped as final, which is harmless.
      const mine = recorded === req.outcomes.length ? req.outcomes.map((o) => o.receipt) : [];
      await this.ack([...mine, ...(req.skipped ?? [])], req.now);
      return { recorded };
    }
    const rows = settleRows(req.outcomes);
    const recorded = await settleOutcomes(this.history(), req.consumer, rows, req.now);
    req.failpoints?.hit("after-persist-before-ack");

    // An outcome that did not apply belongs to an event another consumer took over (our claim
    // outlived VISIBILITY_TIMEOUT_MS). Its stream entry is that consumer's now: XACK (which
    // acts for the whole group) would drop it from the pending list, and if that consumer then
    // died the event would wait for the sweeper instead of being reclaimed.
    const recordedSet = new Set(recorded);
    const mine = req.outcomes.filter((o) => recordedSet.has(o.receipt.eventId));
    const dead = mine.filter((o) => o.status === "dlq");
    await this.ack([...mine.map((o) => o.receipt), ...(req.skipped ?? [])], req.now, dead);
    return { recorded: recorded.length };
  }

  /**
   * Acknowledges the receipts' stream entries: deferred to the next read (see `unacked`),
   * unless DLQ entries are to be appended for `dead` (at `now`); then those and every
   * acknowledgement still owed go out now, in one pipeline.
   */
  private async ack(receipts: Receipt[], now: Date, dead: Outcome[] = []): Promise<void> {
    for (const r of receipts) if (r.lane !== null && r.entryId !== null) this.deferAck(r.lane, [r.entryId]);
    if (dead.length === 0) return;
    const p = this.redis.pipeline();
    for (const o of dead) {
      if (o.status !== "dlq") continue;
      p.xadd(
        this.keys.dlq,
        "*",
        {
          [ENTRY_FIELD]: JSON.stringify(o.event),
          id: o.event.id,
          error: o.error,
          attempts: String(o.attempts),
          at: now.toISOString(),
        },
        { trim: { type: "MAXLEN", comparison: "~", threshold: this.cfg.STREAM_MAXLEN } },
      );
    }
    await this.sendAcks(p);
  }

  private deferAck(lane: string, ids: string[]): void {
    const list = this.unacked.get(lane);
    if (list) list.push(...ids);
    else this.unacked.set(lane, [...ids]);
  }

  /** Sends the acknowledgements still owed (settle() defers them): the consumer calls it when its run ends. */
  async flush(): Promise<void> {
    if (this.unacked.size) await this.sendAcks(this.redis.pipeline());
  }

  /** Adds an XACK per lane owed to `p` and executes it. */
  private async sendAcks(p: ReturnType<Redis["pipeline"]>): Promise<void> {
    await this.sendingOwedAcks((acks) => {
      for (const [lane, ids] of acks) p.xack(lane, this.keys.group, ids);
      return p.exec();
    });
  }

  /**
   * Hands the acknowledgements owed, by lane, to `send`, which sends them with its request.
   * If it fails they were not sent (or not known to be): they stay owed, for the next read or
   * flush(). An XACK sent twice is harmless.
   */
  private async sendingOwedAcks<T>(send: (acks: Array<[string, string[]]>) => Promise<T>): Promise<T> {
    const acks = [...this.unacked];
    this.unacked.clear();
    try {
      return await send(acks);
    } catch (e) {
      for (const [lane, ids] of acks) this.deferAck(lane, ids);
      throw e;
    }
  }

  async laneStats(lane: string): Promise<LaneStats> {
    const [length, groups] = (await this.redis
      .pipeline()
      .xlen(lane)
      .xinfo(lane, { type: "GROUPS" })
      .exec()
      .catch(async (e: unknown) => {
        // XINFO on a stream that does not exist yet: nothing published, nothing pending.
        if (String((e as Error)?.message).includes("no such key")) return [0, []];
        throw e;
      })) as [number, unknown[][]];
    const mine = groups.map(pairs).find((g) => g.name === this.keys.group);
    return {
      lane,
      length: Number(length),
      pending: Number(mine?.pending ?? 0),
      lag: mine?.lag === undefined || mine.lag === null ? (mine ? null : Number(length)) : Number(mine.lag),
      consumers: Number(mine?.consumers ?? 0),
    };
  }

  historyCounts(now: Date): Promise<HistoryCounts> {
    return historyCounts(this.history(), now);
  }

  /**
   * Atomic (one script): a consumer is deleted only if, at that instant, it has nothing
   * pending - XGROUP DELCONSUMER would otherwise drop its pending entries, i.e. lose them.
   */
  async pruneConsumers(lane: string, idleMs: number): Promise<string[]> {
    const r = (await this.redis.eval(PRUNE_CONSUMERS, [lane], [this.keys.group, String(idleMs)])) as string[] | null;
    return r ?? [];
  }
}

/** [entryId, [field, value, field, value, ...]] as Redis returns it. */
type StreamEntry = [string, string[]];

function fieldOf(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

function parseEnvelope(raw: string | undefined): EventEnvelope | undefined {
  if (raw === undefined) return undefined;
  try {
    const e = JSON.parse(raw) as EventEnvelope;
    if (e && typeof e.id === "string" && typeof e.type === "string" && typeof e.source === "string" && e.meta) return e;
  } catch {
    // fall through: not an envelope
  }
  return undefined;
}

/** XINFO's flat [k, v, k, v] arrays as objects. */
function pairs(a: unknown[]): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (let i = 0; i + 1 < a.length; i += 2) o[String(a[i])] = a[i + 1];
  return o;
}

/**
 * KEYS[1]: the lane to read; KEYS[2..]: lanes with acknowledgements owed. ARGV: group,
 * consumer, count, then for each of KEYS[2..] the number of entry ids and the ids.
 * XACKs (in chunks: unpack() has a stack limit), then XREADGROUP ... > (no BLOCK in a script).
 */
const ACK_THEN_READ = `
local group = ARGV[1]
local a = 4
for k = 2, #KEYS do
  local n = tonumber(ARGV[a])
  for i = a + 1, a + n, 500 do
    redis.call('XACK', KEYS[k], group, unpack(ARGV, i, math.min(i + 499, a + n)))
  end
  a = a + n + 1
end
return redis.call('XREADGROUP', 'GROUP', group, ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
`;

/**
 * KEYS: dedupe key, stream, wake gate. ARGV: event id, dedupe window s, envelope JSON,
 * trim strategy (MAXLEN|MINID), trim threshold, wake window ms ("0": don't ask), entry field.
 * Returns {0, first id} for a duplicate, else {1, opened wake window 0|1, wake gate PTTL}.
 */
const PUBLISH_ONCE = `
local first = redis.call('GET', KEYS[1])
if first then return {0, first} end
redis.call('XADD', KEYS[2], ARGV[4], '~', ARGV[5], '*', ARGV[7], ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if ARGV[6] == '0' then return {1, 0, 0} end
local opened = redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[6])
return {1, opened and 1 or 0, redis.call('PTTL', KEYS[3])}
`;

const PRUNE_CONSUMERS = `
local ok, list = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then return {} end
local removed = {}
for _, c in ipairs(list) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if tonumber(f['pending']) == 0 and tonumber(f['idle']) > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    table.insert(removed, f['name'])
  end
end
return removed
`;
