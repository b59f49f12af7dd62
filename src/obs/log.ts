/**
 * Structured logs: one JSON object per line on the console, which Workers Logs (and
 * `wrangler tail`) index by field. Lines about an event carry its id, trace id and
 * correlation id (see `eventFields`); payloads are never logged, and fields whose names
 * look like credentials are redacted at any depth (objects and arrays).
 */
import type { EventEnvelope } from "../events/envelope";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_NAME = /(token|secret|password|authorization|signature|api[_-]?key|cookie)/i;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger whose lines all carry `fields` too. */
  child(fields: LogFields): Logger;
}

/** The fields that tie a log line to an event and its trace. Never the payload. */
export function eventFields(e: Pick<EventEnvelope, "id" | "type" | "source" | "meta">): LogFields {
  return {
    event_id: e.id,
    event_type: e.type,
    source: e.source,
    trace_id: e.meta?.trace_id,
    ...(e.meta?.correlation_id ? { correlation_id: e.meta.correlation_id } : {}),
  };
}

/** Deepest nesting a log field keeps; below it a value is cut (logs are for ids and figures). */
const MAX_DEPTH = 8;

/**
 * A field's value as logged: keys that look like credentials redacted at any depth, arrays
 * included; errors as "name: message"; cycles and excess depth cut.
 */
function scrub(v: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (v instanceof Error) return `${v.name}: ${v.message}`;
  if (v === null || typeof v !== "object") return v;
  if (seen.has(v)) return "[circular]";
  if (depth >= MAX_DEPTH) return "[too deep]";
  seen.add(v);
  try {
    if (Array.isArray(v)) return v.map((x) => scrub(x, depth + 1, seen));
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) return v; // Date, URL, ...: their own JSON form
    const out: LogFields = {};
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined) continue;
      out[k] = SECRET_NAME.test(k) ? "[redacted]" : scrub(x, depth + 1, seen);
    }
    return out;
  } finally {
    seen.delete(v);
  }
}

function clean(fields: LogFields): LogFields {
  return scrub(fields, 0, new WeakSet()) as LogFields;
}

/** Console method by level, so Workers Logs and `wrangler tail` show the level too. */
function consoleSink(line: string, level: LogLevel) {
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}

export function createLogger(
  level: LogLevel = "info",
  base: LogFields = {},
  sink: (line: string, level: LogLevel) => void = consoleSink,
): Logger {
  const min = RANK[level];
  const write = (lvl: LogLevel, msg: string, fields?: LogFields) => {
    if (RANK[lvl] < min) return;
    sink(
      JSON.stringify({
        ts: new Date().toISOString(),
        level: lvl,
        msg,
        ...clean(base),
        ...(fields ? clean(fields) : {}),
      }),
      lvl,
    );
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
    child: (f) => createLogger(level, { ...base, ...f }, sink),
  };
}
