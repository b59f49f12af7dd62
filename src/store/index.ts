/** Picks the EventStore implementation from EVENT_BACKEND. */
import type { Config } from "../config";
import type { Db } from "../db/client";
import { openRedis } from "./redis";
import { RedisStreamStore } from "./redis-streams";
import type { EventStore } from "./types";

/** `db` (Postgres history) is needed to consume; publishing works without it. */
export function openStore(cfg: Config, db?: Db): EventStore {
  switch (cfg.EVENT_BACKEND) {
    case "redis":
      return new RedisStreamStore(openRedis(cfg), cfg, db);
    case "postgres":
      throw new Error("EVENT_BACKEND=postgres is not implemented yet");
  }
}

export type { EventStore };
