/**
 * Drive load through the real HTTP ingest, drain it with the real consumers, break
 * Redis, Postgres and the consumers on purpose while it runs, and account for every event.
 *
 * It runs once per event backend: EVENT_BACKEND=redis (Streams through the Upstash gateway,
 * history in Postgres) and EVENT_BACKEND=postgres with LOCK_BACKEND=postgres and no Upstash
 * at all (the events table is the queue), where the gateway faults have nothing to hit and
 * are left out.
 *
 * The run, in order (the fault thresholds are fractions of the planned events sent):
 *   - the consumer fleet starts (compressed cron + queue deliveries, overlapping; ./fleet.ts);
 *   - the client sends the plan (./traffic.ts) four requests at a time, retrying 5xx and
 *     timeouts with the same ids (./client.ts), while faults hit both sides (./faults.ts):
 *       10%: the Redis gateway answers 503;  30%: it holds requests open (hang);
 *       50%: Postgres is down for several seconds;
 *     crash failpoints fire in consumer runs throughout; handlers fail by plan (./handlers.ts);
 *   - at 75% the fleet pauses, so the last quarter is a backlog when ingest ends;
 *   - drain phase: the fleet resumes and meets Postgres down, gateway 503, gateway hang;
 *   - the fleet drains until nothing is open, then history is reconciled (./reconcile.ts).
 *
 * No timing assertions: durations only bound how long a fault is held.
 */
import { describe, expect, inject, it, vi } from "vitest";
import { openBackend } from "../../src/backends";
import { loadConfig } from "../../src/config";
import { openDb } from "../../src/db/client";
import { defaultTriggers } from "../../src/triggers/registry";
import { privateStandIns } from "../support/faults";
import { Client, Ledger } from "./client";
import { type Episode, Faults } from "./faults";
import { FAILPOINTS, Fleet } from "./fleet";
import { flakyTrigger, HandlerStats, TRIGGER_NAME } from "./handlers";
import { profile } from "./profile";
import { openWork, readHistory, reconcile, table } from "./reconcile";
import { API_KEY, buildPlan, WEBHOOK_SOURCES } from "./traffic";

const P = profile();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Settings of the run: small retry delays and leases so that recovery takes seconds, not minutes. */
const SETTINGS = {
  API_KEYS: API_KEY,
  WEBHOOK_SOURCES: JSON.stringify(WEBHOOK_SOURCES),
  STREAM_SHARDS: "2",
  EVENT_MAX_ATTEMPTS: "5",
  // Retry delays are real seconds (fractions allowed): 50 ms doubling up to 400 ms. The real
  // clock, not an injected one, because the worker's own entry points drain beside runConsumer.
  EVENT_RETRY_BASE_DELAY: "0.05",
  EVENT_RETRY_MAX_DELAY: "0.4",
  // A crashed run's stream entries are reclaimed after this; its scope locks expire after the lease.
  VISIBILITY_TIMEOUT_MS: "2500",
  LOCK_LEASE_MS: "1000",
  LOCK_WAIT_MS: "150",
  CONSUMER_BATCH_SIZE: "250",
  // Short invocations, so that there are many of them (and many overlaps).
  CONSUMER_TIME_BUDGET_MS: "4000",
  DB_POOL_MAX: "3",
  // Every simulated request runs inside this test's one request context, and workerd caps a
  // context's active timers at 10,000. Each Redis request holds a REDIS_TIMEOUT_MS deadline
  // timer until it runs out (AbortSignal.timeout), so the default 10 s deadline hits the cap
  // above 1,000 Redis requests/s - the long profile's ingest on a fast machine. A real
  // request makes a handful of Redis calls; a shorter deadline here keeps the timers down.
  // Longer than the client's 2.5 s timeout, so that a hung gateway shows as client timeouts.
  REDIS_TIMEOUT_MS: "4000",
  // A Postgres call on a connection the outage cut fails by this deadline instead of the
  // default 10 s: shorter than an outage episode (3-10 s), so the outage shows as failed runs.
  DB_TIMEOUT_MS: "3000",
  // Rate limits would turn load into 429s; they have their own tests.
  RATE_LIMIT_KEY_EVENTS: "0",
  RATE_LIMIT_SOURCE_REQUESTS: "0",
  WAKE_DEBOUNCE_MS: "250",
  CACHE_ENABLED: "false",
  LOG_LEVEL: "warn",
};

/** The worker logs every 503 and failed run (JSON lines): count them instead of printing thousands. */
function muteWorkerLogs() {
  const counts = new Map<string, number>();
  const spies = (["log", "warn", "error", "info"] as const).map((m) =>
    vi.spyOn(console, m).mockImplementation((...args: unknown[]) => {
      const level = /"level":"(\w+)"/.exec(String(args[0]))?.[1] ?? m;
      counts.set(level, (counts.get(level) ?? 0) + 1);
    }),
  );
  return {
    counts,
    restore: () => {
      for (const s of spies) s.mockRestore();
    },
  };
}

/** What differs per event backend: its settings, and whether Redis (the gateway) is in the path. */
const BACKENDS = [
  { backend: "redis", redis: true, events: P.events, failpoints: FAILPOINTS, settings: { EVENT_BACKEND: "redis" } },
  {
    backend: "postgres",
    redis: false,
    events: P.postgresEvents,
    // Claiming marks the rows 'processing' in the same statement: no point between claim and persist.
    failpoints: FAILPOINTS.filter((p) => p !== "after-claim-before-persist"),
    // A Postgres-only deployment: no Upstash variable, so metrics, cache and locks live in Postgres too.
    settings: {
      EVENT_BACKEND: "postgres",
      LOCK_BACKEND: "postgres",
      UPSTASH_REDIS_REST_URL: "",
      UPSTASH_REDIS_REST_TOKEN: "",
    },
  },
] as const;

for (const B of BACKENDS)
  describe(`reliability, EVENT_BACKEND=${B.backend} (${P.name} profile: ${B.events} events)`, () => {
    it(
      "every accepted event ends completed or dead-lettered exactly once, through crashes, outages, overlaps and duplicates",
      async () => {
        const pair = await privateStandIns();
        const stats = new HandlerStats();
        const { fleet, env } = await Fleet.start({
          trigger: flakyTrigger(stats),
          failpoints: B.failpoints,
          minCrashesPerPoint: 4,
          vars: { ...pair.env, ...SETTINGS, ...B.settings },
        });
        // The observer reads history and streams through the shared, healthy stand-ins.
        const observerCfg = loadConfig({
          ...env,
          ...(B.redis
            ? { UPSTASH_REDIS_REST_URL: inject("upstashUrl"), UPSTASH_REDIS_REST_TOKEN: inject("upstashToken") }
            : {}),
          NEON_WS_PROXY: inject("neonProxy"),
        });
        const observerDb = openDb(observerCfg);
        const observerStore = openBackend(observerCfg, observerDb).store;

        const plan = buildPlan({ ...P, events: B.events });
        const ledger = new Ledger();
        const client = new Client({ env, ledger, timeoutMs: 2_500 });
        const faults = new Faults(pair, fleet, ledger, !B.redis);
        const logs = muteWorkerLogs();
        const started = Date.now();
        const phases: Array<[string, number]> = [];
        let drained = false;
        // What the drain loop saw last: printed if the deadline passes, to tell what stayed open.
        let lastCheck: Record<string, number | string[]> = {};
        try {
          fleet.start();

          // --- ingest, with faults on both sides ------------------------------------------
          const total = plan.items.reduce((n, it) => n + Math.max(1, it.ids.length), 0);
          let sentEvents = 0;
          let next = 0;
          const producer = async () => {
            while (next < plan.items.length) {
              const item = plan.items[next++]!;
              sentEvents += Math.max(1, item.ids.length);
              // The last quarter piles up as a backlog for the drain-phase faults.
              if (sentEvents / total >= 0.75) fleet.pause(true);
              await client.deliver(item);
            }
          };
          const at = async (fraction: number) => {
            while (sentEvents / total < fraction) await sleep(20);
          };
          const ingestFaults = (async () => {
            if (B.redis) {
              await at(0.1);
              await faults.episode("gateway 503", "ingest", { minMs: 1_500, maxMs: 8_000 });
              await at(0.3);
              await faults.episode("gateway hang", "ingest", { minMs: 3_500, maxMs: 12_000 });
            }
            await at(0.5);
            await faults.episode("postgres down", "ingest", { minMs: 3_000, maxMs: 10_000 });
          })();
          await Promise.all([producer(), producer(), producer(), producer()]);
          await ingestFaults;
          // Requests abandoned by the client, answered after a hang: each has the worker's own
          // deadlines, so one still open after a minute is a hang.
          let answeredLate = 0;
          await Promise.race([Promise.all(ledger.late.map((p) => p.then(() => answeredLate++))), sleep(60_000)]);
          expect(ledger.late.length - answeredLate, "abandoned requests still unanswered a minute later").toBe(0);
          phases.push(["ingest", Date.now() - started]);

          // --- drain, with faults again ---------------------------------------------------
          const backlog = await openWork(observerDb, observerStore);
          fleet.pause(false);
          await sleep(300);
          await faults.episode("postgres down", "drain", { minMs: 3_000, maxMs: 10_000 });
          if (B.redis) {
            await sleep(1_000);
            await faults.episode("gateway 503", "drain", { minMs: 1_000, maxMs: 8_000 });
            await sleep(1_000);
            await faults.episode("gateway hang", "drain", { minMs: 2_000, maxMs: 8_000 });
          }
          phases.push(["drain faults", Date.now() - started]);

          // Drain until nothing is open, twice in a row (a run in flight may still add work).
          drained = await fleet.drain({
            deadline: Date.now() + P.drainTimeoutMs,
            look: () => openWork(observerDb, observerStore),
            quiet: (w) => w.open === 0 && w.pending === 0 && w.lag === 0,
            onLook: (w, inFlight, quietLooks) => {
              lastCheck = { ...w, inFlight, runs: fleet.describeInFlight() };
              if (quietLooks === 1 && !phases.some(([k]) => k === "first quiet check"))
                phases.push(["first quiet check", Date.now() - started]);
            },
          });
          const hung = await fleet.stop();
          phases.push(["drained", Date.now() - started]);
          expect(hung, "consumer runs still in flight two minutes after the fleet stopped").toEqual([]);

          // --- reconciliation ---------------------------------------------------------------
          const end = await openWork(observerDb, observerStore);
          const history = await readHistory(observerDb);
          const r = reconcile(history, ledger, stats, end.pending + end.lag);
          logs.restore();

          const ep = (kind: Episode["kind"], phase: Episode["phase"]) =>
            faults.episodes.find((e) => e.kind === kind && e.phase === phase);
          const answers = [...ledger.answers.entries()].sort((a, b) => String(a[0]).localeCompare(String(b[0])));
          const sentEventsTotal = plan.items.reduce((n, it) => n + Math.max(1, it.ids.length), 0);
          const refusedEvents = plan.items
            .filter((it) => !it.expect.accept)
            .reduce((n, it) => n + Math.max(1, it.ids.length), 0);
          const runs = fleet.runs;
          console.log(
            [
              "",
              table(
                `Reliability run, EVENT_BACKEND=${B.backend}: ${P.name} profile (${B.events} events, seed ${P.seed})`,
                [
                  ["events sent (distinct)", sentEventsTotal],
                  ["  meant to be accepted", plan.acceptable],
                  ["  in requests meant to be refused", refusedEvents],
                  ["requests sent (attempts)", ledger.sent],
                  ...answers.map(([s, n]) => [`  answered ${s}`, n] as [string, number]),
                  ["accepted (distinct ids answered 2xx)", r.accepted],
                  ...[...ledger.rejectedByStatus.entries()].map(
                    ([s, n]) => [`rejected ${s} (requests)`, n] as [string, number],
                  ),
                  ["completed", r.completed],
                  ["dead-lettered (with a reason)", r.deadLettered],
                  ...[...r.dlqWhy.entries()].sort().map(([k, n]) => [`  ${k}`, n] as [string, number]),
                  ["lost (must be 0)", r.lost.length],
                  ["duplicated (must be 0)", r.duplicated.length],
                  ["in history, never accepted (must be 0)", r.unexpected.length],
                  ["same-scope handlers at once (must be 0)", stats.scopeOverlaps],
                  ["stream entries unacknowledged (must be 0)", r.unacknowledged],
                  ["history rows", r.rows],
                ],
              ),
              table("Faults injected", [
                ...(B.redis
                  ? ([
                      ["gateway 503 during ingest: ingest 503s", ep("gateway 503", "ingest")!.ingest503],
                      ["  ... consumer runs failed", ep("gateway 503", "ingest")!.runsFailed],
                      ["gateway hang during ingest: client timeouts", ep("gateway hang", "ingest")!.clientTimeouts],
                      ["  ... consumer runs held", ep("gateway hang", "ingest")!.runsHeld],
                    ] as Array<[string, number]>)
                  : []),
                ["postgres down during ingest: consumer runs failed", ep("postgres down", "ingest")!.runsFailed],
                // Redis: ingest needs no Postgres and keeps accepting; Postgres: ingest answers 503.
                ["  ... ingest answers 2xx meanwhile", ep("postgres down", "ingest")!.accepted],
                ["  ... ingest answers 503 meanwhile", ep("postgres down", "ingest")!.ingest503],
                ["postgres down during drain: consumer runs failed", ep("postgres down", "drain")!.runsFailed],
                ...(B.redis
                  ? ([
                      ["gateway 503 during drain: consumer runs failed", ep("gateway 503", "drain")!.runsFailed],
                      ["gateway hang during drain: consumer runs held", ep("gateway hang", "drain")!.runsHeld],
                    ] as Array<[string, number]>)
                  : []),
                ...B.failpoints.map((p) => [`crash ${p}`, fleet.crashes.get(p)!] as [string, number]),
                [
                  "consumer runs (worker entry points among them)",
                  `${runs.length} (${runs.filter((x) => x.via === "entry").length})`,
                ],
                ["runs started while others ran / most at once", `${fleet.overlapping} / ${fleet.maxAtOnce}`],
                ["duplicate sends (resends, redeliveries, races)", ledger.duplicateSends],
                ["client retries after 5xx or timeout", ledger.retries],
                ["handler failures injected", stats.failuresInjected],
                ["handler calls", stats.calls],
                ["wake-up messages", fleet.wakeMessages],
              ]),
              `backlog when ingest ended: ${backlog.lag} unread entries, ${backlog.open} open events; ` +
                `phases (s): ${phases.map(([k, t]) => `${k} ${(t / 1000).toFixed(1)}`).join(", ")}; ` +
                `worker log lines: ${[...logs.counts.entries()].map(([k, n]) => `${k} ${n}`).join(", ")}`,
            ].join("\n"),
          );
          const unexpectedRunErrors = runs.filter((x) => x.error).map((x) => x.error!);
          if (unexpectedRunErrors.length)
            console.log(
              `run errors (first 5 of ${unexpectedRunErrors.length}):\n  ${[...new Set(unexpectedRunErrors)].slice(0, 5).join("\n  ")}`,
            );

          // --- what must hold ------------------------------------------------------------
          expect(ledger.problems.slice(0, 10)).toEqual([]);
          expect(
            drained,
            `the fleet drained everything before the deadline (last check: ${JSON.stringify(lastCheck)})`,
          ).toBe(true);
          expect(r.lost.slice(0, 10)).toEqual([]);
          expect(r.duplicated.slice(0, 10)).toEqual([]);
          expect(r.unexpected.slice(0, 10)).toEqual([]);
          expect(r.unacknowledged).toBe(0);
          expect(stats.scopeOverlaps).toBe(0);
          expect(r.completedUnhandled.slice(0, 10)).toEqual([]);
          expect(r.alwaysFailingNotDead.slice(0, 10)).toEqual([]);
          expect(r.accepted).toBe(plan.acceptable);
          expect(r.completed + r.deadLettered).toBe(r.accepted);
          expect(r.deadLettered).toBeGreaterThan(0);
          // Every fault kind was really injected and hit something.
          if (B.redis) {
            expect(ep("gateway 503", "ingest")!.ingest503).toBeGreaterThan(0);
            expect(ep("gateway 503", "ingest")!.runsFailed).toBeGreaterThan(0);
            expect(ep("gateway 503", "drain")!.runsFailed).toBeGreaterThan(0);
            expect(ep("gateway hang", "ingest")!.clientTimeouts).toBeGreaterThan(0);
            expect(ep("gateway hang", "drain")!.runsHeld).toBeGreaterThan(0);
          } else {
            // The events table is the queue: with Postgres down, ingest says 503, never 2xx.
            expect(ep("postgres down", "ingest")!.ingest503).toBeGreaterThan(0);
          }
          expect(ep("postgres down", "ingest")!.runsFailed).toBeGreaterThan(0);
          expect(ep("postgres down", "drain")!.runsFailed).toBeGreaterThan(0);
          for (const p of B.failpoints) expect(fleet.crashes.get(p), p).toBeGreaterThan(0);
          expect(fleet.maxAtOnce).toBeGreaterThanOrEqual(2);
          expect(runs.some((x) => x.via === "entry" && x.role === "queue" && !x.error)).toBe(true);
          expect(runs.some((x) => x.via === "entry" && x.role === "cron" && !x.error)).toBe(true);
          expect(ledger.answers.get(200) ?? 0).toBeGreaterThan(0); // duplicate deliveries answered as such
          expect(stats.failuresInjected).toBeGreaterThan(0);
        } finally {
          logs.restore();
          await fleet.stop().catch(() => {});
          defaultTriggers.unregister(TRIGGER_NAME);
          await pair.gateway(null).catch(() => {});
          await pair.postgres(true).catch(() => {});
          await observerDb.close();
          await pair.close();
        }
      },
      600_000 + B.events * 50,
    );
  });
