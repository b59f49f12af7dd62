/** Everything a trigger author needs, from one import. */

export type { AgentBudget, AgentSpec, AgentToolContext } from "./agent";
export { AgentBudgetError, AgentRefusal, agent, agentContext } from "./agent";
export { agentTools } from "./agent-tools";
export type { Filter, FilterContext, FilterState } from "./filters";
export { filters } from "./filters";
export type { DerivedEventInput, Handler, HandlerContext, HistoryQuery, TriggerSpec } from "./registry";
export { defaultTriggers, TriggerRegistry } from "./registry";
export type { StepOptions, StepUsage } from "./steps";
