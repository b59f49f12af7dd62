/**
 * Outages on the run's private stand-in pair (test/support/faults.ts): the Upstash gateway
 * answering 503 or holding requests open ("hang"), and the Neon proxy down (connections cut,
 * new ones refused). Both ingest and the consumers talk to Redis and Postgres only through
 * that pair, so these are real outages for the code under test.
 *
 * An episode holds its fault at least `minMs`, and then until it has visibly hit something
 * (an ingest 503, a client timeout, a consumer run failed or held), at most `maxMs`. What it
 * hit is recorded: the report shows counts, and the test asserts each kind hit > 0.
 */
import type { StandInPair } from "../support/faults";
import type { Ledger } from "./client";
import type { Fleet } from "./fleet";

export type FaultKind = "gateway 503" | "gateway hang" | "postgres down";
export type Phase = "ingest" | "drain";

export interface Episode {
  kind: FaultKind;
  phase: Phase;
  ms: number;
  /** Ingest answers 503 while it lasted. */
  ingest503: number;
  /** Client timeouts (requests held past the client's patience) while it lasted. */
  clientTimeouts: number;
  /** 202s answered while it lasted (Postgres down: ingest does not need Postgres). */
  accepted: number;
  /** Consumer runs that failed because of it. */
  runsFailed: number;
  /** Consumer runs held in flight when a hang was lifted. */
  runsHeld: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** A run that fails just after the fault is lifted was still failing from it (clients back off). */
const GRACE_MS = 1_000;

export class Faults {
  readonly episodes: Episode[] = [];
  constructor(
    private readonly pair: StandInPair,
    private readonly fleet: Fleet,
    private readonly ledger: Ledger,
    /** Ingest writes to Postgres (EVENT_BACKEND=postgres): an outage there shows as ingest 503s. */
    private readonly ingestUsesPostgres = false,
  ) {}

  async episode(kind: FaultKind, phase: Phase, o: { minMs: number; maxMs: number }): Promise<Episode> {
    const L = this.ledger;
    const before = {
      e503: L.answers.get(503) ?? 0,
      timeouts: L.timeouts,
      accepted: (L.answers.get(202) ?? 0) + (L.answers.get(200) ?? 0),
    };
    const started = Date.now();
    const failedSince = () => this.fleet.runs.filter((r) => r.error && r.ended! >= started).length;
    await this.set(kind, true);
    let held = 0;
    try {
      for (;;) {
        await sleep(100);
        const elapsed = Date.now() - started;
        if (elapsed < o.minMs) continue;
        if (elapsed >= o.maxMs) break;
        // Hit something on each side that was running into it?
        const ingestHit =
          phase === "drain" ||
          (kind === "gateway 503"
            ? (L.answers.get(503) ?? 0) > before.e503
            : kind === "gateway hang"
              ? L.timeouts > before.timeouts
              : !this.ingestUsesPostgres || (L.answers.get(503) ?? 0) > before.e503);
        const drainHit = kind === "gateway hang" ? this.fleet.inFlight() > 0 : failedSince() > 0;
        if (ingestHit && drainHit) break;
      }
    } finally {
      if (kind === "gateway hang") held = this.fleet.inFlight();
      await this.set(kind, false);
    }
    const ms = Date.now() - started;
    await sleep(GRACE_MS);
    const ep: Episode = {
      kind,
      phase,
      ms,
      ingest503: (L.answers.get(503) ?? 0) - before.e503,
      clientTimeouts: L.timeouts - before.timeouts,
      accepted: (L.answers.get(202) ?? 0) + (L.answers.get(200) ?? 0) - before.accepted,
      runsFailed: this.fleet.runs.filter((r) => r.error && r.ended! >= started && r.ended! <= started + ms + GRACE_MS)
        .length,
      runsHeld: held,
    };
    this.episodes.push(ep);
    return ep;
  }

  private async set(kind: FaultKind, on: boolean): Promise<void> {
    if (kind === "postgres down") await this.pair.postgres(!on);
    else await this.pair.gateway(on ? (kind === "gateway 503" ? 503 : "hang") : null);
  }
}
