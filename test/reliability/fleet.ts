/**
 * The consumer fleet: what Cloudflare would run while traffic flows - a cron trigger on a
 * (compressed) schedule and wake-up queue deliveries, several at once, overlapping.
 *
 * Two ways in, both the real consumer code:
 *  - "consumer": runConsumer() built exactly as src/consume/entry.ts builds it (its own
 *    Postgres pool, backend bundle - store, scope locks, filter state of the configured
 *    backends - and consumer name per invocation), with the run's trigger registry and, on
 *    some runs, crash failpoints armed;
 *  - "entry": the worker's own `scheduled` / `queue` handlers (consumeInWorker with
 *    defaultTriggers, where the test registered the same trigger), no failpoints.
 *
 * A run that crashes (CrashInjected) is abandoned as a dead isolate would be: no settle, no
 * lock release; what it held is recovered by other runs after VISIBILITY_TIMEOUT_MS (Redis
 * locks run out after LOCK_LEASE_MS; Postgres advisory locks end with the session, whose
 * socket dies with the isolate). Runs failing because Redis or Postgres is down are counted for the fault
 * report; the fleet just keeps scheduling runs, as the platform would.
 */
import {
  createExecutionContext,
  createMessageBatch,
  createScheduledController,
  waitOnExecutionContext,
} from "cloudflare:test";
import { openBackend } from "../../src/backends";
import { type Config, type Env, loadConfig, type WakeMessage } from "../../src/config";
import { runConsumer } from "../../src/consume/consumer";
import { openDb } from "../../src/db/client";
import { CrashInjected, type Failpoint, Failpoints } from "../../src/failpoints";
import worker from "../../src/index";
import { defaultTriggers, TriggerRegistry, type TriggerSpec } from "../../src/triggers/registry";
import { freshEnv } from "../support/env";

export const FAILPOINTS: Failpoint[] = [
  "after-claim-before-persist",
  "after-persist-before-dispatch",
  "after-persist-before-ack",
];

export interface RunRecord {
  role: "cron" | "queue";
  via: "consumer" | "entry";
  started: number;
  ended?: number;
  crashed?: Failpoint;
  error?: string;
  /** Calls under way right now (store, locks, filter state, pool close): what a slow run waits on. */
  waiting: Map<string, number>;
}

export interface FleetOptions {
  triggers: TriggerRegistry;
  /**
   * The crash points the backend has (default: all). The Postgres backend claims and
   * records in one statement, so it has no point between claim and persist.
   */
  failpoints?: readonly Failpoint[];
  /** Cron period (compressed: Cloudflare's is a minute), ms. */
  cronEveryMs: number;
  /** Queue deliveries running at once, at most. */
  queueConcurrency: number;
  /** Each point crashes at least this many runs before arming becomes rare. */
  minCrashesPerPoint: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Fleet {
  readonly runs: RunRecord[] = [];
  readonly crashes: Map<Failpoint, number>;
  /** Runs started while another was running, and the most at once. */
  overlapping = 0;
  maxAtOnce = 0;
  /** Wake-up messages the worker sent (ingest nudges and retry wake-ups). */
  wakeMessages = 0;
  private active = new Set<Promise<void>>();
  private activeRecords = new Set<RunRecord>();
  private inbox: WakeMessage[] = [];
  private timers = new Set<ReturnType<typeof setTimeout>>();
  private stopped = false;
  private loops: Promise<void>[] = [];
  private seq = 0;
  private paused = false;

  private env!: Env;
  private cfg!: Config;

  /**
   * A fleet running `trigger` - in a registry of its own, and in defaultTriggers, which the
   * worker's own entry points run (the caller unregisters it after) - with a cron run every
   * 300 ms and up to 3 queue runs at once, on the worker env freshEnv(vars) with the fleet's
   * queue bound.
   */
  static async start(
    o: Pick<FleetOptions, "failpoints" | "minCrashesPerPoint"> & {
      trigger: TriggerSpec;
      vars: Record<string, unknown>;
    },
  ): Promise<{ fleet: Fleet; env: Env; cfg: Config }> {
    defaultTriggers.register(o.trigger);
    const fleet = new Fleet({
      triggers: new TriggerRegistry().register(o.trigger),
      ...(o.failpoints ? { failpoints: o.failpoints } : {}),
      cronEveryMs: 300,
      queueConcurrency: 3,
      minCrashesPerPoint: o.minCrashesPerPoint,
    });
    const env = await freshEnv({ ...o.vars, WAKE_QUEUE: fleet.queue });
    const cfg = loadConfig(env);
    fleet.attach(env, cfg);
    return { fleet, env, cfg };
  }

  constructor(private readonly o: FleetOptions) {
    this.crashes = new Map((o.failpoints ?? FAILPOINTS).map((p) => [p, 0]));
  }

  /** The environment the runs use (made after the fleet, since it holds the fleet's queue). */
  attach(env: Env, cfg: Config): void {
    this.env = env;
    this.cfg = cfg;
  }

  /** The WAKE_QUEUE binding handed to the worker: messages become queue deliveries here. */
  readonly queue = {
    send: async (body: WakeMessage, opts?: { delaySeconds?: number }) => this.enqueue([{ body, ...opts }]),
    sendBatch: async (messages: Iterable<MessageSendRequest<WakeMessage>>) => this.enqueue([...messages]),
  } as unknown as Queue<WakeMessage>;

  private enqueue(messages: Array<{ body: WakeMessage; delaySeconds?: number }>): void {
    for (const m of messages) {
      this.wakeMessages++;
      const delay = (m.delaySeconds ?? 0) * 1000;
      if (delay === 0) this.inbox.push(m.body);
      else {
        const t = setTimeout(() => {
          this.timers.delete(t);
          this.inbox.push(m.body);
        }, delay);
        this.timers.add(t);
      }
    }
  }

  start(): void {
    this.loops.push(this.cronLoop(), this.queueLoop());
  }

  /** While paused no new run starts (runs in progress finish). */
  pause(p: boolean): void {
    this.paused = p;
  }

  /**
   * Lets the runs under way finish with no new run starting (at most `maxMs`), then takes
   * `look` while still none starts, and resumes the schedule. With a run fired every few
   * hundred ms, "no run in flight" is never seen by chance, and a look slower than the gap
   * between runs (a count over a big history) would always overlap the next one; this is how
   * the harness tells "drained" from "between two runs". Answers the look and how many runs
   * were still in flight when it was taken.
   */
  async quiesce<T>(maxMs: number, look: () => Promise<T>): Promise<{ seen: T; inFlight: number }> {
    const wasPaused = this.paused;
    this.paused = true;
    try {
      await Promise.race([Promise.all([...this.active]), sleep(maxMs)]);
      const inFlight = this.inFlight();
      return { seen: await look(), inFlight };
    } finally {
      this.paused = wasPaused;
    }
  }

  /**
   * Looks every half second until two looks in a row find `quiet` true with no run in flight,
   * or `deadline` (Date.now()) passes. A look that finds it quiet is taken again through
   * quiesce() (at most `quiesceMs`), as runs under way may still add work. `onLook` sees every
   * look with the runs in flight when it was taken. Answers whether it drained.
   */
  async drain<T>(o: {
    deadline: number;
    look: () => Promise<T>;
    quiet: (seen: T) => boolean;
    quiesceMs?: number;
    onLook?: (seen: T, inFlight: number, quietLooks: number) => void | Promise<void>;
  }): Promise<boolean> {
    let quietLooks = 0;
    while (Date.now() < o.deadline && quietLooks < 2) {
      await sleep(500);
      let seen: T = await o.look();
      let inFlight = this.inFlight();
      if (o.quiet(seen)) {
        const left = Math.max(0, o.deadline - Date.now());
        const q = await this.quiesce(Math.min(o.quiesceMs ?? left, left), o.look);
        seen = q.seen;
        inFlight = q.inFlight;
      }
      quietLooks = o.quiet(seen) && inFlight === 0 ? quietLooks + 1 : 0;
      await o.onLook?.(seen, inFlight, quietLooks);
    }
    return quietLooks >= 2;
  }

  /** Runs in progress right now. */
  inFlight(): number {
    return this.activeRecords.size;
  }

  /** The runs in progress, how long they have run and the calls they wait on (for diagnostics). */
  describeInFlight(now = Date.now()): string[] {
    return [...this.activeRecords].map((r) => {
      const calls = [...r.waiting.entries()].map(([k, t]) => `${k} ${((now - t) / 1000).toFixed(1)}s`);
      return `${r.role}/${r.via} ${((now - r.started) / 1000).toFixed(1)}s [${calls.join(", ") || "no tracked call"}]`;
    });
  }

  /**
   * Stops scheduling and waits for the runs under way, at most `maxMs`: answers the runs
   * still in flight then, with the calls they wait on (none when all ended). Every call a run
   * makes has a deadline, so one that outlives this is a hang worth naming.
   */
  async stop(maxMs = 120_000): Promise<string[]> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    await Promise.all(this.loops);
    await Promise.race([Promise.all([...this.active]), sleep(maxMs)]);
    return this.describeInFlight();
  }

  /** Starts one cron run now and waits for it (the final drain uses it). */
  async runOnce(): Promise<RunRecord> {
    return this.launch("cron", "consumer", [], false);
  }

  private async cronLoop(): Promise<void> {
    let tick = 0;
    while (!this.stopped) {
      // A slow cron run does not stop the next one: Cloudflare fires on schedule.
      if (!this.paused && [...this.activeRecords].filter((r) => r.role === "cron").length < 2) {
        void this.launch("cron", tick++ % 4 === 3 ? "entry" : "consumer", [], true);
      }
      await sleep(this.o.cronEveryMs);
    }
  }

  private async queueLoop(): Promise<void> {
    let n = 0;
    while (!this.stopped) {
      while (
        !this.paused &&
        this.inbox.length &&
        [...this.activeRecords].filter((r) => r.role === "queue").length < this.o.queueConcurrency
      ) {
        const batch = this.inbox.splice(0, 100);
        void this.launch("queue", n++ % 3 === 2 ? "entry" : "consumer", batch, true);
      }
      await sleep(25);
    }
  }

  /** Failpoints for a run: the point that crashed least so far, often until each has its share. */
  private arm(): Failpoints | undefined {
    const least = [...this.crashes.keys()].reduce((a, b) => (this.crashes.get(a)! <= this.crashes.get(b)! ? a : b));
    const short = this.crashes.get(least)! < this.o.minCrashesPerPoint;
    // Until each point has its share, most runs are armed (runs that find no work never reach one).
    if (Math.random() >= (short ? 0.7 : 0.08)) return undefined;
    return new Failpoints({ [least]: short || Math.random() < 0.5 ? 1 : 2 });
  }

  private launch(
    role: RunRecord["role"],
    via: RunRecord["via"],
    messages: WakeMessage[],
    armed: boolean,
  ): Promise<RunRecord> {
    const rec: RunRecord = { role, via, started: Date.now(), waiting: new Map() };
    if (this.activeRecords.size > 0) this.overlapping++;
    this.activeRecords.add(rec);
    this.maxAtOnce = Math.max(this.maxAtOnce, this.activeRecords.size);
    this.runs.push(rec);
    const p = (async () => {
      try {
        if (via === "entry") await tracked(rec, "entry", () => this.viaEntry(role, messages));
        else await this.viaConsumer(rec, armed ? this.arm() : undefined);
      } catch (e) {
        if (e instanceof CrashInjected) {
          rec.crashed = e.point;
          this.crashes.set(e.point, this.crashes.get(e.point)! + 1);
        } else rec.error = e instanceof Error ? `${e.name}: ${e.message}`.slice(0, 300) : String(e);
      } finally {
        rec.ended = Date.now();
        this.activeRecords.delete(rec);
      }
    })();
    this.active.add(p);
    void p.then(() => this.active.delete(p));
    return p.then(() => rec);
  }

  /** src/consume/entry.ts consumeInWorker, with the run's registry and optional failpoints. */
  private async viaConsumer(rec: RunRecord, failpoints: Failpoints | undefined): Promise<void> {
    const cfg = this.cfg;
    const db = openDb(cfg);
    const backend = openBackend(cfg, db);
    const locks = track(rec, "locks", backend.scopeLocks());
    let crashed = false;
    try {
      await runConsumer({
        store: track(rec, "store", backend.store),
        triggers: this.o.triggers,
        locks,
        filterState: track(rec, "filterState", backend.filterState()),
        config: cfg,
        env: this.env,
        db: db.db,
        name: `c-rel-${this.seq++}-${crypto.randomUUID().slice(0, 8)}`,
        ...(failpoints ? { failpoints } : {}),
        // Retries wake the consumer through the queue, as in the worker.
        scheduleWake: async (delays) =>
          this.enqueue(delays.map((d) => ({ body: { kind: "wake", at: Date.now() + d * 1000 }, delaySeconds: d }))),
      });
    } catch (e) {
      crashed = e instanceof CrashInjected;
      throw e;
    } finally {
      // A crashed isolate releases nothing: Redis scope locks run out by their lease. Its
      // sockets die with it, though: closing the Postgres lock session (destroyed, not
      // returned) is that death, and the pool could not end while it stays checked out.
      if (!crashed || cfg.LOCK_BACKEND === "postgres") await locks.close().catch(() => {});
      await tracked(rec, "db.close", () => db.close());
    }
  }

  /** The worker's own scheduled / queue handler (src/index.ts). */
  private async viaEntry(role: RunRecord["role"], messages: WakeMessage[]): Promise<void> {
    const ctx = createExecutionContext();
    try {
      if (role === "cron") {
        await worker.scheduled!(
          createScheduledController({ cron: "* * * * *", scheduledTime: Date.now() }),
          this.env,
          ctx,
        );
      } else {
        const batch = createMessageBatch<WakeMessage>(
          "reflex-wake",
          messages.map((body, i) => ({ id: `m-${Date.now()}-${i}`, timestamp: new Date(), attempts: 1, body })),
        );
        await worker.queue!(batch, this.env, ctx);
      }
    } finally {
      await waitOnExecutionContext(ctx).catch(() => {});
    }
  }
}

let trackedSeq = 0;

/** Runs `f`, listing `what` among the calls `rec` waits on until it settles. */
async function tracked<T>(rec: RunRecord, what: string, f: () => Promise<T>): Promise<T> {
  // Two calls of one kind at once get distinct keys (a size-based suffix could repeat).
  const key = rec.waiting.has(what) ? `${what}#${++trackedSeq}` : what;
  rec.waiting.set(key, Date.now());
  try {
    return await f();
  } finally {
    rec.waiting.delete(key);
  }
}

/** `obj` with every method call tracked as `<label>.<method>` (see tracked). */
function track<T extends object>(rec: RunRecord, label: string, obj: T): T {
  return new Proxy(obj, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== "function" || typeof prop !== "string") return v;
      return (...args: unknown[]) => {
        const out = (v as (...a: unknown[]) => unknown).apply(target, args);
        return out instanceof Promise ? tracked(rec, `${label}.${prop}`, () => out) : out;
      };
    },
  });
}
