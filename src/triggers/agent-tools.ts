/**
 * The tools an agent (./agent.ts) may be given, beside its own zod-typed ones:
 *
 *  - publish: a derived event (ctx.publish: correlation and causation ids, published when the
 *    attempt succeeds). Fields are checked against the type's schema when the type is
 *    registered (src/events/event-types.ts); a mismatch goes back to the model to fix.
 *  - deliver: an event POSTed now to a destination of DESTINATIONS through the destination's
 *    own path (ctx.deliver: its filter, breaker, fence header and attempt records). Its id is
 *    a keyed HMAC of the parent and the tool call (../events/ids.ts), so a retried delivery
 *    carries the same webhook-id and nobody else can compute it. A failed delivery fails the
 *    attempt (retried with backoff); one the destination's filter refuses goes back to the model.
 *  - history: this scope's earlier events (the agent's ctx.history: its scope value only),
 *    each cut to HISTORY_TOOL_EVENT_CHARS of JSON.
 *
 * Each runs as a durable step of the agent: on a later attempt its result is read back.
 */
import { tool } from "ai";
import { z } from "zod";
import { ENVELOPE_KEYS, type EventEnvelope } from "../events/envelope";
import { registry } from "../events/event-types";
import { derivedIdKey, keyedUuid } from "../events/ids";
import { AgentRefusal, agentContext, eventJson, HISTORY_TOOL_EVENT_CHARS } from "./agent";

const TYPE = z
  .string()
  .regex(/^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$/, "a lower-case dotted event type, e.g. ticket.triaged");
const FIELDS = z.record(z.string(), z.unknown()).default({}).describe("the event's own fields");

/** The fields the model gave, without envelope keys (those are the system's to set). */
function ownFields(fields: Record<string, unknown>): Record<string, unknown> {
  const out = { ...fields };
  for (const k of ENVELOPE_KEYS) delete out[k];
  return out;
}

/** A problem with `fields` for a registered `type`, as the model should read it; null when fine or unregistered. */
function schemaProblem(type: string, fields: Record<string, unknown>): string | null {
  if (!registry.has(type)) return null;
  const r = registry.get(type).safeParse(fields);
  return r.success ? null : r.error.issues.map((i) => `${i.path.join(".") || "(fields)"}: ${i.message}`).join("; ");
}

function publish(o: { types?: [string, ...string[]]; description?: string } = {}) {
  return tool({
    description:
      o.description ??
      "Publish a new event derived from the one being handled. It is published once the handling succeeds.",
    inputSchema: z.object({ type: o.types ? z.enum(o.types) : TYPE, fields: FIELDS }),
    execute: async ({ type, fields }, options) => {
      const ctx = agentContext(options);
      const own = ownFields(fields);
      const problem = schemaProblem(type, own);
      if (problem) return { error: `not published, the fields do not fit ${type}: ${problem}` };
      try {
        const e = await ctx.publish({ type, ...own });
        return { published: e.id, type };
      } catch (e) {
        if (e instanceof AgentRefusal) return { error: e.message };
        throw e;
      }
    },
  });
}

function deliverTo(o: { destinations: [string, ...string[]]; type?: string; description?: string }) {
  return tool({
    description: o.description ?? `Send a message to one of these destinations now: ${o.destinations.join(", ")}.`,
    inputSchema: z.object({ destination: z.enum(o.destinations), fields: FIELDS }),
    execute: async ({ destination, fields }, options) => {
      const ctx = agentContext(options);
      const parent = ctx.event;
      const e: EventEnvelope = {
        ...ownFields(fields),
        id: await keyedUuid(derivedIdKey(ctx.config), parent.id, ctx.trigger, "deliver", options.toolCallId),
        type: o.type ?? "agent.message",
        source: parent.source,
        timestamp: new Date().toISOString(),
        meta: {
          trace_id: parent.meta.trace_id,
          correlation_id: parent.meta.correlation_id ?? parent.id,
          causation_id: parent.id,
        },
      };
      const r = await ctx.deliver(destination, e);
      if (r.ok) return { delivered: e.id, destination, status: r.statusCode };
      if ("refused" in r) return { error: `not delivered: ${r.refused}` };
      throw new Error(`deliver to ${destination}: ${r.error}`);
    },
  });
}

function history(o: { limit?: number; description?: string } = {}) {
  const max = Math.min(Math.max(1, o.limit ?? 20), 100);
  return tool({
    description: o.description ?? "Search the earlier events of this scope, newest first.",
    inputSchema: z.object({
      type: z.string().max(128).optional().describe("event type, * as a wildcard"),
      contains: z.string().max(200).optional().describe("text the event contains"),
      limit: z.number().int().min(1).max(max).default(Math.min(10, max)),
    }),
    execute: async ({ type, contains, limit }, options) => {
      const ctx = agentContext(options);
      const found = await ctx.history({
        limit,
        ...(ctx.agent.scopeField ? { field: ctx.agent.scopeField } : {}),
        ...(type ? { type } : {}),
        ...(contains ? { contains } : {}),
      });
      return { events: found.map((x) => eventJson(x, HISTORY_TOOL_EVENT_CHARS)) };
    },
  });
}

/** The built-in tools: `tools: { publish: agentTools.publish({ types: ["x.y"] }) }`. */
export const agentTools = { publish, deliver: deliverTo, history };
