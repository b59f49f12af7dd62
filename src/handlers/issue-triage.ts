/**
 * Example agent: a GitHub `issues.opened` delivery (webhook source "github", the scheme
 * `github` in WEBHOOK_SOURCES) is classified by a model, which publishes `issue.triaged`
 * with labels and a one-line summary through its one tool. Model: AGENT_MODEL; without one
 * the example is off (it matches nothing) and says so in /health/detailed and the log.
 *
 * Every model call and tool call is a durable step: a retry does not call the model again
 * for the turns an earlier attempt completed.
 */
import { tool } from "ai";
import { z } from "zod";
import type { Ingress } from "../events/envelope";
import { agent, agentContext, type Filter, type TriggerSpec } from "../triggers";
import type { AgentModel } from "../triggers/models";

type Delivery = { headers?: Record<string, string>; body?: { action?: string; issue?: { number?: number } } };

/**
 * A GitHub `issues` delivery with action `opened`, verified by the GitHub signature scheme
 * (meta.ingress, set by the server at ingest): a header alone proves nothing.
 */
export const issueOpened: Filter = {
  describe: "github(issues.opened)",
  test: (e) => {
    const d = e as unknown as Delivery;
    const ingress = e.meta?.ingress as Ingress | undefined;
    return (
      e.type === "webhook.received" &&
      ingress?.kind === "webhook" &&
      ingress.scheme === "github" &&
      d.headers?.["x-github-event"] === "issues" &&
      d.body?.action === "opened" &&
      typeof d.body.issue?.number === "number"
    );
  },
};

/** The one tool: typed with zod, it publishes the classification as `issue.triaged`. */
export const triageTool = tool({
  description: "Record the triage of the issue: its labels and a one-line summary.",
  inputSchema: z.object({
    labels: z
      .array(z.enum(["bug", "feature", "question", "documentation", "security", "duplicate"]))
      .min(1)
      .max(3),
    summary: z.string().min(1).max(200).describe("one line"),
  }),
  execute: async ({ labels, summary }, options) => {
    const ctx = agentContext(options);
    const body = (ctx.event as unknown as { body: { repository?: { full_name?: string }; issue: { number: number } } })
      .body;
    const e = await ctx.publish({
      type: "issue.triaged",
      repository: body.repository?.full_name ?? ctx.event.source,
      issue_number: body.issue.number,
      labels,
      summary: summary.split("\n")[0]!.slice(0, 200),
    });
    return { published: e.id };
  },
});

/** The trigger; `model` replaces AGENT_MODEL (tests pass the AI SDK's mock model). */
export function issueTriage(o: { name?: string; model?: AgentModel } = {}): TriggerSpec {
  const spec = agent({
    name: o.name ?? "issue-triage",
    filter: issueOpened,
    ...(o.model ? { model: o.model } : {}),
    instructions:
      "You triage GitHub issues. Read the issue in the event (body.issue.title and body.issue.body), " +
      "choose one to three labels and write a one-line summary, then call the tool `triage` once. " +
      "Answer with one short sentence after the tool returns.",
    tools: { triage: triageTool },
    // Only this agent makes issue.triaged: API keys cannot post one.
    publishes: ["issue.triaged"],
    maxSteps: 3,
    budget: { tokens: 20_000, timeMs: 30_000 },
    // One issue at a time per repository.
    scope: "body.repository.full_name",
  });
  return {
    ...spec,
    // An example must not fill the DLQ of a deployment that never configured a model.
    unavailable: (cfg) => (o.model || cfg.AGENT_MODEL ? null : "off: AGENT_MODEL is not set (example agent)"),
  };
}
