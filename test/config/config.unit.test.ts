import { describe, expect, it } from "vitest";
import { type Env, loadConfig } from "../../src/config";
import { ConfigError } from "../../src/errors";

const base = {
  UPSTASH_REDIS_REST_URL: "https://example.upstash.io",
  UPSTASH_REDIS_REST_TOKEN: "tok",
  DATABASE_URL: "postgresql://u@db.example/x",
  EVENT_ID_SECRET: "test-event-id-secret-0123456789",
};

describe("config", () => {
  it("applies the documented defaults", () => {
    const c = loadConfig({ ...base });
    expect(c.EVENT_BACKEND).toBe("redis");
    expect(c.LOCK_BACKEND).toBe("redis");
    expect(c.EVENT_MAX_ATTEMPTS).toBe(3);
    expect(c.EVENT_RETRY_BASE_DELAY).toBe(1);
    expect(c.EVENT_RETRY_MAX_DELAY).toBe(60);
    expect(c.API_KEYS).toEqual([]);
  });

  it("parses values; empty strings mean unset; postgres backend defaults to advisory locks", () => {
    const c = loadConfig({
      DATABASE_URL: base.DATABASE_URL,
      EVENT_ID_SECRET: base.EVENT_ID_SECRET,
      EVENT_BACKEND: "postgres",
      EVENT_MAX_ATTEMPTS: "5",
      API_KEYS: " key-a-0123456789abcdef, key-b-0123456789abcdef ,,",
      LOCK_BACKEND: "",
    });
    expect(c.EVENT_MAX_ATTEMPTS).toBe(5);
    expect(c.API_KEYS).toEqual([{ key: "key-a-0123456789abcdef" }, { key: "key-b-0123456789abcdef" }]);
    expect(c.LOCK_BACKEND).toBe("postgres");
  });

  it("one error lists every problem by name", () => {
    const env: Env = {
      EVENT_BACKEND: "mongo",
      EVENT_MAX_ATTEMPTS: "zero",
      DATABASE_URL: "mysql://x",
      ADMIN_TOKEN: "short",
    };
    let err: unknown;
    try {
      loadConfig(env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join("\n");
    for (const name of ["EVENT_BACKEND", "EVENT_MAX_ATTEMPTS", "DATABASE_URL", "ADMIN_TOKEN"]) {
      expect(problems).toContain(name);
    }
  });

  it("redis backend needs the Upstash variables; max delay must not be below base", () => {
    expect(() =>
      loadConfig({ DATABASE_URL: base.DATABASE_URL, EVENT_RETRY_BASE_DELAY: "10", EVENT_RETRY_MAX_DELAY: "5" }),
    ).toThrow(/UPSTASH_REDIS_REST_URL[\s\S]*UPSTASH_REDIS_REST_TOKEN[\s\S]*EVENT_RETRY_MAX_DELAY/);
  });
});
