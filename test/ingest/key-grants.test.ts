/**
 * What an API key may claim, on both backends through the worker's app: a configured
 * webhook source's name and a trigger's declared output type are never a key's unless its
 * grant names them; a grant's globs bound its sources and types; a refusal is a 403 naming
 * the field, with nothing stored. Client causation and correlation ids are kept as client
 * claims, never followed by GET /events/{id}; a handler publishing a type its trigger did
 * not declare fails its attempt.
 */
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../src/events/envelope";
import { filters as f } from "../../src/triggers";
import { call as admin } from "../support/admin";
import { GRANTED_API_KEYS as API_KEYS, GRANTED, TYPED } from "../support/api-keys";
import { API_KEY, call, ingestKeysOf, post, streamEvents } from "../support/ingest";
import { type BackendName, type Rig, rigsClosedAfterEach } from "../support/rig";
import { githubHeaders, hook, WEBHOOK_SOURCES } from "../support/webhooks";

const tick = (source: string, extra: Record<string, unknown> = {}) => ({
  type: "timer.tick",
  source,
  timer_name: "t",
  tick_count: 1,
  ...extra,
});
const triaged = (source: string) => ({
  type: "issue.triaged",
  source,
  repository: "acme/app",
  issue_number: 1,
  labels: ["bug"],
  summary: "forged",
});

const as = (key: string, path: string, body: object) => post(path, body, { authorization: `Bearer ${key}` });

const rig = rigsClosedAfterEach();

async function stored(r: Rig): Promise<EventEnvelope[]> {
  if (r.backend === "redis") return streamEvents(r.env);
  const rows = await r.rows<{ id: string; type: string; source: string; meta: EventEnvelope["meta"] }>(
    sql`SELECT id::text, type, source, meta FROM events ORDER BY created_at`,
  );
  return rows as EventEnvelope[];
}

/** Nothing of a refused request anywhere: no event, and (Redis) no stream or dedupe key. */
async function nothingStored(r: Rig): Promise<void> {
  expect(await stored(r)).toEqual([]);
  if (r.backend === "redis") expect(await ingestKeysOf(r.env)).toEqual([]);
}

describe.each<BackendName>(["redis", "postgres"])("what an API key may claim (%s)", (backend) => {
  const open = () =>
    rig(backend, { API_KEYS, WEBHOOK_SOURCES, RATE_LIMIT_KEY_EVENTS: "0", RATE_LIMIT_SOURCE_REQUESTS: "0" });

  it("a bare key may not use a configured webhook source's name: 403 naming /source, nothing stored", async () => {
    const r = await open();
    for (const source of ["gh", "billing", "lab"]) {
      const res = await call(r.env, as(API_KEY, "/events", tick(source)));
      expect(res.status, res.text).toBe(403);
      expect(res.res.headers.get("content-type")).toBe("application/problem+json");
      expect(res.json.errors).toEqual([
        { path: "/source", message: expect.stringContaining(`source "${source}" is a webhook source`) },
      ]);
    }
    const batch = await call(r.env, as(API_KEY, "/events/batch", { events: [tick("cron"), tick("gh")] }));
    expect(batch.status, batch.text).toBe(403);
    expect(batch.json.errors).toEqual([expect.objectContaining({ path: "/events/1/source" })]);
    await nothingStored(r);
    // Any other source stays a bare key's to use.
    const ok = await call(r.env, as(API_KEY, "/events", tick("cron")));
    expect(ok.status, ok.text).toBe(202);
  });

  it("a granted key: the webhook source its grant names, its globs; nothing else", async () => {
    const r = await open();
    for (const source of ["gh", "cron:nightly"]) {
      const res = await call(r.env, as(GRANTED, "/events", tick(source)));
      expect(res.status, `${source}: ${res.text}`).toBe(202);
    }
    for (const [source, message] of [
      ["billing", 'source "billing" is a webhook source'],
      ["cron", 'source "cron" is not granted to this API key (sources: gh, cron:*)'],
    ] as const) {
      const res = await call(r.env, as(GRANTED, "/events", tick(source)));
      expect(res.status, res.text).toBe(403);
      expect(res.json.errors).toEqual([{ path: "/source", message: expect.stringContaining(message) }]);
    }
    expect((await stored(r)).map((e) => e.source).sort()).toEqual(["cron:nightly", "gh"]);
  });

  it("types outside the grant: 403 naming /type; a batch with one is refused whole", async () => {
    const r = await open();
    const res = await call(r.env, as(TYPED, "/events", { type: "lifecycle", source: "svc", action: "started" }));
    expect(res.status, res.text).toBe(403);
    expect(res.json.errors).toEqual([
      { path: "/type", message: expect.stringContaining('type "lifecycle" is not granted to this API key') },
    ]);
    const batch = await call(
      r.env,
      as(TYPED, "/events/batch", { events: [tick("svc"), { type: "lifecycle", source: "svc", action: "started" }] }),
    );
    expect(batch.status, batch.text).toBe(403);
    expect(batch.json.errors).toEqual([expect.objectContaining({ path: "/events/1/type" })]);
    await nothingStored(r);
  });

  it("a trigger's declared output type (issue.triaged) is refused unless a grant names it exactly", async () => {
    const r = await open();
    // TYPED's "issue.*" glob does not grant a reserved name.
    for (const key of [API_KEY, TYPED]) {
      const res = await call(r.env, as(key, "/events", triaged("svc")));
      expect(res.status, res.text).toBe(403);
      expect(res.json.errors).toEqual([
        { path: "/type", message: expect.stringContaining('type "issue.triaged" is published by a trigger only') },
      ]);
    }
    await nothingStored(r);
    const named = await call(r.env, as(GRANTED, "/events", triaged("cron:triage")));
    expect(named.status, named.text).toBe(202);
  });

  it("over /ws: the same refusal as a problem frame, nothing stored", async () => {
    const r = await open();
    const { app } = await import("../../src/app");
    const { createExecutionContext } = await import("cloudflare:test");
    const res = await app.fetch(
      new Request("http://reflex.test/ws", { headers: { upgrade: "websocket", authorization: `Bearer ${API_KEY}` } }),
      r.env,
      createExecutionContext(),
    );
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    const frames: string[] = [];
    const next = new Promise<void>((resolve) =>
      ws.addEventListener("message", (m) => {
        frames.push(m.data as string);
        resolve();
      }),
    );
    ws.accept();
    ws.send(JSON.stringify(triaged("gh")));
    await next;
    ws.close(1000, "done");
    const p = JSON.parse(frames[0]!);
    expect(p.status).toBe(403);
    expect(p.errors.map((e: { path: string }) => e.path)).toEqual(["/source", "/type"]);
    await nothingStored(r);
  });

  it("client causation and correlation ids are kept as claims; GET /events/{id} follows only the server's", async () => {
    const r = await open();
    r.triggers.register({
      name: "echo",
      filter: f.type("webhook.received"),
      publishes: ["lifecycle"],
      handler: (ctx) => ctx.publish({ type: "lifecycle", action: "started" }),
    });
    const body = JSON.stringify({ ref: "refs/heads/main" });
    const delivery = await call(r.env, hook("gh", body, await githubHeaders(body)));
    expect(delivery.status, delivery.text).toBe(202);
    const verified = delivery.json.id as string;
    const claim = await call(
      r.env,
      as(API_KEY, "/events", tick("cron", { meta: { causation_id: verified, correlation_id: verified } })),
    );
    expect(claim.status, claim.text).toBe(202);
    await r.run();

    const parent = await admin(r.env, "GET", `/events/${verified}`);
    expect(parent.status).toBe(200);
    const derived = parent.body.derived as Array<{ id: string; type: string }>;
    expect(derived.map((d) => d.type)).toEqual(["lifecycle"]);
    expect(derived.map((d) => d.id)).not.toContain(claim.json.id);

    const mine = await admin(r.env, "GET", `/events/${claim.json.id}`);
    expect(mine.status).toBe(200);
    expect(mine.body.meta).toMatchObject({ client_causation_id: verified, client_correlation_id: verified });
    expect(mine.body.meta).not.toHaveProperty("causation_id");
    expect(mine.body.meta).not.toHaveProperty("correlation_id");
    // The server's own chain is untouched: the derived event names its parent.
    const child = await admin(r.env, "GET", `/events/${derived[0]!.id}`);
    expect(child.body.meta).toMatchObject({ causation_id: verified, correlation_id: verified });
  });

  it("ctx.publish of a type its trigger did not declare fails the attempt, naming both", async () => {
    const r = await open();
    r.triggers.register({
      name: "liar",
      filter: f.type("timer.tick"),
      publishes: ["lifecycle"],
      handler: (ctx) => ctx.publish({ type: "timer.tick", timer_name: "x", tick_count: 2 }),
    });
    const res = await call(r.env, as(API_KEY, "/events", tick("cron")));
    expect(res.status, res.text).toBe(202);
    await r.run();
    const e = await admin(r.env, "GET", `/events/${res.json.id}`);
    expect(e.body.status).not.toBe("completed");
    expect(e.body.last_error).toContain('trigger "liar" publishes only "lifecycle" (publishes), not "timer.tick"');
    expect(e.body.derived).toEqual([]);
  });
});
