/**
 * FilterState in Redis: each round of checks (./filter-batch.ts) is ONE script call, so
 * stateful filters cost one command per batch, not per event. The script runs the checks in
 * the order they were queued.
 *
 * Keys start with REDIS_PREFIX (./keys.ts) and expire on their own.
 */

import { BatchedFilterState, type Check } from "../filter-batch";
import type { Redis } from "./client";

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

export class RedisFilterState extends BatchedFilterState {
  constructor(
    private readonly redis: Redis,
    private readonly keyOf: (name: string) => string,
  ) {
    super();
  }

  protected stateKey(_op: Check["op"], key: string): string {
    return this.keyOf(key);
  }

  protected async send(batch: Check[]): Promise<boolean[]> {
    const args = batch.flatMap((c) => [c.op, c.member, String(c.a), String(c.b)]);
    const r = (await this.redis.eval(
      SCRIPT,
      batch.map((c) => c.key),
      args,
    )) as number[];
    return batch.map((_, i) => Number(r[i]) === 1);
  }
}
