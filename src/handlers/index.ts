/**
 * YOUR TRIGGERS GO HERE. The worker's consumer runs every trigger registered in
 * `defaultTriggers`; this module is imported once by the consumer entry (src/consume/entry.ts).
 *
 *   import { defaultTriggers, filters as f } from "../triggers";
 *
 *   defaultTriggers.register({
 *     name: "notify-on-push",                       // unique
 *     filter: f.and(f.type("github.push"), f.rateLimit({ max: 100, windowMs: 60_000 })),
 *     priority: 10,                                 // higher runs first (default 0)
 *     scope: (e) => String(e.repository ?? e.source), // one at a time per scope (default: source)
 *     handler: async (ctx) => {
 *       ctx.log.info("push", { id: ctx.event.id });
 *       await ctx.publish({ type: "notification.requested", channel: "ops" });
 *     },
 *   });
 *
 * A handler that throws fails the attempt: the event is retried with backoff and ends in the
 * DLQ after EVENT_MAX_ATTEMPTS. Handlers may run more than once per event (at-least-once
 * delivery): make their effects idempotent, e.g. keyed by ctx.event.id.
 */
import { defaultTriggers, filters as f } from "../triggers";
import { issueTriage } from "./issue-triage";

// Example: lifecycle errors reported by clients become a warning in the logs.
defaultTriggers.register({
  name: "log-lifecycle-errors",
  filter: f.and(f.type("lifecycle"), f.keyword('"action":"error"')),
  handler: (ctx) => ctx.log.warn("lifecycle error reported", { source: ctx.event.source, details: ctx.event.details }),
});

// Example agent: GitHub issues.opened -> issue.triaged (labels, summary), with AGENT_MODEL.
defaultTriggers.register(issueTriage());
