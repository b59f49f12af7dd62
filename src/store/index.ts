/** Picks the EventStore implementation from EVENT_BACKEND. */
import type { Config } from "../config";
import { openRedis } from "./redis";
import { RedisStreamStore } from "./redis-streams";
import type { EventStore } from "./types";

export function openStore(cfg: Config): EventStore {
  switch (cfg.EVENT_BACKEND) {
    case "redis":
      return new RedisStreamStore(openRedis(cfg), cfg);
    case "postgres":
      throw new Error("EVENT_BACKEND=postgres is not implemented yet");
  }
}

export type { EventStore };
