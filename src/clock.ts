/**
 * The consumer's notion of "now" for everything that is stored or compared with stored
 * times: retry due times, Postgres claim leases, rate-limit windows. Tests inject a clock
 * they move by hand, so backoff is checked without sleeping. (The run's time budget uses
 * real elapsed time: it guards the platform's limits, which a test clock does not move.)
 */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that only moves when told to. */
export class ManualClock implements Clock {
  constructor(private t: number = Date.now()) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
  set(t: number): void {
    this.t = t;
  }
}
