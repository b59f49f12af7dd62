/** What declarative triggers (src/destinations) may add to the dispatch of a batch. */
import type { ClaimedEvent } from "../backends/types";
import type { DeferAttempt } from "../errors";
import type { Match } from "./registry";

/**
 * Per-batch hooks of declarative triggers (src/destinations): `admit` runs before an event's
 * handlers, inside its scope, and may defer the whole event untried (an open circuit
 * breaker); `flush` runs once every handler of the batch is done (delivery attempts are
 * recorded in one insert) and must not throw.
 */
export interface DispatchHooks {
  admit(c: ClaimedEvent, matches: Match[]): Promise<DeferAttempt | null>;
  flush(): Promise<void>;
}
