/**
 * Every Lua script of the Redis backend, and the one way they are called. Each script is a
 * file of ./scripts/ whose header names its KEYS, ARGV and reply; it is loaded as text (a
 * wrangler module rule in the bundle and the tests, local/lua-text.ts under Node).
 *
 * A call is EVALSHA, falling back to EVAL when Redis answers NOSCRIPT (a restart or a SCRIPT
 * FLUSH forgot it), then EVALSHA again: the SDK's Script does exactly that. One Script per
 * script and client, made on its first call, so its SHA-1 is computed once per isolate.
 */
import type { Check } from "../filter-batch";
import type { Redis } from "./client";
import ackThenRead from "./scripts/ack-then-read.lua";
import backlog from "./scripts/backlog.lua";
import filterChecks from "./scripts/filter-checks.lua";
import inFlight from "./scripts/in-flight.lua";
import lockAcquire from "./scripts/lock-acquire.lua";
import lockRelease from "./scripts/lock-release.lua";
import lockRenew from "./scripts/lock-renew.lua";
import metricsAdd from "./scripts/metrics-add.lua";
import pendingFloors from "./scripts/pending-floors.lua";
import pruneConsumers from "./scripts/prune-consumers.lua";
import publishGuarded from "./scripts/publish-guarded.lua";
import publishOnce from "./scripts/publish-once.lua";
import reclaim from "./scripts/reclaim.lua";
import renewClaims from "./scripts/renew-claims.lua";
import safeTrim from "./scripts/safe-trim.lua";
import type { StreamEntry } from "./stream-entry";

/** How an XADD trims, approximately: by length, or by age (entries older than an id). */
export type StreamTrim = { type: "MAXLEN"; threshold: number } | { type: "MINID"; threshold: string };

/** What publish-once.lua needs besides its keys. */
export interface PublishOnceArgs {
  eventId: string;
  dedupeWindowS: number;
  envelopeJson: string;
  trim: StreamTrim;
  /** 0: do not ask for a wake-up. */
  wakeWindowMs: number;
  entryField: string;
}

export type PublishOnceReply =
  | { duplicate: true; firstId: string }
  | { duplicate: false; wake: boolean; wakeWindowLeftMs: number };

/** One event of publish-guarded.lua: its stream, envelope, id, and guard keys (namespaced). */
export interface GuardedEntry {
  stream: string;
  eventId: string;
  envelopeJson: string;
  guards: Array<{ key: string; digest: string; onMismatch: "conflict" | "duplicate" }>;
}

export interface PublishGuardedReply {
  conflict: boolean;
  wake: boolean;
  wakeWindowLeftMs: number;
  /** Per entry: 1 stored, 2 duplicate, 3 conflict; the first id; the 1-based guard that was seen (0: none). */
  results: Array<{ status: 1 | 2 | 3; firstId: string; hit: number }>;
}

/** One entry of a pending-entries list, with the entry's fields (empty when it was trimmed away). */
export interface PendingEntry {
  lane: string;
  entryId: string;
  consumer: string;
  idleMs: number;
  deliveries: number;
  fields: string[];
}

export interface RedisScripts {
  /** XAUTOCLAIM of idle entries for `consumer`, with each entry's delivery count: one command. */
  reclaim(r: {
    lane: string;
    group: string;
    consumer: string;
    minIdleMs: number;
    cursor: string;
    count: number;
    /** Also answer the group's lag (entries never delivered). */
    withLag: boolean;
  }): Promise<{ cursor: string; entries: StreamEntry[]; deliveries: number[]; lag: number | undefined }>;
  /** Resets the idle time of the entries of `lane` still pending for `consumer`; those ids. */
  renewClaims(lane: string, group: string, consumer: string, entryIds: string[]): Promise<string[]>;
  /** The pending-entries lists of `lanes` (up to `perLane` entries each), with the entries' fields if `withFields`. */
  inFlight(lanes: string[], group: string, perLane: number, withFields: boolean): Promise<PendingEntry[]>;
  /** Sends `acks` (entry ids by lane), then XREADGROUP ... > on `lane`: one command. */
  ackThenRead(
    read: { lane: string; group: string; consumer: string; count: number },
    acks: Array<[lane: string, ids: string[]]>,
  ): Promise<StreamEntry[]>;
  /** XADD guarded by a dedupe key, with the wake-up gate, atomically. */
  publishOnce(keys: { dedupe: string; stream: string; wake: string }, args: PublishOnceArgs): Promise<PublishOnceReply>;
  /** XADDs guarded by keys with digests, all or nothing on a conflict, with the wake-up gate, atomically. */
  publishGuarded(
    entries: GuardedEntry[],
    a: { windowS: number; trim: StreamTrim; wakeWindowMs: number; entryField: string; wake: string },
  ): Promise<PublishGuardedReply>;
  /** Deletes the idle consumers of `group` with nothing pending; their names. */
  pruneConsumers(stream: string, group: string, idleMs: number): Promise<string[]>;
  /** Entries of `stream` not yet handled by `group` (lag plus pending). */
  backlog(stream: string, group: string): Promise<number>;
  /** XTRIM MINID ~ `cutoffId`, never past an entry a group still needs; entries removed. */
  safeTrim(stream: string, cutoffId: string): Promise<number>;
  /**
   * Per lock, in order: the grant's fencing token (0: held by someone else) and the floor it
   * sets for earlier holders (0: none); `all`: a floor for every scope (0: none), when the
   * epoch key was missing. `fenceTtlMs`: how long an idle scope's counter is kept.
   */
  lockAcquire(
    epoch: string,
    locks: Array<{ lock: string; fence: string }>,
    owner: string,
    leaseMs: number,
    fenceTtlMs: number,
  ): Promise<{ all: number; grants: Array<{ token: number; floor: number }> }>;
  /** Locks deleted (only those holding `owner`), each grant marked released. */
  lockRelease(locks: Array<{ lock: string; fence: string; token: number }>, owner: string): Promise<number>;
  /** Locks renewed (only those holding `token`). */
  lockRenew(keys: string[], token: string, leaseMs: number): Promise<number>;
  /** Per check, in order: whether the event passes. */
  filterChecks(checks: Check[]): Promise<boolean[]>;
  /** HINCRBYFLOAT of each delta into the hash `key`. */
  metricsAdd(key: string, deltas: Array<[field: string, delta: number]>): Promise<void>;
  /** Per stream, in order: the oldest entry `group` has pending, or null when none is. */
  pendingFloors(streams: string[], group: string): Promise<Array<string | null>>;
}

const bound = new WeakMap<Redis, RedisScripts>();

/** The scripts bound to `redis`: the same object for every call with the same client. */
export function redisScripts(redis: Redis): RedisScripts {
  let s = bound.get(redis);
  if (!s) bound.set(redis, (s = bind(redis)));
  return s;
}

function bind(redis: Redis): RedisScripts {
  const read = script<Array<[string, StreamEntry[]]> | null>(redis, ackThenRead);
  const take = script<[string, StreamEntry[], Array<number | string>, number | string]>(redis, reclaim);
  const pel = script<unknown[] | null>(redis, inFlight);
  const keep = script<string[] | null>(redis, renewClaims);
  const once = script<unknown[]>(redis, publishOnce);
  const guarded = script<unknown[]>(redis, publishGuarded);
  const prune = script<string[] | null>(redis, pruneConsumers);
  const lag = script<number | string>(redis, backlog);
  const trim = script<number | string>(redis, safeTrim);
  const acquire = script<number[]>(redis, lockAcquire);
  const release = script<number>(redis, lockRelease);
  const renew = script<number>(redis, lockRenew);
  const checks = script<number[]>(redis, filterChecks);
  const add = script<number>(redis, metricsAdd);
  const floors = script<unknown[]>(redis, pendingFloors);
  return {
    async ackThenRead(r, acks) {
      const reply = await read.exec(
        [r.lane, ...acks.map(([lane]) => lane)],
        [r.group, r.consumer, String(r.count), ...acks.flatMap(([, ids]) => [String(ids.length), ...ids])],
      );
      return reply?.[0]?.[1] ?? [];
    },
    async reclaim(r) {
      const [cursor, entries, counts, lag] = await take.exec(
        [r.lane],
        [r.group, r.consumer, String(r.minIdleMs), r.cursor, String(r.count), r.withLag ? "1" : "0"],
      );
      return {
        cursor: String(cursor),
        entries: entries ?? [],
        deliveries: (counts ?? []).map(Number),
        lag: Number(lag) >= 0 ? Number(lag) : undefined,
      };
    },
    async renewClaims(lane, group, consumer, entryIds) {
      if (entryIds.length === 0) return [];
      return ((await keep.exec([lane], [group, consumer, ...entryIds])) ?? []).map(String);
    },
    async inFlight(lanes, group, perLane, withFields) {
      if (lanes.length === 0) return [];
      const r = (await pel.exec(lanes, [group, String(perLane), withFields ? "1" : "0"])) ?? [];
      const out: PendingEntry[] = [];
      for (let i = 0; i + 5 < r.length; i += 6) {
        out.push({
          lane: String(r[i]),
          entryId: String(r[i + 1]),
          consumer: String(r[i + 2]),
          idleMs: Number(r[i + 3]),
          deliveries: Number(r[i + 4]),
          fields: Array.isArray(r[i + 5]) ? (r[i + 5] as unknown[]).map(String) : [],
        });
      }
      return out;
    },
    async publishOnce(keys, a) {
      const r = await once.exec(
        [keys.dedupe, keys.stream, keys.wake],
        [
          a.eventId,
          String(Math.ceil(a.dedupeWindowS)),
          a.envelopeJson,
          a.trim.type,
          String(a.trim.threshold),
          String(a.wakeWindowMs),
          a.entryField,
        ],
      );
      if (Number(r[0]) === 0) return { duplicate: true, firstId: String(r[1]) };
      return { duplicate: false, wake: Number(r[1]) === 1, wakeWindowLeftMs: Math.max(0, Number(r[2])) };
    },
    async publishGuarded(entries, a) {
      const args = [String(Math.ceil(a.windowS)), a.trim.type, String(a.trim.threshold), String(a.wakeWindowMs)];
      args.push(a.entryField, String(entries.length));
      for (const e of entries) {
        args.push(e.envelopeJson, e.eventId, String(e.guards.length));
        for (const g of e.guards) args.push(g.digest, g.onMismatch);
      }
      const keys = [...entries.map((e) => e.stream), ...entries.flatMap((e) => e.guards.map((g) => g.key)), a.wake];
      const r = await guarded.exec(keys, args);
      return {
        conflict: Number(r[0]) === 1,
        wake: Number(r[1]) === 1,
        wakeWindowLeftMs: Math.max(0, Number(r[2])),
        results: entries.map((_, i) => ({
          status: Number(r[3 + 3 * i]) as 1 | 2 | 3,
          firstId: String(r[4 + 3 * i]),
          hit: Number(r[5 + 3 * i]),
        })),
      };
    },
    async pruneConsumers(stream, group, idleMs) {
      return (await prune.exec([stream], [group, String(idleMs)])) ?? [];
    },
    async backlog(stream, group) {
      return Number(await lag.exec([stream], [group]));
    },
    async safeTrim(stream, cutoffId) {
      return Number(await trim.exec([stream], [cutoffId]));
    },
    async lockAcquire(epoch, locks, owner, leaseMs, fenceTtlMs) {
      const r = await acquire.exec(
        [epoch, ...locks.flatMap((l) => [l.lock, l.fence])],
        [owner, String(leaseMs), String(fenceTtlMs)],
      );
      return {
        all: Number(r[0]),
        grants: locks.map((_, i) => ({ token: Number(r[1 + 2 * i]), floor: Number(r[2 + 2 * i]) })),
      };
    },
    async lockRelease(locks, owner) {
      return Number(
        await release.exec(
          locks.flatMap((l) => [l.lock, l.fence]),
          [owner, ...locks.map((l) => String(l.token))],
        ),
      );
    },
    async lockRenew(keys, token, leaseMs) {
      return Number(await renew.exec(keys, [token, String(leaseMs)]));
    },
    async filterChecks(list) {
      const r = await checks.exec(
        list.map((c) => c.key),
        list.flatMap((c) => [c.op, c.member, String(c.a), String(c.b)]),
      );
      return list.map((_, i) => Number(r[i]) === 1);
    },
    async metricsAdd(key, deltas) {
      await add.exec(
        [key],
        deltas.flatMap(([k, v]) => [k, String(v)]),
      );
    },
    async pendingFloors(streams, group) {
      if (streams.length === 0) return [];
      const r = await floors.exec(streams, [group]);
      return streams.map((_, i) => (r[i] ? String(r[i]) : null));
    },
  };
}

/** The SDK's Script for `text`, made on the first call (its SHA-1 computed then, once). */
function script<R>(redis: Redis, text: string): { exec(keys: string[], args: string[]): Promise<R> } {
  let made: { exec(keys: string[], args: string[]): Promise<R> } | undefined;
  return { exec: (keys, args) => (made ??= redis.createScript<R>(text)).exec(keys, args) };
}
