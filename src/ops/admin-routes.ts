/**
 * The admin API, mounted by src/app.ts: history and DLQ (./admin-events.ts) and replay jobs
 * (./admin-replays.ts), every route behind `Authorization: Bearer <ADMIN_TOKEN>` (src/http/auth.ts).
 */
import { createRouter } from "../http/router";
import { adminDestinationRoutes } from "./admin-destinations";
import { adminEventRoutes } from "./admin-events";
import { adminOrderedRoutes } from "./admin-ordered";
import { adminReplayRoutes } from "./admin-replays";

export function adminRoutes() {
  const r = createRouter();
  r.openAPIRegistry.registerComponent("securitySchemes", "adminToken", {
    type: "http",
    scheme: "bearer",
    description: "ADMIN_TOKEN (admin API and the `reflex` CLI)",
  });
  r.route("/", adminEventRoutes());
  r.route("/", adminReplayRoutes());
  r.route("/", adminDestinationRoutes());
  r.route("/", adminOrderedRoutes());
  return r;
}
