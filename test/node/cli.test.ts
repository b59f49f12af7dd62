/**
 * The `reflex` CLI end to end: the real binary (`node bin/reflex.mjs`) against the real
 * worker under `wrangler dev`, which talks to the real local Redis and Postgres through the
 * stand-ins (local/), on a throwaway migrated database and a unique Redis prefix.
 *
 * Checks exit codes (0 ok, 1 the API refused, 2 bad usage, 3 unreachable) and what the
 * commands print, human and --json. DLQ rows are inserted straight into Postgres (the admin
 * API reads history, not streams); the replay runner is driven through wrangler dev's
 * scheduled-event endpoint, as the worker's "*\/2" cron would run it.
 */
import { execFile } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { migrateDatabase } from "../../local/migrate";
import { type NeonProxy, startNeonProxy } from "../../local/neon-proxy";
import { withDatabase } from "../../local/services";
import { freePort } from "../../local/sockets";
import { type Gateway, startUpstashGateway } from "../../local/upstash-gateway";
import { startWranglerDev, type WranglerDev } from "../../local/wrangler-dev";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const ADMIN_TOKEN = `cli-admin-${randomBytes(12).toString("hex")}`;
const DB_NAME = `reflex_cli_${randomBytes(4).toString("hex")}`;
const PREFIX = `cli:${randomBytes(4).toString("hex")}`;

let gateway: Gateway | undefined;
let redisToken = "";
let proxy: NeonProxy | undefined;
let admin: pg.Client | undefined;
let db: pg.Client | undefined;
let wrangler: WranglerDev | undefined;
let baseUrl = "";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI binary with REFLEX_URL / REFLEX_ADMIN_TOKEN (overridable per call). */
function reflex(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(ROOT, "bin", "reflex.mjs"), ...args],
      {
        cwd: ROOT,
        env: { ...process.env, REFLEX_URL: baseUrl, REFLEX_ADMIN_TOKEN: ADMIN_TOKEN, NO_COLOR: "1", ...env },
        timeout: 30_000,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Asserts the exit code, showing the run's output when it differs. */
function expectCode(r: Run, code: number) {
  expect(r.code, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(code);
}

/** One history row, written directly (status 'dlq' puts it in the dead-letter queue). */
async function insertEvent(
  type: string,
  status: "dlq" | "completed",
  payload: object = { n: 1 },
  ageS = 60,
): Promise<string> {
  const id = randomUUID();
  await db!.query(
    `INSERT INTO events (id, type, source, "timestamp", payload, meta, scope, status, attempts, last_error, errors, updated_at, processed_at)
     VALUES ($1, $2, 'cli-test', now() - $7::int * interval '1 second', $6::jsonb, '{"trace_id":"cli"}', 'cli-test', $3::event_status,
             1, $4, $5::jsonb, now(), now())`,
    [
      id,
      type,
      status,
      status === "dlq" ? "handler said no" : null,
      status === "dlq"
        ? JSON.stringify([{ attempt: 1, error: "handler said no", at: new Date().toISOString() }])
        : "[]",
      JSON.stringify(payload),
      ageS,
    ],
  );
  return id;
}

/** Runs one of the worker's crons now, through wrangler dev's --test-scheduled endpoint. */
async function runCron(cron: string): Promise<void> {
  const res = await fetch(`${baseUrl}/__scheduled?cron=${encodeURIComponent(cron).replace(/%20/g, "+")}`);
  expect(res.status, await res.text()).toBe(200);
}

beforeAll(async () => {
  redisToken = randomBytes(16).toString("hex");
  const [redisHost, redisPort] = inject("redisAddress").split(":");
  gateway = await startUpstashGateway({ token: redisToken, redisHost, redisPort: Number(redisPort) });
  const adminUrl = inject("pgAdminUrl");
  const server = new URL(adminUrl);
  proxy = await startNeonProxy({ pgHost: server.hostname, pgPort: Number(server.port || 5432) });
  admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${DB_NAME}`);
  const dbUrl = withDatabase(adminUrl, DB_NAME);
  await migrateDatabase(dbUrl, proxy.address);
  db = new pg.Client({ connectionString: dbUrl });
  await db.connect();

  wrangler = await startWranglerDev({
    testScheduled: true,
    ready: "/health",
    vars: {
      UPSTASH_REDIS_REST_URL: gateway.url,
      UPSTASH_REDIS_REST_TOKEN: redisToken,
      DATABASE_URL: dbUrl,
      NEON_WS_PROXY: proxy.address,
      ADMIN_TOKEN,
      API_KEYS: `cli-key-${randomBytes(8).toString("hex")}`,
      REDIS_PREFIX: PREFIX,
      EVENT_MAX_ATTEMPTS: "1",
      LOG_LEVEL: "error",
    },
  });
  baseUrl = wrangler.url;
}, 150_000);

afterAll(async () => {
  // Each step on its own, so one failure does not leave the others running.
  const steps: Array<() => Promise<unknown> | undefined> = [
    () => wrangler?.stop(),
    () => db?.end(),
    () =>
      gateway &&
      fetch(gateway.url, {
        method: "POST",
        headers: { authorization: `Bearer ${redisToken}` },
        body: JSON.stringify([
          "EVAL",
          "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 0",
          0,
          `${PREFIX}:*`,
        ]),
      }),
    () => gateway?.close(),
    () => proxy?.close(),
    () => admin?.query(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`),
    () => admin?.end(),
  ];
  for (const step of steps)
    await Promise.resolve()
      .then(step)
      .catch(() => {});
}, 30_000);

describe("reflex CLI against wrangler dev", () => {
  it("--help exits 0 and lists the command groups", async () => {
    const r = await reflex(["--help"]);
    expectCode(r, 0);
    for (const cmd of ["dlq", "replay", "events"]) expect(r.stdout).toMatch(new RegExp(`^\\s+${cmd}\\s`, "m"));
    const sub = await reflex(["replay", "start", "--help"]);
    expectCode(sub, 0);
    expect(sub.stdout).toContain("--dry-run");
  });

  it("dlq: list, retry (then 404), retry-all by type, discard; events get", async () => {
    const a = await insertEvent("cli.broken", "dlq");
    const b = await insertEvent("cli.broken", "dlq");
    const c = await insertEvent("cli.other", "dlq");

    const list = await reflex(["dlq", "list"]);
    expectCode(list, 0);
    expect(list.stdout).toContain("3 event(s) in the DLQ");
    for (const id of [a, b, c]) expect(list.stdout).toContain(id);
    expect(list.stdout).toContain("handler said no");

    const listJson = await reflex(["--json", "dlq", "list", "--type", "cli.other"]);
    expectCode(listJson, 0);
    const parsed = JSON.parse(listJson.stdout) as { count: number; events: Array<{ id: string; status: string }> };
    expect(parsed.count).toBe(1);
    expect(parsed.events).toEqual([expect.objectContaining({ id: c, status: "dlq" })]);

    const retry = await reflex(["dlq", "retry", a]);
    expectCode(retry, 0);
    expect(retry.stdout).toContain(`${a}: queued for retry`);
    const again = await reflex(["dlq", "retry", a]);
    expectCode(again, 1);
    expect(again.stderr).toMatch(/-> 404 Not in the DLQ/);

    // Only b is left of type cli.broken.
    const all = await reflex(["--json", "dlq", "retry-all", "--type", "cli.broken"]);
    expectCode(all, 0);
    expect(JSON.parse(all.stdout)).toEqual({ count: 1 });
    const rows = await db!.query<{ id: string; status: string }>("SELECT id, status FROM events WHERE id = ANY($1)", [
      [a, b, c],
    ]);
    expect(Object.fromEntries(rows.rows.map((x) => [x.id, x.status]))).toEqual({
      [a]: "pending",
      [b]: "pending",
      [c]: "dlq",
    });

    const discard = await reflex(["dlq", "discard", c, "--reason", "poison payload"]);
    expectCode(discard, 0);
    expect(discard.stdout).toContain(`${c}: discarded`);
    expect((await reflex(["dlq", "discard", c, "--reason", "again"])).code).toBe(1);

    const get = await reflex(["events", "get", c]);
    expectCode(get, 0);
    expect(JSON.parse(get.stdout)).toMatchObject({
      id: c,
      type: "cli.other",
      status: "discarded",
      discard_reason: "poison payload",
    });
    const unknown = await reflex(["events", "get", randomUUID()]);
    expectCode(unknown, 1);
    expect(unknown.stderr).toMatch(/-> 404 Event not found/);

    // Without a filter, retry-all asks the API for the whole DLQ (`all: true`).
    const d = await insertEvent("cli.unfiltered", "dlq");
    const everything = await reflex(["--json", "dlq", "retry-all"]);
    expectCode(everything, 0);
    expect(JSON.parse(everything.stdout)).toEqual({ count: 1 });
    expect((await db!.query("SELECT status FROM events WHERE id = $1", [d])).rows[0]).toEqual({ status: "pending" });
  });

  it("events get lists the event's durable steps and its model usage", async () => {
    const id = await insertEvent("cli.agent", "completed");
    await db!.query(
      `INSERT INTO steps (event_id, trigger, name, status, result, usage, attempt, started_at, duration_ms)
       VALUES ($1, 'triage', 'turn 1 model', 'completed', '{"value":1}',
               '{"model":"openai:gpt-4.1-mini","input_tokens":100,"output_tokens":20}', 1, now() - interval '2 seconds', 812),
              ($1, 'triage', 'turn 1 tool 1 publish', 'failed', NULL, NULL, 1, now() - interval '1 second', 5)`,
      [id],
    );
    await db!.query(`UPDATE steps SET error = 'destination down' WHERE event_id = $1 AND status = 'failed'`, [id]);
    const r = await reflex(["events", "get", id]);
    expectCode(r, 0);
    expect(r.stdout).toMatch(/steps:\ntrigger +name +status +attempt +duration_ms +tokens +error\n/);
    expect(r.stdout).toMatch(/triage +turn 1 model +completed +1 +812 +100 in, 20 out/);
    expect(r.stdout).toMatch(/triage +turn 1 tool 1 publish +failed +1 +5 +destination down/);
    expect(r.stdout).toMatch(
      /model usage:\nmodel +calls +input_tokens +output_tokens\nopenai:gpt-4.1-mini +1 +100 +20/,
    );
    const j = await reflex(["--json", "events", "get", id]);
    expectCode(j, 0);
    expect(JSON.parse(j.stdout)).toMatchObject({
      steps: [
        { name: "turn 1 model", status: "completed", attempt: 1, duration_ms: 812 },
        { name: "turn 1 tool 1 publish", status: "failed", error: "destination down" },
      ],
      usage: [{ model: "openai:gpt-4.1-mini", calls: 1, input_tokens: 100, output_tokens: 20 }],
    });
  });

  it("events in-flight and events get show an event a consumer holds unsettled: its holder and deliveries", async () => {
    // A stream entry read by a consumer and never settled (the Redis backend writes the
    // history row at the outcome): XADD, then XREADGROUP as that consumer, in one script.
    const id = randomUUID();
    const envelope = { id, type: "cli.inflight", source: "cli-test", timestamp: new Date().toISOString(), meta: {} };
    const res = await fetch(gateway!.url, {
      method: "POST",
      headers: { authorization: `Bearer ${redisToken}` },
      body: JSON.stringify([
        "EVAL",
        `pcall(redis.call, 'XGROUP', 'CREATE', KEYS[1], 'reflex-consumers', '0', 'MKSTREAM')
         redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
         redis.call('XREADGROUP', 'GROUP', 'reflex-consumers', 'c-cli-holder', 'COUNT', 100, 'STREAMS', KEYS[1], '>')
         return 0`,
        1,
        `${PREFIX}:stream:0`,
        JSON.stringify(envelope),
      ]),
    });
    expect(res.status, await res.text()).toBe(200);
    const list = await reflex(["events", "in-flight"]);
    expectCode(list, 0);
    expect(list.stdout).toMatch(/id +type +source +consumer +deliveries +since +lane\n/);
    expect(list.stdout).toMatch(new RegExp(`${id} +cli.inflight +cli-test +c-cli-holder +1 `));
    const j = await reflex(["--json", "events", "get", id]);
    expectCode(j, 0);
    expect(JSON.parse(j.stdout)).toMatchObject({
      id,
      status: "processing",
      attempts: 1,
      in_flight: { consumer: "c-cli-holder", deliveries: 1, lane: `${PREFIX}:stream:0` },
    });
  });

  it("events tail --max 1 --since 1h --json prints one event as a JSON line", async () => {
    const id = await insertEvent("cli.tail", "completed");
    const r = await reflex(["--json", "events", "tail", "--type", "cli.tail", "--max", "1", "--since", "1h"]);
    expectCode(r, 0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ id, type: "cli.tail", status: "completed" });
  });

  it("events tail follows what was recorded: an event arriving late with a two-day-old timestamp is printed", async () => {
    const onTime = await insertEvent("cli.late", "completed", { n: 1 }, 0);
    const late = await insertEvent("cli.late", "completed", { n: 2 }, 2 * 86_400);
    // Both were recorded within the last minute; only one has a timestamp in it.
    const r = await reflex([
      "--json",
      "events",
      "tail",
      "--type",
      "cli.late",
      "--since",
      "1m",
      "--max",
      "2",
      "--interval",
      "200",
    ]);
    expectCode(r, 0);
    expect(
      r.stdout
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as { id: string }).id),
    ).toEqual([onTime, late]);
  });

  it("replay: start (dry run and real), status once and watched until done, driven by the */2 cron", async () => {
    // Replay copies are checked against the worker's registry: a built-in type, valid fields.
    const original = await insertEvent("lifecycle", "completed", { action: "started", details: "cli replay" });

    const dry = await reflex(["replay", "start", "--last", "1h", "--dry-run"]);
    expectCode(dry, 0);
    const dryId = /replay ([0-9a-f-]{36}) started/.exec(dry.stdout)?.[1];
    expect(dryId, dry.stdout).toBeDefined();

    const once = await reflex(["--json", "replay", "status", dryId!, "--no-watch"]);
    expectCode(once, 0);
    expect(JSON.parse(once.stdout)).toMatchObject({ id: dryId, status: "scheduled", dry_run: true, scanned: 0 });

    const real = await reflex(["--json", "replay", "start", "--last", "1h", "--type", "lifecycle"]);
    expectCode(real, 0);
    const realId = (JSON.parse(real.stdout) as { id: string }).id;

    // Watch both jobs while the replay runner cron advances them; each watcher exits on 'done'.
    const watchers = [
      reflex(["replay", "status", dryId!, "--interval", "200"]),
      reflex(["--json", "replay", "status", realId, "--interval", "200"]),
    ];
    await runCron("*/2 * * * *");
    const [watchDry, watchReal] = await Promise.all(watchers);
    expectCode(watchDry!, 0);
    expect(watchDry!.stdout).toContain(`replay ${dryId}: done`);
    expectCode(watchReal!, 0);
    expect(JSON.parse(watchReal!.stdout)).toMatchObject({ id: realId, status: "done", scanned: 1, republished: 1 });

    // The same cron drained the replay lane: the copy is in history, caused by the original.
    const copies = await db!.query<{ status: string; causation: string }>(
      "SELECT status, meta ->> 'causation_id' AS causation FROM events WHERE meta ->> 'replay' = $1",
      [realId],
    );
    expect(copies.rows).toEqual([{ status: "completed", causation: original }]);
  });

  it("replay cancel: 0 on a scheduled job, then 1 (409) once it has ended", async () => {
    const later = new Date(Date.now() + 3_600_000).toISOString();
    const started = await reflex(["--json", "replay", "start", "--last", "1h", "--start-at", later]);
    expectCode(started, 0);
    const id = (JSON.parse(started.stdout) as { id: string; status: string }).id;

    const cancel = await reflex(["replay", "cancel", id]);
    expectCode(cancel, 0);
    expect(cancel.stdout).toContain(`replay ${id}: cancelled`);
    const again = await reflex(["replay", "cancel", id]);
    expectCode(again, 1);
    expect(again.stderr).toMatch(/-> 409/);

    const list = await reflex(["--json", "replay", "list"]);
    expectCode(list, 0);
    expect((JSON.parse(list.stdout) as { replays: Array<{ id: string; status: string }> }).replays).toContainEqual(
      expect.objectContaining({ id, status: "cancelled" }),
    );
  });

  it("exit codes: wrong token 1, bad usage 2, unreachable 3", async () => {
    const wrong = await reflex(["dlq", "list"], { REFLEX_ADMIN_TOKEN: `${ADMIN_TOKEN}-wrong` });
    expectCode(wrong, 1);
    expect(wrong.stderr).toMatch(/-> 403 Forbidden/);

    const noRange = await reflex(["replay", "start"]);
    expectCode(noRange, 2);
    expect(noRange.stderr).toContain("give --last or --from");
    const badDuration = await reflex(["replay", "start", "--last", "soon"]);
    expectCode(badDuration, 2);
    expect(badDuration.stderr).toContain("not a duration");
    expectCode(await reflex(["dlq", "discard", randomUUID()]), 2); // --reason is required
    expectCode(await reflex(["dlq", "frobnicate"]), 2);
    const noToken = await reflex(["dlq", "list"], { REFLEX_ADMIN_TOKEN: undefined });
    expectCode(noToken, 2);
    expect(noToken.stderr).toContain("REFLEX_ADMIN_TOKEN is not set");

    // A port nothing listens on (taken and released just now).
    const closed = await freePort();
    const down = await reflex(["dlq", "list"], { REFLEX_URL: `http://127.0.0.1:${closed}` });
    expectCode(down, 3);
    expect(down.stderr).toContain("cannot reach");
  });
});
