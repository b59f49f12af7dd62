/** Picks the EventStore implementation from EVENT_BACKEND. */
import type { Config } from "../config";
import type { Db } from "../db/client";
import { PostgresEventStore } from "./postgres";
import { openRedis } from "./redis";
import { RedisStreamStore } from "./redis-streams";
import type { EventStore } from "./types";

/**
 * `db` (Postgres history) is needed to consume with Redis; publishing works without it.
 * The Postgres store without `db` opens a pool per publish (ingest, per request).
 */
export function openStore(cfg: Config, db?: Db): EventStore {
  switch (cfg.EVENT_BACKEND) {
    case "redis":
      return new RedisStreamStore(openRedis(cfg), cfg, db);
    case "postgres":
      return new PostgresEventStore(cfg, db);
  }
}

export type { EventStore };
