/**
 * Medians and a bootstrap 95% interval of a ratio of medians, for bench/protocol.ts.
 *
 * The bootstrap is paired by round: each resample draws round indices with replacement and
 * takes both systems' figures from the same rounds, so that what a round shared (the
 * machine's load at that time) stays paired. Percentile interval, a seeded generator, so
 * that the same figures always give the same interval. Written here (a dozen lines) rather
 * than taken from a package: none of the small bootstrap packages on npm is maintained.
 */
import { prng } from "../test/support/prng";

export function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface RatioInterval {
  ratio: number;
  low: number;
  high: number;
}

/** median(a) / median(b) and its paired percentile bootstrap interval (a[i] and b[i]: round i). */
export function bootstrapRatio(a: number[], b: number[], level = 0.95, resamples = 10_000, seed = 1): RatioInterval {
  if (a.length !== b.length) throw new Error("bootstrapRatio: paired samples of different lengths");
  const n = a.length;
  const next = prng(seed);
  const ratios: number[] = [];
  for (let r = 0; r < resamples; r++) {
    const ia: number[] = [];
    const ib: number[] = [];
    for (let k = 0; k < n; k++) {
      const i = Math.floor(next() * n);
      ia.push(a[i]!);
      ib.push(b[i]!);
    }
    ratios.push(median(ia) / median(ib));
  }
  ratios.sort((x, y) => x - y);
  const at = (q: number) => ratios[Math.min(resamples - 1, Math.max(0, Math.floor(q * resamples)))]!;
  return { ratio: median(a) / median(b), low: at((1 - level) / 2), high: at(1 - (1 - level) / 2) };
}

/** Fewer rounds than this and no lead is claimed: a bootstrap of so few medians is no interval. */
export const MIN_ROUNDS_FOR_CLAIM = 5;

/** "ours leads", "baseline leads" or no claim, from where the interval lies against 1.0. */
export function verdict(x: RatioInterval, rounds: number): string {
  if (rounds < MIN_ROUNDS_FOR_CLAIM) return `no lead claimed (fewer than ${MIN_ROUNDS_FOR_CLAIM} rounds)`;
  if (x.low > 1) return "ours faster (interval above 1.0)";
  if (x.high < 1) return "baseline faster (interval below 1.0)";
  return "no lead claimed (interval includes 1.0)";
}
