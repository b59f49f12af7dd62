/** The Hono environment of the dashboard's routes: the app's, plus the signed-in session. */
import type { AppEnv } from "../http/app-env";

/** admin: every view and action; read: the views only (METRICS_TOKEN). */
export type Role = "admin" | "read";

export interface Session {
  role: Role;
  /** Unix seconds. */
  expires: number;
  /** The anti-forgery token of this session, for the forms. */
  csrf: string;
}

export type DashEnv = {
  Bindings: AppEnv["Bindings"];
  /** `session` is set by requireSession (./session.ts) on every page behind the sign-in. */
  Variables: AppEnv["Variables"] & { session: Session };
};
