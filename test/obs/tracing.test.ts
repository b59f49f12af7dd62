/**
 * OpenTelemetry: with OTEL_EXPORTER_OTLP_ENDPOINT set, the worker exports spans over
 * OTLP/HTTP (here to the local receiver of test/support/receiver.ts), and an event's spans
 * join the trace of the W3C traceparent it arrived with.
 */

import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, inject, it } from "vitest";
import { openRedis } from "../../src/backends/redis/client";
import { redisKeys } from "../../src/backends/redis/keys";
import { loadConfig } from "../../src/config";
import worker from "../../src/index";
import { call } from "../support/admin";
import { freshEnv } from "../support/env";

const API_KEY = "tracing-test-key-0123456789";

async function receiverLog(
  id: string,
): Promise<Array<{ path: string; headers: Record<string, string>; body: string }>> {
  return (await fetch(`${inject("receiverUrl")}/__log/${id}`)).json() as never;
}

describe("tracing", () => {
  // One collector for the file: an isolate keeps the exporter of the first traced invocation.
  const rid = `otel-${crypto.randomUUID()}`;

  it("exports ingest, publish, claim, trigger and settle spans in the event's trace", async () => {
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

  it("a failed publish marks its span as an error without the payload (the Upstash error quotes the command)", async () => {
    const before = (await receiverLog(rid)).length;
    const env = await freshEnv({
      API_KEYS: API_KEY,
      WEBHOOK_SOURCES: JSON.stringify({ lab: { scheme: "none", unsigned: true, id_header: "x-request-id" } }),
      OTEL_EXPORTER_OTLP_ENDPOINT: `${inject("receiverUrl")}/r/${rid}/v1/traces`,
    });
    const cfg = loadConfig(env);
    // The stream key holds a string: XADD fails with WRONGTYPE, and the error quotes the command.
    await openRedis(cfg).set(redisKeys(cfg.REDIS_PREFIX).stream(0), "not a stream");
    const marker = `secret-payload-${crypto.randomUUID()}`;
    // A deduplicated delivery takes one script call, whose error quotes its arguments (the envelope).
    const r = await call(env, "POST", "/webhooks/lab", {
      token: null,
      headers: { "x-request-id": crypto.randomUUID() },
      body: { content: marker },
    });
    expect(r.status).toBe(503);
    let posts = (await receiverLog(rid)).slice(before);
    for (let i = 0; i < 50 && !posts.some((p) => p.body.includes("WRONGTYPE")); i++) {
      await new Promise((res) => setTimeout(res, 100));
      posts = (await receiverLog(rid)).slice(before);
    }
    expect(posts.length).toBeGreaterThan(0);
    const spans = posts.flatMap((p) =>
      JSON.parse(p.body).resourceSpans.flatMap((rs: any) => rs.scopeSpans.flatMap((ss: any) => ss.spans)),
    ) as Array<{ name: string; status?: { code?: number; message?: string }; events?: unknown[] }>;
    const publish = spans.find((s) => s.name === "publish" && s.status?.code === 2)!;
    expect(publish.status?.code).toBe(2); // ERROR
    expect(publish.status?.message).toMatch(/WRONGTYPE/);
    for (const p of posts) expect(p.body).not.toContain(marker);
  });
});
