/**
 * Stream upkeep for the scheduled functions (src/ops): appending to the replay lane,
 * measuring a lane's backlog, trimming what every consumer group has acknowledged, and the
 * DLQ trail. Redis-specific, like the rest of this directory's Redis code.
 */

import type { EventEnvelope } from "../../events/envelope";
import type { DlqTrailEntry, ReplayLane, StreamUpkeep } from "../types";
import type { Redis } from "./client";
import { redisKeys } from "./keys";
import { ENTRY_FIELD } from "./store";

export class RedisLanes implements StreamUpkeep {
  readonly keys: ReturnType<typeof redisKeys>;

  constructor(
    readonly redis: Redis,
    prefix: string,
  ) {
    this.keys = redisKeys(prefix);
  }

  /**
   * Appends events to `lane` in one pipeline (one request), untrimmed: entries of the
   * replay lane are only removed once acknowledged (trimAcknowledged), never dropped
   * unread. Same entry shape as publish(), so the consumer reads them unchanged.
   */
  async append(lane: string, events: EventEnvelope[]): Promise<void> {
    if (events.length === 0) return;
    const p = this.redis.pipeline();
    for (const e of events) p.xadd(lane, "*", { [ENTRY_FIELD]: JSON.stringify(e) });
    await p.exec();
  }

  /** The replay lane (a stream of its own) as the replay runner uses it. */
  replayLane(): ReplayLane {
    const name = this.keys.replayLane;
    return { name, backlog: () => this.backlog(name), append: (events) => this.append(name, events) };
  }

  /**
   * Entries of `lane` not yet handled by the consumer group: never delivered (lag) plus
   * delivered and unacknowledged (pending). With no group yet, every entry.
   */
  async backlog(lane: string): Promise<number> {
    const r = (await this.redis.eval(BACKLOG, [lane], [this.keys.group])) as number | string;
    return Number(r);
  }

  /**
   * XTRIM MINID ~ up to `cutoffMs` (entries older than that may go), but never past an entry
   * some consumer group still needs: the oldest pending entry of any group, or anything not
   * yet delivered to it. A stream without any group is left alone (nobody read it yet).
   * Returns the number of entries removed.
   */
  async trimAcknowledged(lane: string, cutoffMs: number): Promise<number> {
    return Number(await this.redis.eval(SAFE_TRIM, [lane], [`${Math.max(0, Math.floor(cutoffMs))}-0`]));
  }

  /** The DLQ trail has no consumer group: plain trim by age. */
  async trimDlqTrail(cutoffMs: number): Promise<number> {
    return Number(
      await this.redis.xtrim(this.keys.dlq, {
        strategy: "MINID",
        exactness: "~",
        threshold: `${Math.floor(cutoffMs)}-0`,
      }),
    );
  }

  /** One trail entry per event the sweeper dead-lettered (the consumer writes its own in settle). */
  async appendDlqTrail(entries: DlqTrailEntry[], maxlen: number): Promise<void> {
    if (entries.length === 0) return;
    const p = this.redis.pipeline();
    for (const x of entries) {
      p.xadd(
        this.keys.dlq,
        "*",
        {
          [ENTRY_FIELD]: JSON.stringify(x.event),
          id: x.event.id,
          error: x.error,
          attempts: String(x.attempts),
          at: x.at,
          by: "sweeper",
        },
        { trim: { type: "MAXLEN", comparison: "~", threshold: maxlen } },
      );
    }
    await p.exec();
  }
}

/** KEYS[1] stream; ARGV[1] group. lag (undelivered) + pending; XLEN when the group does not exist. */
const BACKLOG = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if not ok then return redis.call('XLEN', KEYS[1]) end
for _, g in ipairs(groups) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  if f['name'] == ARGV[1] then
    local lag = f['lag']
    if type(lag) ~= 'number' then
      -- lag unknown (entries deleted mid-stream): count what follows last-delivered-id
      local after = redis.call('XRANGE', KEYS[1], '(' .. f['last-delivered-id'], '+')
      lag = #after
    end
    return lag + f['pending']
  end
end
return redis.call('XLEN', KEYS[1])
`;

/** KEYS[1] stream; ARGV[1] cutoff id "ms-0". */
const SAFE_TRIM = `
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function less(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if not ok or #groups == 0 then return 0 end
local floor = ARGV[1]
for _, g in ipairs(groups) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  local p = redis.call('XPENDING', KEYS[1], f['name'])
  if p[2] and less(p[2], floor) then floor = p[2] end
  local lm, ls = parse(f['last-delivered-id'])
  local nextId = string.format('%d-%d', lm, ls + 1)
  if less(nextId, floor) then floor = nextId end
end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', floor)
`;
