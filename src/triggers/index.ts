/** Everything a trigger author needs, from one import. */
export { defaultTriggers, TriggerRegistry } from "./registry";
export type { DerivedEventInput, Handler, HandlerContext, TriggerSpec } from "./registry";
export { filters } from "./filters";
export type { Filter, FilterContext, FilterState } from "./filters";
