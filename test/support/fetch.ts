/**
 * One request through a fetch handler - the worker's own (src/index.ts) unless another is
 * given - with a fresh execution context whose waitUntil work (wake-ups, pool closing,
 * metrics) is awaited before the answer is returned. The body comes back as text and, when
 * it is JSON, parsed (`json` is undefined otherwise).
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import type { Env } from "../../src/config";
import worker from "../../src/index";

type Handler = (req: Request, env: Env, ctx: ExecutionContext) => Response | Promise<Response>;

export interface Fetched {
  res: Response;
  text: string;
  json: unknown;
}

export async function fetchThrough(
  env: Env,
  req: Request,
  handler: Handler = worker.fetch as Handler,
): Promise<Fetched> {
  const ctx = createExecutionContext();
  const res = await handler(req, env, ctx);
  const text = await res.text();
  await waitOnExecutionContext(ctx);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { res, text, json };
}
