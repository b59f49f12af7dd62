/** Everything a trigger author needs, from one import. */

export type { Filter, FilterContext, FilterState } from "./filters";
export { filters } from "./filters";
export type { DerivedEventInput, Handler, HandlerContext, TriggerSpec } from "./registry";
export { defaultTriggers, TriggerRegistry } from "./registry";
