/**
 * A destination's circuit breaker as one consumer batch sees it.
 *
 * The shared state is a Postgres row (./delivery-records.ts), read when the batch first needs
 * it and folded back once at the end (flushDeliveries). In between this object keeps the
 * batch's own view, so that a breaker that trips mid-batch stops the rest of the batch at
 * once - not one request per event until the next read - and tallies what the flush needs.
 *
 *   closed --N consecutive failures--> open --cool-down over--> half-open (one probe)
 *   half-open --probe ok--> closed;  half-open --probe failed--> open, cool-down doubled
 *
 * Only one invocation probes (claimProbe); in this batch, events behind the probe wait for
 * its answer instead of being deferred, so a recovered endpoint drains in the same run.
 */
import type { BreakerPolicy, BreakerRow, BreakerState, BreakerTally } from "./delivery-records";

export type Admission = { ok: true; probe: boolean } | { ok: false; until: Date; why: string };

export class BatchBreaker {
  private state: BreakerState;
  private failures: number;
  private nextProbeAt: Date | null;
  private cooldownMs: number;
  private successes = 0;
  private trailing = 0;
  private probeResult: "ok" | "failed" | null = null;
  private probeEventId: string | null = null;
  private probeDone: Promise<void> | null = null;
  private resolveProbe: (() => void) | null = null;
  private claiming: Promise<void> | null = null;
  touched = false;

  constructor(
    row: BreakerRow,
    private readonly policy: BreakerPolicy,
    /** Asks Postgres to make us the prober; resolves with the won flag and the row as stored. */
    private readonly claim: () => Promise<{ won: boolean; row: BreakerRow | undefined }>,
  ) {
    this.state = row.state;
    this.failures = row.failures;
    this.nextProbeAt = row.nextProbeAt;
    this.cooldownMs = row.cooldownMs;
  }

  /** A deferral that needs no probe claim (open, cool-down not over), else null. */
  peek(now: number): Admission | null {
    if (this.state === "closed" || this.probeDone) return null;
    const due = this.nextProbeAt ? this.nextProbeAt.getTime() : 0;
    return now < due ? { ok: false, until: new Date(due), why: this.why() } : null;
  }

  private why(): string {
    return this.state === "open" ? "circuit open" : "circuit half-open, probe in progress elsewhere";
  }

  /** May `eventId` be delivered now? Await it inside the event's scope, just before delivering. */
  async admit(eventId: string, now: number): Promise<Admission> {
    for (let round = 0; ; round++) {
      if (this.state === "closed") return { ok: true, probe: false };
      // Guard against a claim that keeps losing to a breaker that looks due: try later.
      if (round > 3) return { ok: false, until: new Date(now + 1000), why: this.why() };
      if (this.probeDone) {
        // Our own probe is in flight: its answer decides for the events behind it.
        await this.probeDone;
        continue;
      }
      const due = this.nextProbeAt ? this.nextProbeAt.getTime() : 0;
      if (now < due) return { ok: false, until: new Date(due), why: this.why() };
      if (!this.claiming) this.claiming = this.tryClaim(eventId).finally(() => (this.claiming = null));
      await this.claiming;
      if (this.probeEventId === eventId) return { ok: true, probe: true };
    }
  }

  private async tryClaim(eventId: string): Promise<void> {
    const { won, row } = await this.claim();
    if (won) {
      this.state = "half-open";
      this.probeEventId = eventId;
      this.probeDone = new Promise((r) => (this.resolveProbe = r));
    } else if (row) {
      // Someone else probes (or the breaker moved on): adopt the stored view.
      this.state = row.state;
      this.failures = row.failures;
      this.nextProbeAt = row.nextProbeAt;
      this.cooldownMs = row.cooldownMs;
    } else {
      this.state = "closed";
    }
  }

  /**
   * The probe's event is deferred for another reason (another destination of it is open):
   * it will not be sent. The stored claim runs out at its lease; until then, half-open.
   */
  abandon(eventId: string, leaseUntil: Date): void {
    if (!this.isProbe(eventId)) return;
    this.probeEventId = null;
    this.nextProbeAt = leaseUntil;
    this.resolveProbe?.();
    this.probeDone = null;
  }

  isProbe(eventId: string): boolean {
    return this.probeEventId === eventId && this.probeResult === null;
  }

  /** Records one delivery's result; returns the breaker's next probe time when this leaves it open. */
  record(eventId: string, ok: boolean, now: number): Date | null {
    this.touched = true;
    if (ok) {
      this.successes++;
      this.trailing = 0;
    } else {
      this.trailing++;
    }
    if (this.isProbe(eventId)) {
      this.probeResult = ok ? "ok" : "failed";
      if (ok) {
        this.state = "closed";
        this.failures = 0;
        this.cooldownMs = 0;
        this.nextProbeAt = null;
      } else {
        this.state = "open";
        this.failures++;
        this.cooldownMs = Math.min(Math.max(this.cooldownMs, this.policy.cooldownMs) * 2, this.policy.maxCooldownMs);
        this.nextProbeAt = new Date(now + this.cooldownMs);
      }
      this.resolveProbe?.();
      this.probeDone = null;
    } else if (ok) {
      if (this.state === "closed") this.failures = 0;
    } else {
      this.failures++;
      if (this.state === "closed" && this.failures >= this.policy.threshold) {
        this.state = "open";
        this.cooldownMs = this.policy.cooldownMs;
        this.nextProbeAt = new Date(now + this.cooldownMs);
      }
    }
    return this.state === "open" ? this.nextProbeAt : null;
  }

  tally(destination: string): BreakerTally {
    return { destination, successes: this.successes, trailingFailures: this.trailing, probe: this.probeResult };
  }
}
