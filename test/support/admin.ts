/**
 * Admin API calls in tests: requests go through the worker's real fetch handler with the
 * test's own env (database, Redis prefix, ADMIN_TOKEN) and an execution context whose
 * waitUntil work (closing the Postgres pool) is awaited.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import worker from "../../src/index";
import type { Env } from "../../src/config";

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
  const ctx = createExecutionContext();
  const res = await worker.fetch!(
    new Request(`http://reflex.test${path}`, { method, headers, body: o.body === undefined ? undefined : JSON.stringify(o.body) }) as any,
    env,
    ctx,
  );
  const text = await res.text();
  await waitOnExecutionContext(ctx);
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    /* keep text */
  }
  return { status: res.status, headers: res.headers, body: body as T };
}
