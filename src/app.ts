/**
 * The HTTP surface: routes and middleware, nothing else. Each route group lives in its
 * own module and is mounted here.
 *
 * Route groups are OpenAPIHono routers (src/http/router.ts createRouter()), so every route
 * appears in /openapi.json; every error is an RFC 9457 problem (src/http/error-handler.ts).
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import { adminRoutes } from "./admin/routes";
import { dashboardRoutes } from "./dashboard/routes";
import { registry } from "./events/event-types";
import { healthRoutes } from "./health/routes";
import type { AppEnv } from "./http/app-env";
import { withConfig } from "./http/config";
import { mountDocs } from "./http/docs";
import { notFound, onError, validationHook } from "./http/error-handler";
import { httpMetrics } from "./http/ingest-metrics";
import { eventsRouter } from "./ingest/events-routes";
import { webhooksRouter } from "./ingest/webhooks-routes";
import { wsRouter } from "./ingest/ws-route";
import { metricsRoutes } from "./obs/routes";

export function createApp() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.onError(onError);
  app.notFound(notFound);
  app.use("*", httpMetrics); // counts ingest outcomes; flushes counters now and then
  app.use("*", withConfig); // c.var.config for every route
  app.route("/", healthRoutes()); // /health, /ready, /health/detailed
  app.route("/", metricsRoutes()); // /metrics (admin token)
  app.route("/", eventsRouter);
  app.route("/", webhooksRouter);
  app.route("/", wsRouter); // GET /ws: events over a WebSocket (API key)
  app.route("/", adminRoutes()); // GET /events, /events/{id}, /events/dlq..., /replays... (admin token)
  app.route("/dashboard", dashboardRoutes()); // the operator dashboard (HTML, session cookie)
  app.get("/", (c) => c.redirect("/dashboard", 302));
  mountDocs(app, registry);
  return app;
}

export const app = createApp();
