/**
 * The claims a consumer run holds and keeps: from the claim until the settle, every claimed
 * event is leased (VISIBILITY_TIMEOUT_MS: a Postgres-side lease, a stream entry's idle time),
 * after which another consumer may take it over. A batch can take longer than that (slow
 * handlers, a destination timing out, the next claim waiting behind the current batch), so
 * the run renews every lease it holds each third of the timeout, in one store call.
 *
 * held() tells whether an event's handlers may still start: not when a renewal found it
 * taken over, and not when its lease may have run out (renewals failing: the last lease
 * known, less a quarter of it for the handler to record its outcome). Such an event is left
 * to its new holder, never run a second time here.
 */
import type { ClaimedEvent, EventStore, Receipt } from "../backends/types";
import type { Clock } from "../clock";
import type { Logger } from "../obs/log";

interface Lease {
  receipt: Receipt;
  /** Date.now() before which the claim is surely still this consumer's. */
  until: number;
}

export class Leases {
  private readonly leases = new Map<string, Lease>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private renewing: Promise<void> | undefined;

  constructor(
    private readonly o: { store: EventStore; consumer: string; leaseMs: number; clock: Clock; log: Logger },
  ) {}

  /** The events of a claim asked for at `askedAt` (Date.now()): leased from then at the latest. */
  hold(events: ClaimedEvent[], askedAt: number): void {
    for (const c of events) this.leases.set(c.event.id, { receipt: c.receipt, until: askedAt + this.o.leaseMs });
    if (!this.timer && this.leases.size)
      this.timer = setInterval(() => void this.renew(), Math.max(250, Math.floor(this.o.leaseMs / 3)));
  }

  /**
   * Whether `eventId`'s handlers may start: still this consumer's, with time left to record an
   * outcome. A lease near its end is renewed first (one round trip, shared by the batch).
   */
  async held(eventId: string): Promise<boolean> {
    if (this.fresh(eventId)) return true;
    // Twice at most: a renewal already under way may have started before this event was held.
    for (let i = 0; i < 2 && this.leases.has(eventId) && !this.fresh(eventId); i++) await this.renew();
    return this.fresh(eventId);
  }

  private fresh(eventId: string): boolean {
    const l = this.leases.get(eventId);
    return l !== undefined && Date.now() + this.o.leaseMs / 4 < l.until;
  }

  /** Settled (or given up): no longer renewed. */
  release(eventIds: Iterable<string>): void {
    for (const id of eventIds) {
      this.leases.delete(id);
    }
    if (this.leases.size === 0) this.stopTimer();
  }

  /** Ends the renewals (the run is over); waits for one under way. */
  async stop(): Promise<void> {
    this.stopTimer();
    await this.renewing;
  }

  /** One renewal of every lease held; one at a time. */
  renew(): Promise<void> {
    if (this.renewing || this.leases.size === 0) return this.renewing ?? Promise.resolve();
    const started = Date.now();
    const asked = [...this.leases.values()];
    this.renewing = this.o.store
      .renew({
        consumer: this.o.consumer,
        receipts: asked.map((l) => l.receipt),
        leaseMs: this.o.leaseMs,
        now: new Date(this.o.clock.now()),
      })
      .then((kept) => {
        for (const l of asked) {
          const id = l.receipt.eventId;
          // Released meanwhile (settled): nothing to update.
          if (this.leases.get(id) !== l) continue;
          if (kept.has(id)) l.until = started + this.o.leaseMs;
          else this.leases.delete(id);
        }
      })
      .catch((e) => this.o.log.warn("could not renew the claims' leases", { error: String((e as Error).cause ?? e) }))
      .finally(() => {
        this.renewing = undefined;
      });
    return this.renewing;
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
