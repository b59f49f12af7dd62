/**
 * The adaptive claim size (src/consume/claim-size.ts) as plain logic: no service involved,
 * time passed in.
 */
import { describe, expect, it } from "vitest";
import { ClaimSize } from "../../src/consume/claim-size";

const cfg = (o: Partial<ConstructorParameters<typeof ClaimSize>[0]> = {}) => ({
  CONSUMER_BATCH_SIZE: 1000,
  CONSUMER_BATCH_ADAPTIVE: true,
  CONSUMER_BATCH_MIN: 50,
  CONSUMER_BATCH_TARGET_MS: 1000,
  CONSUMER_TIME_BUDGET_MS: 20_000,
  ...o,
});

describe("adaptive claim size", () => {
  it("off: always CONSUMER_BATCH_SIZE, whatever batches take", () => {
    const s = new ClaimSize(cfg({ CONSUMER_BATCH_ADAPTIVE: false }), 0);
    s.observe(1000, 50_000);
    expect(s.next(19_999)).toBe(1000);
  });

  it("starts at the most and stays there while batches are quick", () => {
    const s = new ClaimSize(cfg(), 0);
    expect(s.next(0)).toBe(1000);
    for (let i = 0; i < 20; i++) s.observe(1000, 200);
    expect(s.next(1000)).toBe(1000);
  });

  it("a slow batch halves the size, down to the floor; quick ones add a tenth of the range back", () => {
    const s = new ClaimSize(cfg({ CONSUMER_TIME_BUDGET_MS: 1e9 }), 0);
    s.observe(1000, 4000);
    expect(s.next(0)).toBe(500);
    for (let i = 0; i < 10; i++) s.observe(100, 4000);
    expect(s.next(0)).toBe(50);
    s.observe(50, 10);
    expect(s.next(0)).toBe(145);
    for (let i = 0; i < 20; i++) s.observe(50, 10);
    expect(s.next(0)).toBe(1000);
  });

  it("starts at an eighth of the backlog the lanes reported, doubling while batches are quick", () => {
    const s = new ClaimSize(cfg(), 0);
    s.backlog(1200);
    s.backlog(800);
    expect(s.next(0)).toBe(250);
    s.observe(250, 100);
    expect(s.next(0)).toBe(500);
    s.observe(500, 100);
    expect(s.next(0)).toBe(1000);
    s.observe(1000, 100);
    expect(s.next(0)).toBe(1000);
    s.backlog(100_000); // ignored once a batch was handled
    s.observe(1000, 4000);
    expect(s.next(0)).toBe(500);
    s.observe(500, 100); // after a slow batch: additive again
    expect(s.next(0)).toBe(595);
  });

  it("a backlog of eight full batches or more, or one a lane cannot tell: the most from the first claim", () => {
    const big = new ClaimSize(cfg(), 0);
    big.backlog(8000);
    expect(big.next(0)).toBe(1000);
    const unknown = new ClaimSize(cfg(), 0);
    unknown.backlog(10);
    unknown.backlog(undefined);
    unknown.backlog(10);
    expect(unknown.next(0)).toBe(1000);
    const empty = new ClaimSize(cfg(), 0);
    empty.backlog(0);
    expect(empty.next(0)).toBe(50);
    const off = new ClaimSize(cfg({ CONSUMER_BATCH_ADAPTIVE: false }), 0);
    off.backlog(10);
    expect(off.next(0)).toBe(1000);
  });

  it("never claims more than the time left can handle at the measured rate, nor less than the floor", () => {
    const s = new ClaimSize(cfg(), 0);
    s.observe(1000, 500); // 0.5 ms per event
    expect(s.next(19_800)).toBe(400); // 200 ms left
    expect(s.next(19_990)).toBe(50);
    expect(s.next(25_000)).toBe(50);
  });
});
