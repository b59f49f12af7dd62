import { describe, expect, it } from "vitest";
import { createLogger, eventFields } from "../../src/obs/log";

describe("structured logs", () => {
  it("writes one JSON object per line with event fields, redacting credentials and dropping payloads", () => {
    const lines: string[] = [];
    const log = createLogger("info", { component: "test" }, (l) => lines.push(l));
    const event = {
      id: "e1",
      type: "t",
      source: "s",
      meta: { trace_id: "tr", correlation_id: "co" },
      secret_field: "x",
    };
    log.child(eventFields(event)).info("handled", { api_key: "k-123", Authorization: "Bearer z", took_ms: 3 });
    log.debug("hidden below the level");
    expect(lines).toHaveLength(1);
    const rec = JSON.parse(lines[0]);
    expect(rec).toMatchObject({
      level: "info",
      msg: "handled",
      component: "test",
      event_id: "e1",
      trace_id: "tr",
      correlation_id: "co",
      took_ms: 3,
    });
    expect(rec.api_key).toBe("[redacted]");
    expect(rec.Authorization).toBe("[redacted]");
    expect(lines[0]).not.toContain("k-123");
    expect(lines[0]).not.toContain("secret_field");
  });
});
