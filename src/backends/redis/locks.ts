/**
 * Scope locks on Redis: the @upstash/lock algorithm (SET key <owner
 * token> NX PX <lease>; release and renew only when the key still holds our token, in a
 * script), applied to many keys per script call, so a batch's scopes cost one command.
 * Token-owned and expiring: a crashed invocation's locks free themselves after
 * LOCK_LEASE_MS; a live one renews them while its batch runs.
 */
import type { ScopeLocks } from "../types";
import type { Redis } from "./client";

// KEYS: lock keys. ARGV[1] token, ARGV[2] lease ms. Returns 1/0 per key.
const ACQUIRE = `
local out = {}
for i = 1, #KEYS do
  if redis.call('SET', KEYS[i], ARGV[1], 'NX', 'PX', ARGV[2]) then out[i] = 1
  elseif redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    out[i] = 1
  else out[i] = 0 end
end
return out
`;
const RELEASE = `
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then n = n + redis.call('DEL', KEYS[i]) end
end
return n
`;
const RENEW = `
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then n = n + redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
end
return n
`;

export class RedisScopeLocks implements ScopeLocks {
  private readonly held = new Set<string>();
  readonly token = `lk-${crypto.randomUUID()}`;

  constructor(
    private readonly redis: Redis,
    private readonly keyOf: (scope: string) => string,
    private readonly leaseMs: number,
  ) {}

  async tryAcquire(scopes: string[]): Promise<Set<string>> {
    const want = scopes.filter((s) => !this.held.has(s));
    if (want.length) {
      const r = (await this.redis.eval(ACQUIRE, want.map(this.keyOf), [this.token, String(this.leaseMs)])) as number[];
      want.forEach((s, i) => {
        if (Number(r[i]) === 1) this.held.add(s);
      });
    }
    return new Set(scopes.filter((s) => this.held.has(s)));
  }

  async release(scopes: string[]): Promise<void> {
    const mine = scopes.filter((s) => this.held.has(s));
    if (!mine.length) return;
    for (const s of mine) this.held.delete(s);
    await this.redis.eval(RELEASE, mine.map(this.keyOf), [this.token]);
  }

  async renew(scopes: string[]): Promise<void> {
    const mine = scopes.filter((s) => this.held.has(s));
    if (mine.length) await this.redis.eval(RENEW, mine.map(this.keyOf), [this.token, String(this.leaseMs)]);
  }

  async close(): Promise<void> {
    await this.release([...this.held]);
  }
}
