/**
 * Setup file of the `unit` project (vitest.config.ts): its tests start no service and are
 * given none. The services' global setup (test/global-setup.ts) belongs to the projects that
 * declare it and provides them its addresses; a unit project that received one would mean it
 * ran for this project too, so every unit file fails here instead of passing on a machine
 * that happens to have Redis and Postgres.
 */
import { inject } from "vitest";

const services = ["upstashUrl", "neonProxy", "pgAdminUrl", "templateDb", "receiverUrl", "faultControlUrl"] as const;
const given = services.filter((k) => inject(k) !== undefined);
if (given.length > 0)
  throw new Error(`the unit project was given services (${given.join(", ")}): test/global-setup.ts ran for it`);
