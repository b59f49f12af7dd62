/**
 * Ordered scopes: the events an `ordered: true` trigger matches are handled strictly in
 * arrival order per scope, across batches, invocations, retries and crashes.
 *
 *  - An ordered event claimed from a lane is registered (./ordered-sql.ts) and deferred,
 *    not handled: it runs later as a due event, once it is its scope's head (every earlier
 *    event of the scope done) and every earlier arrival of its lane has been through a first
 *    settle (so none is still unregistered: Redis answers that with the stream's oldest
 *    pending entry, Postgres with its oldest unsettled row).
 *  - A head that fails parks its scope: it retries with backoff; the events behind it sleep
 *    (deferred, no attempt used) until the head is done, then the next one is woken. A head
 *    in the DLQ is done with on_dead "skip"; with "hold" the scope stays parked until an
 *    operator retries or discards it (src/operations).
 *  - A waiting head looks again after ORDERED_RECHECK_MS; an event behind it sleeps at most
 *    ORDERED_SLEEP_MS (the bound on a wake-up lost to a crash).
 * Events of other scopes, and unordered triggers, are not touched. Replay copies run unordered.
 */
import type { SettleStatus } from "../backends/history-writes";
import type { ClaimedEvent, EventStore, Outcome } from "../backends/types";
import type { Clock } from "../clock";
import type { Config } from "../config";
import type { Db } from "../db/client";
import type { Match, TriggerRegistry } from "../triggers/registry";
import { afterSettle, entryArrival, type GateRow, gateOrdered, type OrderedItem } from "./ordered-sql";
import { deferred } from "./outcomes";

export interface OrderedWork {
  i: number;
  matches: Match[];
}

export interface GateResult {
  /** Outcomes of the ordered events that do not run now (deferred), by batch index. */
  held: Map<number, Outcome>;
  /** Every ordered event of the batch: afterSettle() needs them. */
  ordered: Set<string>;
}

export class OrderedScopes {
  /** Ordering for this registry, or undefined when none of its triggers is ordered (nothing to do). */
  static for(
    triggers: TriggerRegistry,
    db: Db | undefined,
    store: EventStore,
    config: Config,
    clock: Clock,
  ): OrderedScopes | undefined {
    if (!triggers.list().some((t) => t.ordered)) return undefined;
    // Never silently unordered: the order lives in Postgres.
    if (!db) throw new Error("ordered triggers need Postgres: the consumer was started without a database (db)");
    return new OrderedScopes(db, store, config, clock);
  }

  private constructor(
    private readonly db: Db,
    private readonly store: EventStore,
    private readonly config: Config,
    private readonly clock: Clock,
  ) {}

  /** Decides which matched events of an ordered trigger may run now; the rest are deferred. */
  async gate(batch: ClaimedEvent[], work: OrderedWork[]): Promise<GateResult> {
    const items: OrderedItem[] = [];
    const byEvent = new Map<string, number>();
    for (const w of work) {
      const c = batch[w.i]!;
      if (c.event.meta?.replay !== undefined) continue;
      const scopes = new Map<string, boolean>();
      for (const m of w.matches)
        if (m.trigger.ordered) scopes.set(m.scope, (scopes.get(m.scope) ?? false) || m.trigger.onDead === "hold");
      if (!scopes.size) continue;
      byEvent.set(c.event.id, w.i);
      const entry = c.receipt.entryId;
      for (const [scope, hold] of scopes)
        items.push({
          eventId: c.event.id,
          scope,
          hold,
          arrival: entry ? entryArrival(entry) : null,
          lane: entry ? c.receipt.lane : null,
        });
    }
    const held = new Map<number, Outcome>();
    if (!items.length) return { held, ordered: new Set() };

    // Before the statement: an entry acknowledged after it was read is registered, and seen there.
    const floors = this.store.pendingFloors ? await this.store.pendingFloors(this.store.lanes()) : new Map();
    const answer = await gateOrdered(this.db, items);
    const below = (r: GateRow) => {
      if (r.lane !== null && floors.has(r.lane)) {
        const f = floors.get(r.lane);
        return f === null || r.arrival < entryArrival(f);
      }
      return answer.historyFloor === null || r.arrival < answer.historyFloor;
    };
    // Fresh rows do not see each other: within the batch, the earlier of a scope goes first.
    const firstOf = new Map<string, string>();
    for (const r of answer.rows) {
      const f = firstOf.get(r.scope);
      if (f === undefined || r.arrival < f) firstOf.set(r.scope, r.arrival);
    }
    const rowsOf = new Map<string, GateRow[]>();
    for (const r of answer.rows) rowsOf.set(r.eventId, [...(rowsOf.get(r.eventId) ?? []), r]);

    const now = this.clock.now();
    for (const [id, i] of byEvent) {
      const rows = rowsOf.get(id) ?? [];
      // Every item is answered (history or not); none only if the statement lost it: run it unordered.
      if (!rows.length) continue;
      if (rows.every((r) => !r.fresh && !r.behind && below(r))) continue;
      const waitsBehind = rows.some((r) => r.behind || r.arrival !== firstOf.get(r.scope));
      const scopes = rows.map((r) => r.scope).join(", ");
      const parked = rows.some((r) => r.parkedAhead);
      held.set(
        i,
        waitsBehind
          ? deferred(
              batch[i]!,
              `ordered: behind ${parked ? "a parked" : "an earlier"} event of ${scopes}`,
              new Date(now + this.config.ORDERED_SLEEP_MS),
            )
          : deferred(
              batch[i]!,
              `ordered: waiting for earlier arrivals of ${scopes}`,
              new Date(now + this.config.ORDERED_RECHECK_MS),
            ),
      );
    }
    return { held, ordered: new Set(byEvent.keys()) };
  }

  /**
   * Once the batch's outcomes are durable: parks the scopes whose head failed, lets go of the
   * events that are done, and wakes the next head of each scope touched. Dead-lettered events
   * go through it whether or not they matched here (an event exhausted by crashes does not).
   * Returns how many events it made due now.
   */
  async afterSettle(outcomes: Outcome[], ordered: Set<string> | undefined): Promise<number> {
    const settled: Array<{ eventId: string; kind: SettleStatus }> = [];
    for (const o of outcomes)
      if (ordered?.has(o.receipt.eventId) || o.status === "dlq")
        settled.push({ eventId: o.receipt.eventId, kind: o.status });
    if (!settled.length) return 0;
    return (await afterSettle(this.db, settled, new Date(this.clock.now()))).length;
  }
}
