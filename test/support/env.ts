/**
 * Per-test environments, inside workerd.
 *
 * `freshEnv()` gives a worker `Env` with its own Postgres database (cloned from the
 * migrated template) and its own Redis key prefix, talking to the real local services
 * through the stand-ins - the same client libraries and code paths production uses.
 */
import { env as bindings } from "cloudflare:workers";
import { Client } from "@neondatabase/serverless";
import { inject } from "vitest";
import type { Env } from "../../src/config";
import { applyLocalProxy } from "../../src/db/client";

let counter = 0;

function uid(): string {
  return crypto.randomUUID().replace(/-/g, "").slice(0, 12);
}

/** Runs one statement against the server's `postgres` database (CREATE/DROP DATABASE). */
async function adminQuery(sql: string): Promise<void> {
  const c = applyLocalProxy(new Client(inject("pgAdminUrl")), inject("neonProxy"));
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

export interface TestEnv extends Env {
  DATABASE_URL: string;
  REDIS_PREFIX: string;
}

/** A new isolated environment; `overrides` replace or add variables. */
export async function freshEnv(overrides: Record<string, unknown> = {}): Promise<TestEnv> {
  const id = `${uid()}${counter++}`;
  const db = `reflex_t_${inject("runId")}_${id}`;
  await adminQuery(`CREATE DATABASE ${db} TEMPLATE ${inject("templateDb")}`);
  const adminUrl = new URL(inject("pgAdminUrl"));
  adminUrl.pathname = `/${db}`;
  return {
    ...(bindings as unknown as Env),
    UPSTASH_REDIS_REST_URL: inject("upstashUrl"),
    UPSTASH_REDIS_REST_TOKEN: inject("upstashToken"),
    NEON_WS_PROXY: inject("neonProxy"),
    DATABASE_URL: adminUrl.toString(),
    REDIS_PREFIX: `t:${id}`,
    ...overrides,
  } as TestEnv;
}
