/** DESTINATIONS parsing: the problems a bad destination gets, and a good one's defaults (no services). */
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config";
import { ConfigError } from "../../src/errors";

describe("destinations: configuration", () => {
  const base = {
    UPSTASH_REDIS_REST_URL: "https://x.upstash.io",
    UPSTASH_REDIS_REST_TOKEN: "t",
    DATABASE_URL: "postgresql://u@db/x",
    EVENT_ID_SECRET: "test-event-id-secret-0123456789",
  };
  const problems = (env: Record<string, unknown>) => {
    try {
      loadConfig(env);
    } catch (e) {
      if (e instanceof ConfigError) return e.problems;
      throw e;
    }
    return [];
  };

  it("errors name the destination and the field; a URL on the worker's own host is refused", () => {
    const p = problems({
      ...base,
      PUBLIC_URL: "https://events.example.com",
      DESTINATIONS: JSON.stringify([
        { name: "ok", url: "https://hooks.example.org/in", filter: {} },
        { name: "orders", url: "ftp://x", filter: { types: [] }, secret: "nope" },
        { url: "https://a.example", filter: {}, timeout_ms: 5 },
        { name: "loop", url: "http://EVENTS.example.com:8080/events", filter: {} },
        { name: "ok", url: "https://hooks.example.org/in", filter: {}, headers: { "webhook-id": "x" } },
      ]),
    });
    expect(p).toEqual([
      "DESTINATIONS[1] (orders).url: must be an http:// or https:// URL",
      "DESTINATIONS[1] (orders).filter.types: must list at least one type (omit it to match any)",
      "DESTINATIONS[1] (orders).secret: must be a Standard Webhooks secret: whsec_ then base64",
      "DESTINATIONS[2].name: Invalid input: expected string, received undefined",
      "DESTINATIONS[2].timeout_ms: Too small: expected number to be >=100",
      "DESTINATIONS[3] (loop).url: points at this worker (events.example.com is in PUBLIC_URL); delivering there would loop",
      "DESTINATIONS[4] (ok).headers.webhook-id: is set by the deliverer and cannot be overridden",
    ]);
    expect(problems({ ...base, DESTINATIONS: "{" })).toEqual(["DESTINATIONS: not valid JSON"]);
    expect(
      loadConfig({ ...base, DESTINATIONS: JSON.stringify([{ name: "a", url: "https://a.example/x", filter: {} }]) })
        .DESTINATIONS,
    ).toEqual([
      {
        name: "a",
        url: "https://a.example/x",
        filter: { types: [], sources: [] },
        timeoutMs: 10_000,
        headers: {},
        scope: "source",
        ordered: false,
        onDead: "skip",
      },
    ]);
  });
});
