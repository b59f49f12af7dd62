/** The Hono environment of every route: the worker's bindings, and the parsed configuration. */
import type { Config, Env } from "../config";

export type AppEnv = {
  Bindings: Env;
  /** `config` is set by src/http/config.ts before any route runs. */
  Variables: { config: Config };
};
