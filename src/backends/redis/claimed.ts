/**
 * What a claim handed out and its settle needs back: history gets the row only at the
 * outcome, so settle must know the event and its attempt number from the claim. Kept per
 * receipt (the consumer passes the claim's receipts back in its outcomes), and, per
 * consumer, the ids it holds unsettled, so that an event repeated in the stream (a
 * republish) is not handed out to the consumer that already holds it.
 */
import type { EventEnvelope } from "../../events/envelope";
import type { ClaimedEvent, Receipt } from "../types";

export interface Delivery {
  event: EventEnvelope;
  attempts: number;
}

export class Deliveries {
  private readonly byReceipt = new WeakMap<Receipt, Delivery>();
  private readonly held = new Map<string, Set<string>>();

  /** Records what `consumer` was handed out. */
  handedOut(consumer: string, events: ClaimedEvent[]): void {
    if (events.length === 0) return;
    let ids = this.held.get(consumer);
    if (!ids) this.held.set(consumer, (ids = new Set()));
    for (const c of events) {
      this.byReceipt.set(c.receipt, { event: c.event, attempts: c.attempts });
      ids.add(c.event.id);
    }
  }

  /** True when `consumer` holds `eventId` unsettled. */
  holds(consumer: string, eventId: string): boolean {
    return this.held.get(consumer)?.has(eventId) ?? false;
  }

  of(receipt: Receipt): Delivery | undefined {
    return this.byReceipt.get(receipt);
  }

  /** The outcomes of these receipts are being settled: `consumer` no longer holds them. */
  settled(consumer: string, receipts: Receipt[]): void {
    const ids = this.held.get(consumer);
    if (!ids) return;
    for (const r of receipts) ids.delete(r.eventId);
    if (ids.size === 0) this.held.delete(consumer);
  }
}
