/**
 * Destinations against a real HTTP receiver (test/support/receiver.ts, in Node) and the real
 * local Redis and Postgres: signing, retries and the DLQ with every attempt recorded,
 * timeouts, routing by filter, and the circuit breaker. Time that would be waited is an
 * injected clock; no timing assertions.
 */

import { sql } from "drizzle-orm";
import { Webhook } from "standardwebhooks";
import { afterEach, describe, expect, inject, it } from "vitest";
import { version } from "../../package.json";
import { ManualClock } from "../../src/clock";
import { breakerStates, deliveryAttemptsFor, openDestinations } from "../../src/destinations";
import { USER_AGENT } from "../../src/destinations/deliver";
import { filters as f } from "../../src/triggers";
import { event } from "../support/consume";
import { AS_CONFIGURED, type Rig, rig } from "../support/rig";

const RECEIVER = inject("receiverUrl");
const SECRET = `whsec_${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))}`;
const T0 = Date.parse("2030-01-01T00:00:00Z");

type Mode =
  | { mode: "ok" | "always-500" | "hang" | "redirect"; status?: number; location?: string }
  | { mode: "fail-n" | "down-until"; n?: number; status?: number };
interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
  answered: number | "hang" | "dropped";
}

/** A receiver endpoint of its own for one test (or one destination of a test). */
async function endpoint(mode: Mode = { mode: "ok" }) {
  const id = crypto.randomUUID().slice(0, 12);
  const set = async (m: Mode) => {
    const res = await fetch(`${RECEIVER}/__control/${id}`, { method: "POST", body: JSON.stringify(m) });
    expect(res.status).toBe(200);
  };
  await set(mode);
  return {
    url: `${RECEIVER}/r/${id}`,
    set,
    received: async () => (await (await fetch(`${RECEIVER}/__log/${id}`)).json()) as Received[],
  };
}

let open: Rig<"redis">[] = [];
afterEach(async () => {
  for (const r of open) await r.close();
  open = [];
});

/** A consumer rig with DESTINATIONS set; code triggers go in through `code` (registered first). */
async function setup(
  destinations: object[],
  overrides: Record<string, unknown> = {},
  code?: (r: Rig<"redis">) => void,
) {
  const r = await rig("redis", { ...AS_CONFIGURED, DESTINATIONS: JSON.stringify(destinations), ...overrides });
  open.push(r);
  code?.(r);
  const clock = new ManualClock(T0);
  const d = openDestinations({ config: r.cfg, db: r.db.db, base: r.triggers, clock });
  return { r, clock, run: () => r.run({ clock, triggers: d.triggers, hooks: d.hooks }) };
}

type Row = { status: string; attempts: number; errors: Array<{ attempt: number; error: string }> };
async function row(r: Rig<"redis">, id: string): Promise<Row> {
  const [x] = await r.rows<Row>(sql`select status, attempts, errors from events where id = ${id}`);
  return x!;
}

describe("destinations: delivery", () => {
  it("POSTs the envelope signed with Standard Webhooks (webhook-id = event id), verified by standardwebhooks", async () => {
    const ep = await endpoint();
    const { r, run } = await setup([
      { name: "orders", url: ep.url, filter: { types: ["order.*"] }, secret: SECRET, headers: { "x-team": "billing" } },
    ]);
    const e = event({ type: "order.created", order_id: 42 });
    await r.store.publish([e]);
    expect(await run()).toMatchObject({ claimed: 1, completed: 1 });

    const [got, ...more] = await ep.received();
    expect(more).toEqual([]);
    expect(JSON.parse(got!.body)).toEqual(e);
    expect(got!.headers).toMatchObject({
      "content-type": "application/json",
      "user-agent": `reflex-edge/${version}`,
      "webhook-id": e.id,
      "x-team": "billing",
    });
    expect(USER_AGENT).toBe(`reflex-edge/${version}`);
    // The receiver's side: the reference library accepts it, and only with the right secret.
    expect(new Webhook(SECRET).verify(got!.body, got!.headers)).toEqual(e);
    const other = `whsec_${btoa("x".repeat(32))}`;
    expect(() => new Webhook(other).verify(got!.body, got!.headers)).toThrow(/signature/i);

    const attempts = await deliveryAttemptsFor(r.db.db, e.id);
    expect(attempts).toMatchObject([
      { destination: "orders", attempt: 1, status_code: 200, error: null, probe: false },
    ]);
    expect(attempts[0]!.response_body).toBe('{"ok":true}');
    expect(await row(r, e.id)).toMatchObject({ status: "completed", attempts: 1 });
  });

  it("a receiver answering 500 twice, then 200, ends completed with three recorded attempts", async () => {
    const ep = await endpoint({ mode: "fail-n", n: 2 });
    const { r, clock, run } = await setup([{ name: "orders", url: ep.url, filter: {} }], { EVENT_MAX_ATTEMPTS: "3" });
    const e = event();
    await r.store.publish([e]);
    expect(await run()).toMatchObject({ retried: 1 });
    clock.advance(1_000);
    expect(await run()).toMatchObject({ retried: 1 });
    clock.advance(2_000);
    expect(await run()).toMatchObject({ completed: 1 });

    const x = await row(r, e.id);
    expect(x).toMatchObject({ status: "completed", attempts: 3 });
    expect(x.errors.map((er) => er.error)).toEqual(["destination orders: HTTP 500", "destination orders: HTTP 500"]);
    const attempts = await deliveryAttemptsFor(r.db.db, e.id);
    expect(attempts.map((a) => [a.attempt, a.status_code, a.error])).toEqual([
      [1, 500, "HTTP 500"],
      [2, 500, "HTTP 500"],
      [3, 200, null],
    ]);
    expect(attempts[0]!.response_body).toContain("failing on purpose");
    expect((await ep.received()).map((g) => g.answered)).toEqual([500, 500, 200]);
  });

  it("a receiver that always fails: the event ends in the DLQ with every attempt recorded", async () => {
    const ep = await endpoint({ mode: "always-500", status: 503 });
    const { r, clock, run } = await setup([{ name: "orders", url: ep.url, filter: {} }], {
      EVENT_MAX_ATTEMPTS: "4",
      DESTINATION_BREAKER_FAILURES: "10",
    });
    const e = event();
    await r.store.publish([e]);
    for (let i = 0; i < 4; i++) {
      await run();
      clock.advance(60_000);
    }
    const x = await row(r, e.id);
    expect(x).toMatchObject({ status: "dlq", attempts: 4 });
    expect(x.errors.map((er) => er.error)).toEqual(Array(4).fill("destination orders: HTTP 503"));
    const attempts = await deliveryAttemptsFor(r.db.db, e.id);
    expect(attempts.map((a) => [a.attempt, a.status_code, a.error])).toEqual(
      [1, 2, 3, 4].map((n) => [n, 503, "HTTP 503"]),
    );
    expect(await ep.received()).toHaveLength(4);
    expect(await run()).toMatchObject({ claimed: 0 });
  });

  it("a receiver that hangs is cut off at the timeout", async () => {
    const ep = await endpoint({ mode: "hang" });
    const { r, run } = await setup([{ name: "slow", url: ep.url, filter: {}, timeout_ms: 300 }], {
      EVENT_MAX_ATTEMPTS: "1",
    });
    const e = event();
    await r.store.publish([e]);
    expect(await run()).toMatchObject({ dlq: 1 });
    const x = await row(r, e.id);
    expect(x.errors.map((er) => er.error)).toEqual(["destination slow: timeout after 300 ms"]);
    expect(await deliveryAttemptsFor(r.db.db, e.id)).toMatchObject([
      { destination: "slow", attempt: 1, status_code: null, error: "timeout after 300 ms", response_body: null },
    ]);
    expect((await ep.received()).map((g) => g.answered)).toEqual(["hang"]);
  });

  it("a redirect is not followed: the attempt fails naming the location's scheme and host", async () => {
    const ep = await endpoint({ mode: "redirect", location: "https://elsewhere.example/hook" });
    const { r, run } = await setup([{ name: "moved", url: ep.url, filter: {} }], { EVENT_MAX_ATTEMPTS: "1" });
    const e = event();
    await r.store.publish([e]);
    await run();
    expect(await deliveryAttemptsFor(r.db.db, e.id)).toMatchObject([
      { status_code: 302, error: "redirect not followed: https://elsewhere.example" },
    ]);
    expect((await row(r, e.id)).status).toBe("dlq");
  });
});

describe("destinations: routing", () => {
  it("filters route events only to their destinations; code triggers run beside them and a failure of either fails the event", async () => {
    const orders = await endpoint();
    const refunds = await endpoint();
    const seen: string[] = [];
    const { r, run } = await setup(
      [
        { name: "orders", url: orders.url, filter: { types: ["order.*"] } },
        { name: "refunds", url: refunds.url, filter: { types: ["refund.created"], sources: ["shop*"] } },
      ],
      { EVENT_MAX_ATTEMPTS: "1" },
      (rg) =>
        rg.triggers.register({
          name: "audit",
          filter: f.type("order.*"),
          handler: (ctx) => {
            seen.push(ctx.event.id);
            if (ctx.event.fail) throw new Error("audit refused");
          },
        }),
    );
    const order = event({ type: "order.created", source: "web" });
    const paidInShop = event({ type: "order.paid", source: "shopify" });
    const refund = event({ type: "refund.created", source: "shopify" });
    const refundElsewhere = event({ type: "refund.created", source: "pos" });
    const other = event({ type: "user.signed_up", source: "web" });
    const failing = event({ type: "order.created", source: "web", fail: true });
    const all = [order, paidInShop, refund, refundElsewhere, other, failing];
    await r.store.publish(all);
    await run();

    const ids = async (ep: typeof orders) => (await ep.received()).map((g) => JSON.parse(g.body).id as string).sort();
    expect(await ids(orders)).toEqual([order.id, paidInShop.id, failing.id].sort());
    expect(await ids(refunds)).toEqual([refund.id]);
    expect(seen.sort()).toEqual([order.id, paidInShop.id, failing.id].sort());

    for (const e of all.filter((x) => x !== failing)) expect((await row(r, e.id)).status).toBe("completed");
    // Delivered, but its code trigger failed: the event fails (here: its only attempt, so the DLQ).
    const x = await row(r, failing.id);
    expect(x.status).toBe("dlq");
    expect(x.errors[0]!.error).toBe("audit: audit refused");
    const [n] = await r.rows<{ n: number }>(sql`select count(*)::int as n from delivery_attempts`);
    expect(n!.n).toBe(4);
  });
});

describe("destinations: circuit breaker", () => {
  it("a receiver down for a while opens the breaker; its events wait without burning attempts and complete after it recovers", async () => {
    const ep = await endpoint({ mode: "down-until" });
    const { r, clock, run } = await setup([{ name: "orders", url: ep.url, filter: {} }], {
      EVENT_MAX_ATTEMPTS: "3",
      DESTINATION_BREAKER_FAILURES: "3",
      DESTINATION_BREAKER_COOLDOWN_S: "30",
      DESTINATION_BREAKER_MAX_COOLDOWN_S: "600",
    });
    const evs = Array.from({ length: 6 }, () => event()); // one source: delivered in order
    await r.store.publish(evs);
    const states = () => breakerStates(r.db.db, r.cfg, new Date(clock.now()));

    // Three failures open the breaker; the other three events wait, untried.
    expect(await run()).toMatchObject({ claimed: 6, retried: 3, deferred: 3 });
    expect(await states()).toEqual([
      {
        destination: "orders",
        state: "open",
        failures: 3,
        opened_at: new Date(T0).toISOString(),
        next_probe_at: new Date(T0 + 30_000).toISOString(),
      },
    ]);
    expect(await ep.received()).toHaveLength(3);

    // Their retries fall due while it is open: deferred to the probe time, nothing sent.
    clock.advance(2_000);
    expect(await run()).toMatchObject({ claimed: 3, deferred: 3 });
    expect(await ep.received()).toHaveLength(3);

    // Cool-down over: one probe, still down -> open again for twice as long; nothing burned.
    clock.set(T0 + 30_000);
    expect(await run()).toMatchObject({ claimed: 6, deferred: 6, retried: 0, dlq: 0 });
    expect(await ep.received()).toHaveLength(4);
    expect(await states()).toMatchObject([{ state: "open", next_probe_at: new Date(T0 + 90_000).toISOString() }]);

    // The receiver recovers; the next probe closes the breaker and everything is delivered.
    await ep.set({ mode: "ok" });
    clock.set(T0 + 90_000);
    expect(await run()).toMatchObject({ claimed: 6, completed: 6, dlq: 0 });
    expect(await states()).toEqual([
      { destination: "orders", state: "closed", failures: 0, opened_at: null, next_probe_at: null },
    ]);

    const rows = await r.rows<{ status: string; attempts: number }>(sql`select status, attempts from events`);
    expect(rows.every((x) => x.status === "completed")).toBe(true);
    expect(Math.max(...rows.map((x) => x.attempts))).toBeLessThanOrEqual(2);
    const received = await ep.received();
    expect(received.filter((g) => g.answered === "dropped")).toHaveLength(4);
    expect(new Set(received.filter((g) => g.answered === 200).map((g) => JSON.parse(g.body).id))).toEqual(
      new Set(evs.map((e) => e.id)),
    );
    // Every request is on record, the two probes marked.
    const [c] = await r.rows<{ n: number; probes: number }>(
      sql`select count(*)::int as n, count(*) filter (where probe)::int as probes from delivery_attempts`,
    );
    expect(c).toEqual({ n: 10, probes: 2 });
  });
});
