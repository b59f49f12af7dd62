/**
 * Admin API calls in tests: requests go through the worker's real fetch handler with the
 * test's own env (database, Redis prefix, ADMIN_TOKEN) and an execution context whose
 * waitUntil work (closing the Postgres pool) is awaited.
 */
import type { Env } from "../../src/config";
import { fetchThrough } from "./fetch";

export const ADMIN_TOKEN = "test-admin-token-0123456789";

export interface Answer<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

export async function call<T = any>(
  env: Env,
  method: string,
  path: string,
  o: { body?: unknown; token?: string | null; headers?: Record<string, string> } = {},
): Promise<Answer<T>> {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  const token = o.token === undefined ? ADMIN_TOKEN : o.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (o.body !== undefined) headers["content-type"] = "application/json";
  const req = new Request(`http://reflex.test${path}`, {
    method,
    headers,
    body: o.body === undefined ? undefined : JSON.stringify(o.body),
  });
  const { res, text, json } = await fetchThrough(env, req);
  const body = text === "" ? undefined : json === undefined ? text : json;
  return { status: res.status, headers: res.headers, body: body as T };
}

/** GET /metrics, parsed: series (with labels) -> value. */
export async function scrapeMetrics(
  env: Env,
): Promise<{ status: number; headers: Headers; series: Map<string, number> }> {
  const r = await call<string>(env, "GET", "/metrics");
  const series = new Map<string, number>();
  for (const line of (r.status === 200 ? r.body : "").split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    series.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return { status: r.status, headers: r.headers, series };
}
