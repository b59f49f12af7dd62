/**
 * OpenTelemetry: with OTEL_EXPORTER_OTLP_ENDPOINT set, the worker exports spans over
 * OTLP/HTTP (here to the local receiver of test/support/receiver.ts), and an event's spans
 * join the trace of the W3C traceparent it arrived with.
 */

import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, inject, it } from "vitest";
import worker from "../src/index";
import { call } from "./support/admin";
import { freshEnv } from "./support/env";

const API_KEY = "tracing-test-key-0123456789";

async function receiverLog(
  id: string,
): Promise<Array<{ path: string; headers: Record<string, string>; body: string }>> {
  return (await fetch(`${inject("receiverUrl")}/__log/${id}`)).json() as never;
}

describe("tracing", () => {
  it("exports ingest, publish, claim, trigger and settle spans in the event's trace", async () => {
    const rid = `otel-${crypto.randomUUID()}`;
    const env = await freshEnv({
      API_KEYS: API_KEY,
      OTEL_EXPORTER_OTLP_ENDPOINT: `${inject("receiverUrl")}/r/${rid}/v1/traces`,
      OTEL_EXPORTER_OTLP_HEADERS: "Authorization=Bearer%20otel-secret",
    });
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const accepted = await call(env, "POST", "/events", {
      token: API_KEY,
      headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
      body: { type: "lifecycle", source: "otel-test", action: "error", details: { why: "test" } },
    });
    expect(accepted.status).toBe(202);

    const ctx = createExecutionContext();
    await worker.scheduled!(createScheduledController({ cron: "* * * * *", scheduledTime: Date.now() }), env, ctx);
    await waitOnExecutionContext(ctx);

    const posts = await receiverLog(rid);
    expect(posts.length).toBeGreaterThan(0);
    expect(posts.every((p) => p.path.endsWith("/v1/traces"))).toBe(true);
    expect(posts[0].headers.authorization).toBe("Bearer otel-secret");
    const spans = posts.flatMap((p) => {
      const body = JSON.parse(p.body);
      return body.resourceSpans.flatMap((rs: any) => rs.scopeSpans.flatMap((ss: any) => ss.spans));
    }) as Array<{ name: string; traceId: string; attributes: Array<{ key: string; value: any }> }>;
    const names = spans.map((s) => s.name);
    for (const n of ["publish", "claim", "dispatch", "trigger log-lifecycle-errors", "settle"])
      expect(names).toContain(n);
    // The HTTP request and the handler both belong to the trace the client started.
    const handler = spans.find((s) => s.name === "trigger log-lifecycle-errors")!;
    expect(handler.traceId).toBe(traceId);
    expect(spans.find((s) => s.name === "publish")!.traceId).toBe(traceId);
  });
});
