/**
 * The admin API, mounted by src/app.ts: history (./history-routes.ts), the DLQ
 * (./dlq-routes.ts), replay jobs (./replay-routes.ts), parked scopes and destinations, every route behind
 * `Authorization: Bearer <ADMIN_TOKEN>` (src/http/admin-auth.ts). The routes only speak HTTP;
 * the operations they call are src/operations/, shared with the dashboard.
 */
import { createRouter } from "../http/router";
import { adminDestinationRoutes } from "./destination-routes";
import { adminDlqRoutes } from "./dlq-routes";
import { adminHistoryRoutes } from "./history-routes";
import { adminReplayRoutes } from "./replay-routes";
import { adminScopeRoutes } from "./scope-routes";

export function adminRoutes() {
  const r = createRouter();
  r.openAPIRegistry.registerComponent("securitySchemes", "adminToken", {
    type: "http",
    scheme: "bearer",
    description: "ADMIN_TOKEN (admin API and the `reflex` CLI)",
  });
  // The DLQ's routes before /events/{id}, so none of them is taken for an id.
  r.route("/", adminDlqRoutes());
  r.route("/", adminHistoryRoutes());
  r.route("/", adminReplayRoutes());
  r.route("/", adminDestinationRoutes());
  r.route("/", adminScopeRoutes());
  return r;
}
