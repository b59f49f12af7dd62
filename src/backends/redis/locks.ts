/**
 * Scope locks on Redis: the @upstash/lock algorithm (SET key <owner
 * token> NX PX <lease>; release and renew only when the key still holds our token, in a
 * script), applied to many keys per script call, so a batch's scopes cost one command.
 * Token-owned and expiring: a crashed invocation's locks free themselves after
 * LOCK_LEASE_MS; a live one renews them while its batch runs.
 *
 * Fencing (src/backends/fences.ts): the acquire script hands each grant a token from the scope's
 * counter (INCR) and reports the earlier holder whose lease ran out (and, after Redis lost its
 * data, every earlier holder); the floor is recorded in Postgres before tryAcquire returns,
 * so those holders' late writes are refused.
 */
import type { Db } from "../../db/client";
import { ALL_SCOPES, type Fence, raiseFloors } from "../fences";
import type { ScopeLocks } from "../types";
import type { Redis } from "./client";
import type { RedisKeys } from "./keys";
import { type RedisScripts, redisScripts } from "./scripts";

/**
 * How long an idle scope's fence counter is kept. One that is gone starts again above every
 * earlier token (the script seeds it from the clock), so this only bounds the keys kept.
 */
const FENCE_IDLE_MS = 24 * 3600 * 1000;

export class RedisScopeLocks implements ScopeLocks {
  /** Scopes held, each with its grant's fencing token. */
  private readonly held = new Map<string, number>();
  readonly token = `lk-${crypto.randomUUID()}`;
  private readonly scripts: RedisScripts;

  constructor(
    redis: Redis,
    private readonly keys: Pick<RedisKeys, "lock" | "fence" | "fenceEpoch">,
    private readonly leaseMs: number,
    /** Postgres, where the floors of lapsed holders are recorded; without it they are not fenced. */
    private readonly db?: Pick<Db, "execute">,
  ) {
    this.scripts = redisScripts(redis);
  }

  async tryAcquire(scopes: string[]): Promise<Set<string>> {
    const want = scopes.filter((s) => !this.held.has(s));
    if (want.length) {
      const got = await this.scripts.lockAcquire(
        this.keys.fenceEpoch,
        want.map((s) => ({ lock: this.keys.lock(s), fence: this.keys.fence(s) })),
        this.token,
        this.leaseMs,
        FENCE_IDLE_MS,
      );
      const floors: Fence[] = got.all > 0 ? [{ scope: ALL_SCOPES, token: got.all }] : [];
      want.forEach((s, i) => {
        const g = got.grants[i]!;
        if (g.token > 0) this.held.set(s, g.token);
        if (g.token > 0 && g.floor > 0) floors.push({ scope: s, token: g.floor });
      });
      if (floors.length && this.db) {
        try {
          await raiseFloors(this.db, floors);
        } catch (e) {
          // Not ours then: the leases lapse unreleased, and the next grants floor them again.
          for (const s of want) this.held.delete(s);
          throw e;
        }
      }
    }
    return new Set(scopes.filter((s) => this.held.has(s)));
  }

  fence(scope: string): number | undefined {
    return this.held.get(scope);
  }

  async release(scopes: string[]): Promise<void> {
    const mine = scopes.flatMap((s) => {
      const token = this.held.get(s);
      return token === undefined ? [] : [{ lock: this.keys.lock(s), fence: this.keys.fence(s), token }];
    });
    if (!mine.length) return;
    for (const s of scopes) this.held.delete(s);
    await this.scripts.lockRelease(mine, this.token);
  }

  async renew(scopes: string[]): Promise<void> {
    const mine = scopes.filter((s) => this.held.has(s));
    if (mine.length) await this.scripts.lockRenew(mine.map(this.keys.lock), this.token, this.leaseMs);
  }

  async close(): Promise<void> {
    await this.release([...this.held.keys()]);
  }
}
