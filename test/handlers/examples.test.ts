/**
 * The examples registered by default do not break a default deployment: the issue-triage
 * agent without AGENT_MODEL is off (it matches nothing, /health/detailed and a log line at
 * start say why) instead of sending every GitHub issue to the DLQ; its filter takes only
 * deliveries verified by the GitHub signature scheme. Real Redis and Postgres, both backends.
 */
import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../../src/config";
import type { EventEnvelope } from "../../src/events/envelope";
import { issueOpened } from "../../src/handlers/issue-triage";
import worker from "../../src/index";
import { defaultTriggers } from "../../src/triggers/registry";
import { call } from "../support/admin";
import { event } from "../support/consume";
import { rigsClosedAfterEach } from "../support/rig";

const make = rigsClosedAfterEach();
afterEach(() => {
  vi.restoreAllMocks();
});

const issueOpenedEvent = (ingress?: Record<string, string>): EventEnvelope =>
  event({
    type: "webhook.received",
    source: "github",
    delivery_id: crypto.randomUUID(),
    headers: { "x-github-event": "issues" },
    body: { action: "opened", issue: { number: 1, title: "Crash" }, repository: { full_name: "acme/app" } },
    meta: { trace_id: "c".repeat(32), ...(ingress ? { ingress } : {}) },
  });

describe.each(["redis", "postgres"] as const)("examples in a default deployment (%s)", (backend) => {
  it("without AGENT_MODEL the triage example is off: issues complete, none in the DLQ, a log line says why", async () => {
    const r = await make(backend, { EVENT_MAX_ATTEMPTS: "1" });
    const warned: string[] = [];
    vi.spyOn(console, "warn").mockImplementation((line: unknown) => void warned.push(String(line)));
    const e = issueOpenedEvent({ kind: "webhook", source: "github", scheme: "github" });
    await r.bundle.store.publish([e]);
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "* * * * *", scheduledTime: Date.now() }), r.env, ctx);
    await waitOnExecutionContext(ctx);
    const [row] = await r.rows<{ status: string }>(sql`select status from events where id = ${e.id}`);
    expect(row).toEqual({ status: "completed" });
    expect(await r.rows(sql`select 1 from steps`)).toEqual([]);
    const off = warned.filter((l) => l.includes("trigger off"));
    expect(off).toHaveLength(1);
    expect(off[0]).toContain("issue-triage");
    expect(off[0]).toContain("AGENT_MODEL is not set");
  });

  it("/health/detailed lists the example as off, with why, without degrading", async () => {
    const r = await make(backend);
    const h = await call(r.env, "GET", "/health/detailed");
    expect(h.body.indicators.triggers_off).toEqual({
      status: "healthy",
      value: 1,
      triggers: [{ trigger: "issue-triage", reason: "off: AGENT_MODEL is not set (example agent)" }],
    });
  });
});

describe("the triage example's configuration and filter", () => {
  it("is on once AGENT_MODEL is set", () => {
    const base = { DATABASE_URL: "postgres://u@127.0.0.1/x", EVENT_BACKEND: "postgres" };
    expect(defaultTriggers.off(loadConfig(base)).map((x) => x.trigger)).toContain("issue-triage");
    const withModel = loadConfig({ ...base, AGENT_MODEL: "openai:gpt-4.1-mini", OPENAI_API_KEY: "sk-test" });
    expect(defaultTriggers.off(withModel)).toEqual([]);
  });

  it("takes only deliveries verified by the GitHub scheme, not an x-github-event header alone", () => {
    const test = (e: EventEnvelope) => issueOpened.test(e, undefined as never, "f");
    expect(test(issueOpenedEvent({ kind: "webhook", source: "github", scheme: "github" }))).toBe(true);
    expect(test(issueOpenedEvent())).toBe(false);
    expect(test(issueOpenedEvent({ kind: "webhook", source: "lab", scheme: "none" }))).toBe(false);
    expect(test(issueOpenedEvent({ kind: "webhook", source: "shop", scheme: "hmac-sha256" }))).toBe(false);
    expect(test(issueOpenedEvent({ kind: "api", key: "k1" }))).toBe(false);
  });
});
