/**
 * A bad setting breaks only itself, and says so. A webhook source with an invalid setting
 * (a 19-byte GitHub secret) is refused on its own route - 503 naming the setting - while the
 * other sources and POST /events keep storing, on both backends; /ready answers 503 naming
 * it. A fatal setting (DATABASE_URL missing) stops every route that needs the configuration,
 * and /ready names it too. checkConfig lists every problem of both kinds at once.
 */
import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config";
import { type DbHandle, openDb } from "../../src/db/client";
import type { EventEnvelope } from "../../src/events/envelope";
import { checkConfig } from "../../src/health/config-check";
import { ADMIN_TOKEN, call as adminCall } from "../support/admin";
import type { TestEnv } from "../support/env";
import { API_KEY, authed, call, ingestEnv, streamEvents } from "../support/ingest";
import { githubHeaders, hook, SOURCES } from "../support/webhooks";

const handles: DbHandle[] = [];
afterEach(async () => {
  for (const h of handles.splice(0)) await h.close();
});

const WEAK = "0123456789abcdefghi"; // 19 bytes
const sources = JSON.stringify({ ...SOURCES, weak: { scheme: "github", secret: WEAK } });
const base = { ADMIN_TOKEN, RATE_LIMIT_KEY_EVENTS: "0", RATE_LIMIT_SOURCE_REQUESTS: "0", LOG_LEVEL: "error" };

const backends = [
  { name: "redis", env: (o: Record<string, unknown>) => ingestEnv({ ...base, ...o }), stored: streamEvents },
  {
    name: "postgres",
    env: async (o: Record<string, unknown>) => {
      const env = await ingestEnv({ ...base, EVENT_BACKEND: "postgres", LOCK_BACKEND: "postgres", ...o });
      delete env.UPSTASH_REDIS_REST_URL;
      delete env.UPSTASH_REDIS_REST_TOKEN;
      return env;
    },
    async stored(env: TestEnv): Promise<EventEnvelope[]> {
      const h = openDb(loadConfig(env));
      handles.push(h);
      const r = await h.db.execute<{ id: string; type: string; source: string }>(
        sql`SELECT id::text, type, source FROM events ORDER BY created_at`,
      );
      return r.rows as never;
    },
  },
] as const;

const tick = { type: "timer.tick", source: "cron", timer_name: "t", tick_count: 1 };

describe.each(backends)("an invalid webhook source breaks only its own route ($name)", (b) => {
  it("its route answers 503 naming the setting; the other sources and POST /events keep storing", async () => {
    const env = await b.env({ WEBHOOK_SOURCES: sources });
    const body = JSON.stringify({ ref: "main" });

    const weak = await call(env, hook("weak", body, await githubHeaders(body, "d-weak", "push", WEAK)));
    expect(weak.status, weak.text).toBe(503);
    expect(weak.json.title).toBe("Webhook source misconfigured");
    expect(weak.json.errors).toEqual([
      { param: "source", message: expect.stringMatching(/^WEBHOOK_SOURCES\.weak\.secret: must be at least 24 bytes/) },
    ]);
    expect(weak.text).not.toContain(WEAK);

    const gh = await call(env, hook("gh", body, await githubHeaders(body, "d-gh")));
    expect(gh.status, gh.text).toBe(202);
    const api = await call(env, authed("/events", tick));
    expect(api.status, api.text).toBe(202);
    expect((await call(env, hook("nope", body, {}))).status).toBe(404);
    expect((await b.stored(env)).map((e) => e.source).sort()).toEqual(["cron", "gh"]);

    // /ready names the setting to everyone; its rule only to a token holder.
    const anon = await adminCall(env, "GET", "/ready", { token: null });
    expect(anon.status).toBe(503);
    expect(anon.body.misconfigured).toEqual(["WEBHOOK_SOURCES.weak.secret"]);
    expect(anon.body.problems).toBeUndefined();
    const op = await adminCall(env, "GET", "/ready");
    expect(op.status).toBe(503);
    expect(op.body.problems).toEqual([expect.stringMatching(/^WEBHOOK_SOURCES\.weak\.secret: /)]);
    expect(op.body.checks.postgres.status).not.toBe("unhealthy");
  });

  it("WEBHOOK_SOURCES that is not JSON stops the webhook routes, and keys that would need its names", async () => {
    const granted = "granted-key-0123456789abcdef";
    const env = await b.env({
      WEBHOOK_SOURCES: "{not json",
      API_KEYS: JSON.stringify([API_KEY, { key: granted, sources: ["cron"] }]),
    });
    const hooked = await call(env, hook("gh", "{}", await githubHeaders("{}")));
    expect(hooked.status).toBe(503);
    expect(hooked.json.errors[0].message).toBe("WEBHOOK_SOURCES: not valid JSON");
    // A bare key may use any source but a webhook's, and which those are is unknown now.
    const bare = await call(env, authed("/events", tick));
    expect(bare.status, bare.text).toBe(503);
    expect(bare.json.errors).toEqual([{ param: "WEBHOOK_SOURCES", message: "WEBHOOK_SOURCES: not valid JSON" }]);
    // A key whose grant names its sources exactly needs no other name.
    expect((await call(env, authed("/events", tick, { authorization: `Bearer ${granted}` }))).status).toBe(202);
    expect(await b.stored(env)).toHaveLength(1);
    expect((await adminCall(env, "GET", "/ready", { token: null })).body.misconfigured).toEqual(["WEBHOOK_SOURCES"]);
  });

  it("valid sources leave /ready ready", async () => {
    const env = await b.env({ WEBHOOK_SOURCES: JSON.stringify(SOURCES) });
    const r = await adminCall(env, "GET", "/ready", { token: null });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
  });
});

describe("a fatal setting", () => {
  it("stops the routes that need the configuration; /ready answers 503 naming it, /health stays up", async () => {
    const env = await ingestEnv({ ...base, WEBHOOK_SOURCES: sources });
    delete (env as Partial<TestEnv>).DATABASE_URL;
    const ready = await adminCall(env, "GET", "/ready", { token: null });
    expect(ready.status).toBe(503);
    expect(ready.body.misconfigured).toEqual(["DATABASE_URL", "WEBHOOK_SOURCES.weak.secret"]);
    expect((await adminCall(env, "GET", "/health", { token: null })).status).toBe(200);
    const ingest = await call(env, authed("/events", tick));
    expect(ingest.status).toBe(500);
    expect(ingest.json.title).toBe("Server misconfigured");
  });

  it("checkConfig lists fatal and per-source problems apart, every one at once", () => {
    const check = checkConfig({ EVENT_BACKEND: "postgres", ADMIN_TOKEN: "short", WEBHOOK_SOURCES: sources });
    expect(check.config).toBeUndefined();
    expect(check.fatal.map((p) => p.split(":")[0])).toEqual(["DATABASE_URL", "ADMIN_TOKEN"]);
    expect(check.sources).toEqual([expect.stringMatching(/^WEBHOOK_SOURCES\.weak\.secret: /)]);
    const ok = checkConfig({
      EVENT_BACKEND: "postgres",
      DATABASE_URL: "postgres://u@db.example/x",
      EVENT_ID_SECRET: "an-event-id-secret-0123456789",
      WEBHOOK_SOURCES: sources,
    });
    expect(ok.fatal).toEqual([]);
    expect(ok.config?.DATABASE_URL).toBe("postgres://u@db.example/x");
    expect(ok.sources).toHaveLength(1);
  });
});
