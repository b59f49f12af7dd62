/**
 * Inside workerd: a private pair of stand-ins whose faults a test may switch, so that
 * taking Redis or Postgres "down" affects only the test that asked for it.
 *
 *   const pair = await privateStandIns();
 *   const env = await freshEnv(pair.env);
 *   await pair.gateway(503);   // Redis gateway answers 503
 *   await pair.postgres(false) // Postgres unreachable
 */
import { inject } from "vitest";

export interface StandInPair {
  env: { UPSTASH_REDIS_REST_URL: string; UPSTASH_REDIS_REST_TOKEN: string; NEON_WS_PROXY: string };
  /** null: healthy; a status code: every request answered with it; "hang": held open. */
  gateway(fault: number | "hang" | null): Promise<void>;
  /** false: the proxy cuts connections and refuses new ones; true: back up. */
  postgres(up: boolean): Promise<void>;
  /** Postgres connections through this pair: open now, most at once (since the last reset), opened in all. */
  pgConnections(reset?: boolean): Promise<{ open: number; peak: number; opened: number }>;
  close(): Promise<void>;
}

async function control(method: string, path: string, body?: unknown) {
  const res = await fetch(inject("faultControlUrl") + path, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`fault control ${method} ${path}: ${res.status} ${await res.text()}`);
  return res.json() as Promise<Record<string, string>>;
}

export async function privateStandIns(): Promise<StandInPair> {
  const p = await control("POST", "/pairs");
  return {
    env: { UPSTASH_REDIS_REST_URL: p.upstashUrl, UPSTASH_REDIS_REST_TOKEN: p.upstashToken, NEON_WS_PROXY: p.neonProxy },
    gateway: async (fault) => void (await control("POST", `/pairs/${p.id}/gateway`, { fault })),
    postgres: async (up) => void (await control("POST", `/pairs/${p.id}/proxy`, { down: !up })),
    pgConnections: async (reset = false) =>
      (await control("GET", `/pairs/${p.id}/proxy${reset ? "?reset=1" : ""}`)) as unknown as {
        open: number;
        peak: number;
        opened: number;
      },
    close: async () => void (await control("DELETE", `/pairs/${p.id}`)),
  };
}
