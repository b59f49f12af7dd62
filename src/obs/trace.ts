/**
 * OpenTelemetry tracing. When OTEL_EXPORTER_OTLP_ENDPOINT is set, src/index.ts runs the
 * worker through @microlabs/otel-cf-workers, which exports spans over OTLP/HTTP (Logfire
 * and any OTLP collector accept it); otherwise no tracer is registered and every span here
 * is the API's no-op, costing nothing.
 *
 * Spans: ingest (the HTTP request, by the library), publish, claim (read + persist),
 * claim_due, dispatch, trigger:<name>, settle (outcomes + ack + DLQ moves), replay chunks.
 * An event's spans join the event's own trace (meta.trace_id, which ingest takes from an
 * incoming W3C traceparent), so derived events - which inherit the trace id - stay in it.
 */

import type { TraceConfig } from "@microlabs/otel-cf-workers";
import { type Attributes, type Context, context, type Span, SpanStatusCode, trace } from "@opentelemetry/api";
import { version } from "../../package.json";
import type { Config } from "../config";

const tracer = () => trace.getTracer("reflex-edge");

/**
 * The error's name and first line, without a quoted command (an UpstashError quotes it,
 * event payloads and all), at most 300 characters: what logs and spans keep of an error.
 */
export function errorSummary(err: unknown): string {
  const line = (e: unknown) =>
    (e instanceof Error ? `${e.name}: ${e.message}` : String(e)).split(", command was:")[0]!.split("\n")[0]!;
  // A driver error wrapped by Drizzle ("Failed query: <the SQL>") says what failed in its cause.
  const cause = err instanceof Error ? (err.cause as { code?: string } | undefined) : undefined;
  const why = cause ? ` (${line(cause)}${cause.code ? ` [${cause.code}]` : ""})` : "";
  return `${line(err)}${why}`.slice(0, 300);
}

/** Runs `fn` in a span; an exception marks the span as an error (its summary only) and is rethrown. */
export async function withSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span?: Span) => Promise<T>,
  parent?: Context,
): Promise<T> {
  // Outside a traced invocation there is no active span: run untraced. (An isolate that
  // once ran traced keeps a registered provider; untraced invocations must not feed it.)
  if (!trace.getActiveSpan()) return fn();
  return tracer().startActiveSpan(name, { attributes }, parent ?? context.active(), async (span) => {
    try {
      return await fn(span);
    } catch (e) {
      // The summary only: no stack, no quoted command, so no payload reaches the exporter.
      const summary = errorSummary(e);
      span.recordException({ name: e instanceof Error ? e.name : "Error", message: summary });
      span.setStatus({ code: SpanStatusCode.ERROR, message: summary });
      throw e;
    } finally {
      span.end();
    }
  });
}

/**
 * A context whose parent is the event's trace (a remote parent: the span that published
 * the event lives in another invocation), so handler spans land in the event's trace.
 */
export function eventTraceContext(traceId: string | undefined): Context {
  if (!traceId || !/^[0-9a-f]{32}$/.test(traceId) || /^0+$/.test(traceId)) return context.active();
  const spanId = crypto.randomUUID().replace(/-/g, "").slice(0, 16);
  return trace.setSpanContext(context.active(), { traceId, spanId, traceFlags: 1, isRemote: true });
}

export function tracingEnabled(cfg: Config): boolean {
  return Boolean(cfg.OTEL_EXPORTER_OTLP_ENDPOINT);
}

/** "k=v,k2=v2" (the OTEL_EXPORTER_OTLP_HEADERS convention) -> headers. */
export function parseOtlpHeaders(s: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (s ?? "").split(",")) {
    const i = part.indexOf("=");
    if (i > 0) out[decodeURIComponent(part.slice(0, i).trim())] = decodeURIComponent(part.slice(i + 1).trim());
  }
  return out;
}

export function traceConfig(cfg: Config): TraceConfig {
  return {
    exporter: { url: cfg.OTEL_EXPORTER_OTLP_ENDPOINT!, headers: parseOtlpHeaders(cfg.OTEL_EXPORTER_OTLP_HEADERS) },
    service: { name: cfg.OTEL_SERVICE_NAME, version },
    // Global fetch/cache patching would also trace invocations that run untraced in the
    // same isolate; our own spans cover publish, claim, triggers and settle.
    instrumentation: { instrumentGlobalFetch: false, instrumentGlobalCache: false },
  };
}
