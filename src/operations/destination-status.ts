/**
 * Every configured destination with its circuit breaker, as the admin API's GET
 * /destinations and the dashboard's destinations page show them. The URL shows as scheme
 * and host only (a webhook URL's path is its secret); never secrets or headers.
 */
import type { Config } from "../config";
import { shownUrl } from "../config/destination-specs";
import type { Db } from "../db/client";
import { breakerStates } from "../destinations";
import { type RequestScope, withDb } from "./db-scope";

/** One entry per DESTINATIONS entry, in its order. */
export async function destinationStatus(db: Db, cfg: Config, now = new Date()) {
  const breakers = await breakerStates(db, cfg, now);
  return cfg.DESTINATIONS.map((d, i) => ({
    name: d.name,
    url: shownUrl(d.url),
    filter: d.filter,
    breaker: breakers[i]!,
  }));
}

/** destinationStatus on the request's database handle. */
export function listDestinations(c: RequestScope) {
  return withDb(c, "write", (db, cfg) => destinationStatus(db, cfg));
}
