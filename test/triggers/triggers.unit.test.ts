/** Pure trigger logic: filters and the registry (stateful filters are covered in consume.test.ts). */
import { describe, expect, it } from "vitest";
import type { FilterContext } from "../../src/triggers";
import { filters as f, TriggerRegistry } from "../../src/triggers";
import { event } from "../support/events";

const ctx: FilterContext = {
  trigger: "t",
  now: 0,
  state: {
    rateLimit: () => Promise.reject(new Error("not used")),
    dedupe: () => Promise.reject(new Error("not used")),
  },
};
const test = (flt: ReturnType<typeof f.any>, e = event()) => flt.test(e, ctx, "f");

describe("filters", () => {
  it("type with wildcards, source regex, keyword in the event's JSON", () => {
    const e = event({ type: "github.push", source: "github:acme", text: "Deploy NOW" });
    expect(test(f.type("github.*"), e)).toBe(true);
    expect(test(f.type("github.pull", "stripe.*"), e)).toBe(false);
    expect(test(f.source(/^github:/), e)).toBe(true);
    expect(test(f.source("^stripe"), e)).toBe(false);
    expect(test(f.keyword("deploy now"), e)).toBe(true);
    expect(test(f.keyword("rollback"), e)).toBe(false);
    expect(test(f.keyword(/"type":"github\.push"/), e)).toBe(true);
  });

  it("and / or / not compose and short-circuit", () => {
    const e = event({ type: "a", source: "s1" });
    expect(test(f.and(f.type("a"), f.source("s1")), e)).toBe(true);
    expect(test(f.and(f.type("a"), f.not(f.source("s1"))), e)).toBe(false);
    expect(test(f.or(f.type("b"), f.source("s1")), e)).toBe(true);
    expect(test(f.or(f.type("b"), f.type("c")), e)).toBe(false);
    // the stateful filter after a failing pure one is never consulted (it would reject)
    expect(test(f.and(f.type("b"), f.rateLimit({ max: 1, windowMs: 1000 })), e)).toBe(false);
    expect(test(f.or(f.type("a"), f.dedupe({ key: () => "k", windowMs: 1000 })), e)).toBe(true);
  });
});

describe("TriggerRegistry", () => {
  it("orders by priority, rejects duplicate names, scopes default to the source", async () => {
    const r = new TriggerRegistry();
    r.register({ name: "low", filter: f.any(), handler: () => {} });
    r.register({ name: "high", priority: 5, filter: f.any(), handler: () => {}, scope: (e) => `x:${e.type}` });
    expect(() => r.register({ name: "low", filter: f.any(), handler: () => {} })).toThrow(/already registered/);
    const e = event({ source: "src-1" });
    const [m] = await r.match([e], { now: 0, state: ctx.state });
    expect(m).toEqual([
      expect.objectContaining({ scope: `x:${e.type}`, trigger: expect.objectContaining({ name: "high" }) }),
      expect.objectContaining({ scope: "src-1", trigger: expect.objectContaining({ name: "low" }) }),
    ]);
  });

  it("a throwing filter fails that event's match only", async () => {
    const r = new TriggerRegistry().register({
      name: "picky",
      filter: {
        describe: "boom",
        test: (e) => {
          if (e.type === "bad") throw new Error("bad filter");
          return true;
        },
      },
      handler: () => {},
    });
    const res = await r.match([event({ type: "bad" }), event({ type: "good" })], { now: 0, state: ctx.state });
    expect(res[0]).toEqual({ error: "matching failed: bad filter" });
    expect(res[1]).toHaveLength(1);
  });
});
