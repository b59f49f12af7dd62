/**
 * The HTTP surface: routes and middleware, nothing else. Each route group lives in its
 * own module and is mounted here.
 */
import { Hono } from "hono";
import type { Env } from "./config";

export type AppEnv = { Bindings: Env };

export function createApp() {
  const app = new Hono<AppEnv>();
  app.get("/health", (c) => c.json({ status: "healthy" }));
  return app;
}

export const app = createApp();
