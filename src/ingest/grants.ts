/**
 * What an API key may claim in the events it posts (POST /events, /events/batch, /ws).
 *
 * Routing, scopes, ctx.history and agent prompts all take an event's `source` and `type` at
 * their word, so a key may use only the ones its API_KEYS grant allows (globs), and never,
 * unless its grant lists the exact name:
 *  - a configured webhook source's name (WEBHOOK_SOURCES): an event under it would join that
 *    source's verified deliveries in scopes and history;
 *  - a type a trigger declares it publishes (TriggerSpec.publishes): an event of it would
 *    pass as a handler's output.
 * A refusal is a 403 naming each item's field; nothing of the request is stored.
 */
import type { Config } from "../config";
import type { ApiKey } from "../config/api-keys";
import type { EventEnvelope } from "../events/envelope";
import { HTTPProblem, type ProblemError } from "../http/problem";
import { globMatcher } from "../triggers/filters";
import { defaultTriggers } from "../triggers/registry";
import type { ItemPath } from "./accept";
import { apiKeyOf } from "./api-key-auth";
import { sourceTable } from "./sources";
// The deployment's triggers, registered: their declared types are the reserved ones.
import "../handlers";

const matchers = new WeakMap<
  ApiKey,
  { sources?: Array<(s: string) => boolean>; types?: Array<(s: string) => boolean> }
>();

function compiled(k: ApiKey) {
  let m = matchers.get(k);
  if (!m) {
    m = {
      ...(k.sources ? { sources: k.sources.map(globMatcher) } : {}),
      ...(k.types ? { types: k.types.map(globMatcher) } : {}),
    };
    matchers.set(k, m);
  }
  return m;
}

/** Why `value` is not the key's to use, or undefined when it is. */
function refusal(
  what: "source" | "type",
  value: string,
  granted: string[] | undefined,
  match: Array<(s: string) => boolean> | undefined,
  reserved: string | undefined,
): string | undefined {
  if (reserved !== undefined) {
    if (granted?.includes(value)) return undefined;
    return `${what} "${value}" is ${reserved}; only a key whose grant names it may use it`;
  }
  if (!match || match.some((m) => m(value))) return undefined;
  return `${what} "${value}" is not granted to this API key (${what === "source" ? "sources" : "types"}: ${granted!.join(", ")})`;
}

/**
 * The configured webhook source names, valid or not: an invalid source's name is still its own.
 * WEBHOOK_SOURCES that cannot be read at all names none, so only a key whose grant lists its
 * sources by exact name (which such a key may use anyway) can be answered; any other key gets
 * a 503 naming the setting rather than a guess.
 */
function reservedSources(cfg: Config, key: ApiKey): Set<string> {
  const t = sourceTable(cfg);
  if (t.whole.length && !key.sources?.every((s) => !s.includes("*")))
    throw new HTTPProblem(
      503,
      "Webhook sources misconfigured",
      "The webhook sources cannot be read, so which source names are reserved is unknown; nothing was published.",
      { errors: t.whole.map((message) => ({ param: "WEBHOOK_SOURCES", message })) },
    );
  return new Set([...t.valid.keys(), ...t.invalid.keys()]);
}

/** Throws a 403 naming every item's source or type that the key `keyId` may not use. */
export async function authorizeEvents(
  cfg: Config,
  keyId: string,
  events: EventEnvelope[],
  at: ItemPath,
): Promise<void> {
  const key = await apiKeyOf(cfg, keyId);
  if (!key) throw new Error("authorizeEvents: a key id from requireApiKey was expected");
  const m = compiled(key);
  const webhooks = reservedSources(cfg, key);
  const outputs = defaultTriggers.publishedTypes();
  const errors: ProblemError[] = [];
  events.forEach((e, i) => {
    const source = refusal(
      "source",
      e.source,
      key.sources,
      m.sources,
      webhooks.has(e.source) ? "a webhook source (WEBHOOK_SOURCES)" : undefined,
    );
    if (source) errors.push({ path: `${at(i)}/source`, message: source });
    const type = refusal(
      "type",
      e.type,
      key.types,
      m.types,
      outputs.has(e.type) ? "published by a trigger only (publishes)" : undefined,
    );
    if (type) errors.push({ path: `${at(i)}/type`, message: type });
  });
  if (errors.length)
    throw new HTTPProblem(
      403,
      "Forbidden",
      `${errors.length === 1 ? "A field is" : `${errors.length} fields are`} outside the API key's grant; nothing was published.`,
      { errors },
    );
}
