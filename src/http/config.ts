/**
 * Middleware: parses the configuration once per request and puts it on the context
 * (`c.var.config`), so no route parses it again.
 *
 * A bad configuration fails the request with 500 "Server misconfigured" (src/http/error-handler.ts)
 * - except where none is needed: liveness and the API reference still answer, /ready answers
 * 503 naming the bad settings, so a broken deployment can be told apart from a dead one, and a
 * path no route serves is still a 404.
 */
import type { MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import { loadConfig } from "../config";
import { ConfigError } from "../errors";
import type { AppEnv } from "./app-env";

const NEEDS_NO_CONFIG = new Set(["/health", "/ready", "/docs", "/openapi.json"]);

export const withConfig: MiddlewareHandler<AppEnv> = async (c, next) => {
  try {
    c.set("config", loadConfig(c.env));
  } catch (e) {
    // Middleware is registered for every method ("ALL"); a route has its own.
    const routed = matchedRoutes(c).some((r) => r.method !== "ALL");
    if (!(e instanceof ConfigError) || (routed && !NEEDS_NO_CONFIG.has(c.req.path))) throw e;
  }
  await next();
};
