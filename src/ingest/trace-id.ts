/**
 * The request's trace id, for events that bring none: from a valid W3C `traceparent`
 * header (version 00-fe, non-zero ids), else a new one. Invalid headers are ignored, as
 * the Trace Context spec asks, rather than rejected.
 */
import { newTraceId } from "../events/envelope";

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$/;

export function traceIdFrom(headers: Headers): string {
  const h = headers.get("traceparent")?.trim().toLowerCase();
  const m = h ? TRACEPARENT.exec(h) : null;
  if (m && m[1] !== "ff" && !/^0+$/.test(m[2]!) && !/^0+$/.test(m[3]!)) {
    // Version 00 has exactly four fields; later versions may append more.
    if (m[1] !== "00" || h!.length === 55) return m[2]!;
  }
  return newTraceId();
}
