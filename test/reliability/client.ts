/**
 * The harness's HTTP client: sends plan items through the worker's real fetch handler and
 * behaves like a careful provider - a request that times out or gets a 5xx is sent again
 * (same ids, same delivery id) until it gets a definite answer. Everything it hears goes
 * into the Ledger, which the reconciliation compares with history.
 *
 * A timed-out request is not cancelled (a client cannot cancel what a server already
 * received): it keeps running, and its late answer is recorded too. A late 2xx counts as
 * accepted, because the system said yes to someone.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import type { Env } from "../../src/config";
import worker from "../../src/index";
import type { Item } from "./traffic";

export interface Answer {
  status: number;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** What the harness heard, and what it concluded. */
export class Ledger {
  /** Every answer by status, interim ones (503s before a retry) and late ones included. */
  readonly answers = new Map<number | "timeout", number>();
  /** Ids named in any 2xx answer: these must end completed or dead-lettered. */
  readonly accepted = new Set<string>();
  /** Ids of requests whose final answer was the expected 4xx: these must be absent. */
  readonly rejected = new Set<string>();
  /** Final answers of refused requests, by status. */
  readonly rejectedByStatus = new Map<number, number>();
  /** Webhook delivery ("source:id") -> every event id its 2xx answers named (must be one). */
  readonly deliveries = new Map<string, Set<string>>();
  /** Webhook delivery -> how many 202 answers it got (must be exactly one; the rest are 200 duplicate). */
  readonly deliveryAccepts = new Map<string, number>();
  /** Forged deliveries: none of them may be stored. */
  readonly refusedDeliveries = new Set<string>();
  /** Requests sent (attempts), and of those, retries after a 5xx or a timeout. */
  sent = 0;
  retries = 0;
  timeouts = 0;
  /** Duplicate sends: lost-answer resends, redeliveries, racing copies. */
  duplicateSends = 0;
  /** Protocol violations (a 202 naming other ids, a duplicate naming another event, ...). */
  readonly problems: string[] = [];
  /** Answers still running after their client gave up. */
  readonly late: Promise<void>[] = [];

  count(status: number | "timeout"): void {
    this.answers.set(status, (this.answers.get(status) ?? 0) + 1);
  }
}

export interface ClientOptions {
  env: Env;
  ledger: Ledger;
  /** The client gives up on an answer after this long and retries, ms. */
  timeoutMs: number;
  /** Upper bound of attempts per request before giving up (failing the run). */
  maxAttempts?: number;
}

const TIMEOUT = Symbol("timeout");
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Client {
  constructor(private readonly o: ClientOptions) {}

  /** Sends one plan item to its final answer, then its extra sends (duplicates). */
  async deliver(item: Item): Promise<void> {
    const L = this.o.ledger;
    // "race": the provider sends two copies at the same moment; the atomic dedupe must let one in.
    const racing = item.extra === "race";
    if (racing) L.duplicateSends++;
    const [first] = await Promise.all(
      racing ? [this.untilDefinite(item), this.untilDefinite(item)] : [this.untilDefinite(item)],
    );
    if (!item.expect.accept) {
      if (first!.status !== item.expect.status)
        L.problems.push(
          `expected ${item.expect.status}, got ${first!.status}: ${JSON.stringify(first!.json).slice(0, 200)}`,
        );
      if (first!.status >= 400) {
        for (const id of item.ids) L.rejected.add(id);
        if (item.delivery) L.refusedDeliveries.add(`${item.delivery.source}:${item.delivery.id}`);
        L.rejectedByStatus.set(first!.status, (L.rejectedByStatus.get(first!.status) ?? 0) + 1);
      }
      return;
    }
    if (first!.status >= 300)
      L.problems.push(`${item.kind} refused with ${first!.status}: ${JSON.stringify(first!.json).slice(0, 300)}`);
    if (item.extra === "resend" || item.extra === "redeliver") {
      // The client lost the 202 and sends the batch again / the provider redelivers later.
      L.duplicateSends++;
      await this.untilDefinite(item);
    }
  }

  /** Attempts until an answer that is not a 5xx or a timeout. */
  private async untilDefinite(item: Item): Promise<Answer> {
    const max = this.o.maxAttempts ?? 200;
    for (let attempt = 1; ; attempt++) {
      const a = await this.once(item);
      if (a !== TIMEOUT && a.status < 500) return a;
      if (attempt >= max) {
        this.o.ledger.problems.push(`${item.kind}: no definite answer after ${max} attempts`);
        return a === TIMEOUT ? { status: 599, json: null } : a;
      }
      this.o.ledger.retries++;
      await sleep(Math.min(50 * 2 ** attempt, 500));
    }
  }

  private async once(item: Item): Promise<Answer | typeof TIMEOUT> {
    const L = this.o.ledger;
    const req = await item.build();
    L.sent++;
    const ctx = createExecutionContext();
    const answer = (async (): Promise<Answer> => {
      const res = await worker.fetch!(req as Request<unknown, IncomingRequestCfProperties>, this.o.env, ctx);
      const text = await res.text();
      // Background work of the request (the wake-up send) belongs to it.
      await waitOnExecutionContext(ctx).catch(() => {});
      let json: unknown = text;
      try {
        json = JSON.parse(text);
      } catch {
        /* keep the text */
      }
      return { status: res.status, json };
    })();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const r = await Promise.race([
      answer,
      new Promise<typeof TIMEOUT>((res) => (timer = setTimeout(() => res(TIMEOUT), this.o.timeoutMs))),
    ]);
    clearTimeout(timer);
    if (r === TIMEOUT) {
      L.timeouts++;
      L.count("timeout");
      L.late.push(
        answer.then(
          (a) => this.record(item, a, true),
          (e) => void L.problems.push(`late request threw: ${String(e)}`),
        ),
      );
      return TIMEOUT;
    }
    this.record(item, r, false);
    return r;
  }

  /** Books one answer: status counts, accepted ids, and the checks on 2xx bodies. */
  private record(item: Item, a: Answer, late: boolean): void {
    const L = this.o.ledger;
    L.count(a.status);
    if (a.status < 200 || a.status >= 300) return;
    if (!item.expect.accept) {
      L.problems.push(`a request that must be refused got ${a.status}${late ? " (late)" : ""}`);
    }
    const named: string[] = item.kind === "batch" ? (a.json?.ids ?? []) : a.json?.id ? [a.json.id] : [];
    for (const id of named) L.accepted.add(id);
    if (item.kind === "webhook") {
      const key = `${item.delivery!.source}:${item.delivery!.id}`;
      const set = L.deliveries.get(key) ?? new Set<string>();
      for (const id of named) set.add(id);
      L.deliveries.set(key, set);
      if (a.status === 202) L.deliveryAccepts.set(key, (L.deliveryAccepts.get(key) ?? 0) + 1);
      const want = a.status === 202 ? "accepted" : "duplicate";
      if (a.status !== 202 && a.status !== 200) L.problems.push(`webhook answered ${a.status}`);
      if (a.json?.status !== want) L.problems.push(`webhook ${a.status} with status ${JSON.stringify(a.json?.status)}`);
    } else if ((a.status !== 202 && a.status !== 200) || JSON.stringify(named) !== JSON.stringify(item.ids)) {
      // /events answers with exactly the ids the client sent, in order - retries included: 202,
      // or 200 "duplicate" for a retry whose every event the first attempt had stored.
      L.problems.push(`${item.kind} ${a.status}: answer names other ids than were sent`);
    } else if (a.json?.status !== (a.status === 202 ? "accepted" : "duplicate")) {
      L.problems.push(`${item.kind} ${a.status} with status ${JSON.stringify(a.json?.status)}`);
    }
  }
}
