/**
 * Read-only means read-only, logs mean no payloads.
 *
 *  - A destination's URL shows as scheme and host on every view either token can read (the
 *    admin API, /health, /metrics, the dashboard): a Slack or Discord webhook URL's path is
 *    its secret. Delivery errors (a refused redirect) name scheme and host too.
 *  - Log fields whose names look like credentials are redacted at any depth, arrays included.
 *  - The example lifecycle handler logs which event, never what the client put in it.
 */
import { describe, expect, inject, it } from "vitest";
import "../../src/handlers";
import { loadConfig } from "../../src/config";
import { sessionCookie } from "../../src/dashboard/session";
import { deliver } from "../../src/destinations/deliver";
import { createLogger, type LogLevel } from "../../src/obs/log";
import { defaultTriggers } from "../../src/triggers";
import { ADMIN_TOKEN, call } from "../support/admin";
import { event } from "../support/consume";
import { freshEnv } from "../support/env";
import { fetchThrough } from "../support/fetch";

const READ = "read-only-token-0123456789";
const SLACK_PATH = "/services/T0SECRET/B0SECRET/XXsecretXX";
const DISCORD_PATH = "/api/webhooks/1234/discord-secret-token";
const DESTINATIONS = [
  { name: "slack", url: `https://hooks.slack.example${SLACK_PATH}`, filter: {} },
  { name: "discord", url: `https://discord.example:8443${DISCORD_PATH}?wait=true`, filter: {} },
];
const leaks = (text: string) =>
  ["T0SECRET", "XXsecretXX", "discord-secret-token", "/services/", "/api/webhooks/"].filter((s) => text.includes(s));

async function env() {
  return freshEnv({
    ADMIN_TOKEN,
    METRICS_TOKEN: READ,
    DESTINATIONS: JSON.stringify(DESTINATIONS),
    CACHE_ENABLED: "false",
    WAKE_QUEUE: undefined,
    LOG_LEVEL: "error",
  });
}

describe("destination URLs on the views a token can read", () => {
  it("GET /destinations shows scheme and host only, to the read-only and the admin token alike", async () => {
    const e = await env();
    for (const token of [READ, ADMIN_TOKEN]) {
      const r = await call(e, "GET", "/destinations", { token });
      expect(r.status).toBe(200);
      expect(r.body.destinations.map((d: { url: string }) => d.url)).toEqual([
        "https://hooks.slack.example",
        "https://discord.example:8443",
      ]);
      expect(leaks(JSON.stringify(r.body))).toEqual([]);
    }
  });

  it("no GET route of /openapi.json readable with METRICS_TOKEN shows a destination's path", async () => {
    const e = await env();
    const spec = await call(e, "GET", "/openapi.json", { token: null });
    const paths = Object.entries(spec.body.paths as Record<string, Record<string, unknown>>)
      .filter(([p, ops]) => ops.get && !p.includes("{"))
      .map(([p]) => p);
    expect(paths).toEqual(expect.arrayContaining(["/destinations", "/metrics", "/health/detailed", "/ready"]));
    for (const p of paths) {
      const r = await call(e, "GET", p, { token: READ });
      expect(leaks(typeof r.body === "string" ? r.body : JSON.stringify(r.body)), p).toEqual([]);
    }
  });

  it("the dashboard's read-only session shows scheme and host only", async () => {
    const e = await env();
    const cookie = (await sessionCookie(loadConfig(e), "read")).split(";")[0]!;
    for (const page of ["/dashboard", "/dashboard/destinations"]) {
      const { res, text } = await fetchThrough(
        e,
        new Request(`http://reflex.test${page}`, { headers: { cookie, accept: "text/html" } }),
      );
      expect(res.status, page).toBe(200);
      expect(leaks(text), page).toEqual([]);
      if (page === "/dashboard/destinations") expect(text).toContain("https://hooks.slack.example");
    }
  });

  it("a refused redirect names the location's scheme and host, never its path", async () => {
    const receiver = inject("receiverUrl");
    const id = crypto.randomUUID().slice(0, 12);
    const location = `${receiver}/r/${id}${SLACK_PATH}`;
    await fetch(`${receiver}/__control/${id}`, {
      method: "POST",
      body: JSON.stringify({ mode: "redirect", location }),
    });
    const d = {
      name: "moved",
      url: `${receiver}/r/${id}${SLACK_PATH}`,
      filter: { types: [], sources: [] },
      timeoutMs: 5_000,
      headers: {},
    };
    const r = await deliver(d as never, event({ type: "timer.tick" }) as never);
    expect(r.statusCode).toBe(302);
    expect(r.error).toBe(`redirect not followed: ${new URL(receiver).origin}`);
  });
});

function capture(level: LogLevel = "debug") {
  const lines: string[] = [];
  return { log: createLogger(level, {}, (l) => lines.push(l)), lines };
}

describe("logs", () => {
  it("redact credential-like keys at any depth, arrays included; other fields stay", () => {
    const { log, lines } = capture();
    const loop: Record<string, unknown> = { name: "loop" };
    loop.self = loop;
    log.info("call", {
      request: { method: "POST", headers: { Authorization: "Bearer s1", cookie: "s2", "x-trace": "keep-1" } },
      attempts: [{ api_key: "s3", n: 1 }, [{ password: "s4" }], "keep-2"],
      deep: { a: { b: { client_secret: "s5", x_api_token: "s6", value: "keep-3" } } },
      error: new Error("boom"),
      loop,
    });
    const line = JSON.parse(lines[0]!);
    for (const s of ["s1", "s2", "s3", "s4", "s5", "s6"]) expect(lines[0]).not.toContain(`"${s}"`);
    expect(line.request.headers).toEqual({ Authorization: "[redacted]", cookie: "[redacted]", "x-trace": "keep-1" });
    expect(line.attempts).toEqual([{ api_key: "[redacted]", n: 1 }, [{ password: "[redacted]" }], "keep-2"]);
    expect(line.deep.a.b).toEqual({ client_secret: "[redacted]", x_api_token: "[redacted]", value: "keep-3" });
    expect(line.error).toBe("Error: boom");
    expect(line.loop).toEqual({ name: "loop", self: "[circular]" });
  });

  it("the example lifecycle handler logs the event, not the client's details", async () => {
    const trigger = defaultTriggers.list().find((t) => t.name === "log-lifecycle-errors")!;
    const { log, lines } = capture();
    const e = event({ type: "lifecycle", source: "app-7", action: "error", details: { card: "4111-SECRET" } });
    await trigger.handler({ event: e, log: log.child({ event_id: e.id }) } as never);
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain("4111-SECRET");
    expect(JSON.parse(lines[0]!)).toMatchObject({ msg: "lifecycle error reported", event_id: e.id, source: "app-7" });
  });
});
