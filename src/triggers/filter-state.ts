/**
 * FilterState in Redis. Every check made while a batch is matched is queued and sent in ONE
 * script call per round (a microtask), so stateful filters cost one command per batch, not
 * per event. Checks run in the order they were queued - the batch's order - so a rate limit
 * admits the earliest events of the batch.
 *
 * Keys start with REDIS_PREFIX (src/store/keys.ts) and expire on their own.
 */
import type { Redis } from "../store/redis";
import type { FilterState } from "./filters";

/** One queued check of a stateful filter (both FilterState backends queue these). */
export interface Check {
  /** r: rate limit; d: dedupe. */
  op: "r" | "d";
  key: string;
  /** r: max; d: now (consumer clock, ms). */
  a: number;
  /** r: key ttl ms; d: window ms. */
  b: number;
  member: string;
  resolve: (ok: boolean) => void;
  reject: (e: unknown) => void;
}

// KEYS[i] = state key; ARGV = op, member, a, b for each key, in order.
// r (rate limit): a = max, b = ttl ms; the key is a set of the event ids admitted in its window.
// d (dedupe): a = now ms (the consumer's clock), b = window ms; the key holds
//   "<first event id>|<window end>", so the window follows the consumer's clock, and the
//   key's own TTL only cleans up.
const SCRIPT = `
local out = {}
for i = 1, #KEYS do
  local op, member, a, b = ARGV[i*4-3], ARGV[i*4-2], tonumber(ARGV[i*4-1]), tonumber(ARGV[i*4])
  local k = KEYS[i]
  if op == 'r' then
    if redis.call('SISMEMBER', k, member) == 1 then out[i] = 1
    elseif redis.call('SCARD', k) < a then
      redis.call('SADD', k, member)
      redis.call('PEXPIRE', k, b)
      out[i] = 1
    else out[i] = 0 end
  else
    local v = redis.call('GET', k)
    local first, ends
    if v then first, ends = string.match(v, '^(.*)|(%d+)$') end
    if first == member then out[i] = 1
    elseif first and tonumber(ends) > a then out[i] = 0
    else
      redis.call('SET', k, member .. '|' .. string.format('%d', a + b), 'PX', b)
      out[i] = 1
    end
  end
end
return out
`;

export class RedisFilterState implements FilterState {
  private queue: Check[] = [];
  /** Script calls made (for tests and the bench). */
  calls = 0;

  constructor(
    private readonly redis: Redis,
    private readonly keyOf: (name: string) => string,
  ) {}

  rateLimit(key: string, max: number, windowMs: number, eventId: string): Promise<boolean> {
    return this.enqueue("r", key, max, windowMs, eventId);
  }

  dedupe(key: string, windowMs: number, eventId: string, nowMs: number): Promise<boolean> {
    return this.enqueue("d", key, nowMs, windowMs, eventId);
  }

  private enqueue(op: Check["op"], key: string, a: number, b: number, member: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      if (this.queue.length === 0) queueMicrotask(() => void this.flush());
      this.queue.push({ op, key: this.keyOf(key), a: Math.floor(a), b: Math.ceil(b), member, resolve, reject });
    });
  }

  private async flush(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    this.calls++;
    try {
      const args = batch.flatMap((c) => [c.op, c.member, String(c.a), String(c.b)]);
      const r = (await this.redis.eval(SCRIPT, batch.map((c) => c.key), args)) as number[];
      batch.forEach((c, i) => c.resolve(Number(r[i]) === 1));
    } catch (e) {
      for (const c of batch) c.reject(e);
    }
  }
}
