/**
 * Trust boundaries that need state: reused client ids (same body: a duplicate; another
 * body: a 409 and nothing stored) and replayed GitHub / HMAC deliveries under a fresh
 * delivery id (a duplicate of the first), on both backends, through the worker's app
 * against the real local Redis and Postgres. Each case says what it answers and that the
 * event is stored once, or not at all.
 */
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config";
import { derivedIdKey, deriveEvent } from "../../src/consume/derive";
import type { EventEnvelope } from "../../src/events/envelope";
import { webhookSources } from "../../src/ingest/sources";
import type { TestEnv } from "../support/env";
import { typesWith } from "../support/event-types";
import { authed, call, ingestEnv, ingestKeysOf, pgIngestEnv, streamEvents, tableEvents, tick } from "../support/ingest";
import { githubHeaders, hmacDigest, hook, WEBHOOK_SOURCES } from "../support/webhooks";

interface Backend {
  name: "redis" | "postgres";
  env(overrides?: Record<string, unknown>): Promise<TestEnv>;
  /** Every stored event, in arrival order. */
  stored(env: TestEnv): Promise<EventEnvelope[]>;
}

const backends: Backend[] = [
  {
    name: "redis",
    env: (o = {}) => ingestEnv({ WEBHOOK_SOURCES, RATE_LIMIT_KEY_EVENTS: "0", RATE_LIMIT_SOURCE_REQUESTS: "0", ...o }),
    stored: streamEvents,
  },
  {
    name: "postgres",
    env: (o = {}) => pgIngestEnv({ WEBHOOK_SOURCES, ...o }),
    stored: tableEvents,
  },
];

describe.each(backends)("reused client ids ($name)", (b) => {
  it("same id and body: 200 duplicate with the first id, stored once; key order and spacing do not matter", async () => {
    const env = await b.env();
    const id = crypto.randomUUID();
    const first = await call(env, authed("/events", tick(1, { id })));
    expect(first.status, first.text).toBe(202);
    const again = await call(env, authed("/events", tick(1, { id })));
    expect(again.status, again.text).toBe(200);
    expect(again.json).toEqual({ id, status: "duplicate" });
    // The same event serialised differently is the same body.
    const reordered = `{ "tick_count": 1, "id": "${id}",\n "timer_name": "t", "source": "cron", "type": "timer.tick" }`;
    const third = await call(env, authed("/events", reordered));
    expect(third.status, third.text).toBe(200);
    expect((await b.stored(env)).map((e) => e.id)).toEqual([id]);
  });

  it("same id, another body: 409 naming the id, nothing more stored; the first event is untouched", async () => {
    const env = await b.env();
    const id = crypto.randomUUID();
    expect((await call(env, authed("/events", tick(1, { id })))).status).toBe(202);
    const clash = await call(env, authed("/events", tick(2, { id })));
    expect(clash.status, clash.text).toBe(409);
    expect(clash.res.headers.get("content-type")).toBe("application/problem+json");
    expect(clash.json.errors).toEqual([expect.objectContaining({ path: "/id", message: expect.stringContaining(id) })]);
    const stored = await b.stored(env);
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({ id, tick_count: 1 });
  });

  it("a batch with one reused id (another body): 409 naming its item, nothing of the batch stored", async () => {
    const env = await b.env();
    const id = crypto.randomUUID();
    expect((await call(env, authed("/events", tick(1, { id })))).status).toBe(202);
    const fresh = crypto.randomUUID();
    const r = await call(env, authed("/events/batch", { events: [tick(5), tick(6, { id: fresh }), tick(7, { id })] }));
    expect(r.status, r.text).toBe(409);
    expect(r.json.errors).toEqual([expect.objectContaining({ path: "/events/2/id" })]);
    expect((await b.stored(env)).map((e) => e.id)).toEqual([id]);
    // The fresh id was not used up by the refused batch.
    const later = await call(env, authed("/events", tick(9, { id: fresh })));
    expect(later.status, later.text).toBe(202);
  });

  it("a batch retried whole: 200 duplicate, same ids; a batch with some stored: 202 listing the duplicates", async () => {
    const env = await b.env();
    const ids = [crypto.randomUUID(), crypto.randomUUID()];
    const body = { events: ids.map((id, i) => tick(i, { id })) };
    const first = await call(env, authed("/events/batch", body));
    expect(first.status, first.text).toBe(202);
    const retry = await call(env, authed("/events/batch", body));
    expect(retry.status, retry.text).toBe(200);
    expect(retry.json).toEqual({ ids, status: "duplicate" });
    const third = crypto.randomUUID();
    const mixed = await call(env, authed("/events/batch", { events: [...body.events, tick(3, { id: third })] }));
    expect(mixed.status, mixed.text).toBe(202);
    expect(mixed.json).toEqual({ ids: [...ids, third], status: "accepted", duplicates: ids });
    expect((await b.stored(env)).map((e) => e.id)).toEqual([...ids, third]);
  });

  it("racing requests with one id: one stores it, same bodies are duplicates, other bodies 409; stored once", async () => {
    const env = await b.env();
    const id = crypto.randomUUID();
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => call(env, authed("/events", tick(i % 3, { id })))),
    );
    const statuses = answers.map((a) => a.status);
    expect(
      statuses.filter((s) => s === 202),
      statuses.join(),
    ).toHaveLength(1);
    expect(
      statuses.every((s) => s === 202 || s === 200 || s === 409),
      statuses.join(),
    ).toBe(true);
    const stored = await b.stored(env);
    expect(stored).toHaveLength(1);
    const winner = stored[0]!.tick_count;
    answers.forEach((a, i) => {
      if (a.status === 200) expect(i % 3).toBe(winner);
      if (a.status === 409) expect(i % 3).not.toBe(winner);
    });
  });

  it("events without an id are never duplicates of each other", async () => {
    const env = await b.env();
    for (let i = 0; i < 2; i++) expect((await call(env, authed("/events", tick(1)))).status).toBe(202);
    expect(await b.stored(env)).toHaveLength(2);
  });
});

describe.each(backends)("replayed GitHub and HMAC deliveries ($name)", (b) => {
  it("github: the captured delivery re-sent with a fresh X-GitHub-Delivery is a duplicate of the first; stored once", async () => {
    const env = await b.env();
    const body = JSON.stringify({ ref: "refs/heads/main", after: "abc" });
    const first = await call(env, hook("gh", body, await githubHeaders(body, crypto.randomUUID())));
    expect(first.status, first.text).toBe(202);
    const replay = await call(env, hook("gh", body, await githubHeaders(body, crypto.randomUUID())));
    expect(replay.status, replay.text).toBe(200);
    expect(replay.json).toEqual({ id: first.json.id, status: "duplicate" });
    const stored = await b.stored(env);
    expect(stored).toHaveLength(1);
    expect(stored[0]!.meta.ingress).toEqual({ kind: "webhook", source: "gh", scheme: "github" });
    // Another body under the same delivery id is still the first delivery's duplicate.
    const other = JSON.stringify({ ref: "refs/heads/dev" });
    const sameId = await call(env, hook("gh", other, await githubHeaders(other, stored[0]!.delivery_id as string)));
    expect(sameId.status, sameId.text).toBe(200);
    expect(await b.stored(env)).toHaveLength(1);
  });

  it("hmac-sha256 with an id header: a new id header on the same signed body is a duplicate; stored once", async () => {
    const env = await b.env();
    const body = JSON.stringify({ order: 1 });
    const sig = { "x-shop-hmac": hmacDigest(body, "base64") };
    const first = await call(env, hook("shop", body, { ...sig, "x-shop-delivery": "d-1" }));
    expect(first.status, first.text).toBe(202);
    const replay = await call(env, hook("shop", body, { ...sig, "x-shop-delivery": "d-2" }));
    expect(replay.status, replay.text).toBe(200);
    expect(replay.json).toEqual({ id: first.json.id, status: "duplicate" });
    expect(await b.stored(env)).toHaveLength(1);
  });
});

describe("dedupe window against signature tolerance", () => {
  it("a source whose tolerance outlives DEDUPE_WINDOW_S is a configuration error naming it; nothing stored", async () => {
    const sources = { billing: { scheme: "stripe", secret: "whsec_0123456789abcdef0123456789", tolerance_s: 300 } };
    const env = await ingestEnv({ DEDUPE_WINDOW_S: "60", WEBHOOK_SOURCES: JSON.stringify(sources) });
    expect(() => webhookSources(loadConfig(env))).toThrow(
      /WEBHOOK_SOURCES\.billing\.tolerance_s: 300 s is longer than DEDUPE_WINDOW_S/,
    );
    const r = await call(env, hook("billing", "{}", {}));
    expect(r.status).toBe(503);
    expect(r.json.title).toBe("Webhook source misconfigured");
    expect(await ingestKeysOf(env)).toEqual([]);
  });
});

describe("derived-event ids are keyed with a server secret", () => {
  const parent = {
    id: "0b6f3e0e-5f7c-4b43-9a53-5d7a0d0f3c7e",
    type: "timer.tick",
    source: "cron",
    timestamp: new Date(0).toISOString(),
    meta: { trace_id: "t" },
  };
  /** The id an unkeyed hash of (parent id, trigger, order) would give: what a client could compute. */
  async function predictable(parentId: string, trigger: string, seq: number): Promise<string> {
    const d = new Uint8Array(
      await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`${parentId}\u0000${trigger}\u0000${seq}`)),
    );
    return [...d.slice(0, 16)].map((b) => b.toString(16).padStart(2, "0")).join("");
  }
  const bare = (id: string) => id.replace(/-/g, "");

  it("deterministic for one secret, different for another, and not the unkeyed hash a client could compute", async () => {
    const base = { DATABASE_URL: "postgres://u@127.0.0.1/x" };
    const a = { ...base, EVENT_ID_SECRET: "a-secret-of-at-least-24-bytes!" };
    const b = { ...base, EVENT_ID_SECRET: "another-secret-of-24-bytes-or-more" };
    const derive = (cfg: typeof a | typeof base) =>
      deriveEvent(parent, "notify", 0, { type: "email.sent" }, 0, derivedIdKey(cfg as never), typesWith("email.sent"));
    const [a1, a2, b1, d1] = await Promise.all([derive(a), derive(a), derive(b), derive(base)]);
    expect(a1.id).toBe(a2.id);
    expect(a1.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(b1.id).not.toBe(a1.id);
    expect(d1.id).not.toBe(a1.id);
    const guess = await predictable(parent.id, "notify", 0);
    for (const e of [a1, b1, d1]) expect(bare(e.id).slice(0, 12)).not.toBe(guess.slice(0, 12));
  });
});

describe("configuration refuses weak credentials and remote use of the local stand-in", () => {
  const base = {
    DATABASE_URL: "postgres://u@db.example/x",
    EVENT_BACKEND: "postgres",
    EVENT_ID_SECRET: "test-event-id-secret-0123456789",
  };
  const problemsOf = (env: Record<string, unknown>): string[] => {
    try {
      const cfg = loadConfig(env);
      webhookSources(cfg);
      return [];
    } catch (e) {
      return (e as { problems?: string[] }).problems ?? [String(e)];
    }
  };

  it("API keys shorter than 16 characters: an error naming API_KEYS, never the key", () => {
    const p = problemsOf({ ...base, API_KEYS: "long-enough-key-0123,short-key" });
    expect(p.join()).toMatch(/API_KEYS.*at least 16 characters/);
    expect(p.join()).not.toContain("short-key");
    expect(problemsOf({ ...base, API_KEYS: "long-enough-key-0123" })).toEqual([]);
  });

  it("webhook secrets under 24 bytes (a whsec_ secret: decoded) name the source's secret", () => {
    const sources = {
      gh: { scheme: "github", secret: "only-twenty-bytes!!!" },
      svix: { scheme: "standard-webhooks", secret: `whsec_${btoa("sixteen bytes!!!")}` },
      shop: { scheme: "hmac-sha256", secret: "x".repeat(24) },
    };
    const p = problemsOf({ ...base, WEBHOOK_SOURCES: JSON.stringify(sources) });
    expect(p).toEqual([
      "WEBHOOK_SOURCES.gh.secret: must be at least 24 bytes",
      "WEBHOOK_SOURCES.svix.secret: must decode to at least 24 bytes",
    ]);
  });

  it("NEON_WS_PROXY only with a loopback database host; the read-only token differs from the admin one", () => {
    expect(problemsOf({ ...base, NEON_WS_PROXY: "127.0.0.1:4444/tok" }).join()).toMatch(
      /NEON_WS_PROXY: local development only.*DATABASE_URL/,
    );
    for (const host of ["127.0.0.1", "localhost", "[::1]", "127.1.2.3"])
      expect(
        problemsOf({ ...base, DATABASE_URL: `postgres://u@${host}:5432/x`, NEON_WS_PROXY: "127.0.0.1:4444/tok" }),
      ).toEqual([]);
    expect(
      problemsOf({
        ...base,
        DATABASE_URL: "postgres://u@127.0.0.1/x",
        DATABASE_READ_URL: "postgres://u@replica.example/x",
        NEON_WS_PROXY: "127.0.0.1:4444/tok",
      }).join(),
    ).toMatch(/DATABASE_READ_URL/);
    const token = "same-token-0123456789";
    expect(problemsOf({ ...base, ADMIN_TOKEN: token, METRICS_TOKEN: token }).join()).toMatch(
      /METRICS_TOKEN: must differ/,
    );
  });
});
