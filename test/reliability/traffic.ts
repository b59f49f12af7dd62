/**
 * The traffic plan: what the harness sends, and what each request should get.
 *
 * Volume goes mostly through POST /events/batch (one Redis round trip per batch), with
 * single POST /events and signed webhook deliveries beside it, and a small share of requests
 * that must be refused (bad item in a batch, wrong API key, invalid field, forged webhook
 * signature). Every event sent to /events carries its own UUID, so a request that timed out
 * or got a 5xx can be retried as a real client would - same ids - and the harness knows
 * which ids a refused request carried. Webhook deliveries are retried and redelivered with
 * the same delivery id and a fresh signature, as providers do.
 */

import { prng } from "../support/prng";
import { githubHeaders, SECRETS, standardHeaders, stripeEvent, stripeHeaders } from "../support/webhooks";
import type { Profile } from "./profile";

export const API_KEY = "reliability-key-0123456789abcdef";

/** Webhook sources of the run. Their names start with "rel-" like every event source of the run. */
export const WEBHOOK_SOURCES = {
  "rel-svix": { scheme: "standard-webhooks", secret: SECRETS.standard, tolerance_s: 300 },
  "rel-gh": { scheme: "github", secret: SECRETS.github },
  "rel-stripe": { scheme: "stripe", secret: SECRETS.stripe, tolerance_s: 300 },
} as const;
type WebhookSourceName = keyof typeof WEBHOOK_SOURCES;

/** Event sources of the run (the scope key: events of one source are handled one at a time). */
export const SOURCE_PREFIX = "rel-";
const SOURCES = 48;

export interface Item {
  kind: "batch" | "single" | "webhook";
  /** "accept": must end 2xx (retried through 5xx and timeouts). "reject": must get this 4xx. */
  expect: { accept: true } | { accept: false; status: number };
  /** Client-supplied ids of the events in the body (webhooks: none, the server names them). */
  ids: string[];
  /** Webhooks: the source and the provider's delivery id (the dedupe key). */
  delivery?: { source: WebhookSourceName; id: string };
  /** A fresh request for each attempt (webhooks are signed again with the current time). */
  build(): Promise<Request>;
  /**
   * Duplicate sends: "resend" = after the 202 the client sends the same batch again (as if
   * the answer had been lost; same ids); "redeliver" = the provider redelivers after the first
   * answer; "race" = the provider sends two copies at the same moment.
   */
  extra?: "resend" | "redeliver" | "race";
}

function post(path: string, body: string, headers: Record<string, string>): Request {
  return new Request(`http://reflex.test${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
}
const authed = (key = API_KEY) => ({ authorization: `Bearer ${key}` });

export interface Plan {
  items: Item[];
  /** Events in items that should be accepted (what the profile asked for). */
  acceptable: number;
}

export function buildPlan(p: Profile): Plan {
  const rnd = prng(p.seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  let n = 0;
  const event = (type: "timer.tick" | "http.request" = rnd() < 0.85 ? "timer.tick" : "http.request") => {
    const id = crypto.randomUUID();
    const source = `${SOURCE_PREFIX}s${Math.floor(rnd() * SOURCES)}`;
    n++;
    return type === "timer.tick"
      ? { id, type, source, timer_name: "reliability", tick_count: n }
      : {
          id,
          type,
          source,
          method: "POST",
          path: `/orders/${n}`,
          headers: { "x-n": String(n) },
          body: { n, items: [n % 7, "x"] },
        };
  };

  const items: Item[] = [];
  let acceptable = 0;
  // Shares of the accepted volume: ~4% webhooks and ~4% single events (each one request per
  // event, so they dominate request count), the rest in batches of 100-500.
  const webhooks = Math.max(300, Math.round(p.events * 0.04));
  const singles = Math.max(300, Math.round(p.events * 0.04));

  for (let i = 0; i < webhooks; i++) {
    const source = pick(Object.keys(WEBHOOK_SOURCES) as WebhookSourceName[]);
    const r = rnd();
    const extra = r < 0.25 ? "redeliver" : r < 0.35 ? "race" : undefined;
    items.push(webhookItem(source, extra));
    acceptable++;
  }
  for (let i = 0; i < singles; i++) {
    const e = event();
    items.push({
      kind: "single",
      expect: { accept: true },
      ids: [e.id],
      build: async () => post("/events", JSON.stringify(e), authed()),
    });
    acceptable++;
  }
  while (acceptable < p.events) {
    const size = Math.min(p.events - acceptable, 100 + Math.floor(rnd() * 401));
    const events = Array.from({ length: size }, () => event());
    const body = JSON.stringify({ events });
    items.push({
      kind: "batch",
      expect: { accept: true },
      ids: events.map((e) => e.id),
      build: async () => post("/events/batch", body, authed()),
      ...(rnd() < 0.05 ? { extra: "resend" as const } : {}),
    });
    acceptable += size;
  }

  // Requests that must be refused, ~1 for every 60 accepted requests, of four kinds.
  const refusals = Math.max(40, Math.round(items.length / 60));
  for (let i = 0; i < refusals; i++) {
    switch (i % 4) {
      case 0: {
        // One bad item refuses the whole batch: none of its events may appear.
        const events: Record<string, unknown>[] = Array.from({ length: 20 }, () => event());
        events[7] = { ...events[7], type: "no.such.type" };
        const body = JSON.stringify({ events });
        items.push({
          kind: "batch",
          expect: { accept: false, status: 422 },
          ids: events.map((e) => String(e.id)),
          build: async () => post("/events/batch", body, authed()),
        });
        break;
      }
      case 1: {
        const e = event();
        items.push({
          kind: "single",
          expect: { accept: false, status: 401 },
          ids: [e.id],
          build: async () => post("/events", JSON.stringify(e), authed("not-a-key-of-this-deployment")),
        });
        break;
      }
      case 2: {
        const e = { ...event("timer.tick"), tick_count: -1 };
        items.push({
          kind: "single",
          expect: { accept: false, status: 422 },
          ids: [e.id],
          build: async () => post("/events", JSON.stringify(e), authed()),
        });
        break;
      }
      case 3: {
        // Signed for one body, delivered with another.
        const signedBody = JSON.stringify({ amount: 1 });
        const sent = JSON.stringify({ amount: 1_000_000 });
        const id = `msg_forged_${crypto.randomUUID()}`;
        items.push({
          kind: "webhook",
          expect: { accept: false, status: 401 },
          ids: [],
          delivery: { source: "rel-svix", id },
          build: async () => post("/webhooks/rel-svix", sent, standardHeaders(signedBody, id)),
        });
        break;
      }
    }
  }

  // Deterministic shuffle, so refusals and webhooks are spread over the whole run.
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return { items, acceptable };
}

let webhookSeq = 0;
function webhookItem(source: WebhookSourceName, extra: Item["extra"]): Item {
  const n = webhookSeq++;
  const common = { kind: "webhook" as const, expect: { accept: true as const }, ids: [], ...(extra ? { extra } : {}) };
  switch (source) {
    case "rel-svix": {
      const id = `msg_${crypto.randomUUID()}`;
      const body = JSON.stringify({ type: "invoice.created", data: { n } });
      return {
        ...common,
        delivery: { source, id },
        build: async () => post(`/webhooks/${source}`, body, standardHeaders(body, id)),
      };
    }
    case "rel-gh": {
      const id = crypto.randomUUID();
      const body = JSON.stringify({ ref: "refs/heads/main", n, repository: { full_name: "reflex/edge" } });
      return {
        ...common,
        delivery: { source, id },
        build: async () => post(`/webhooks/${source}`, body, await githubHeaders(body, id)),
      };
    }
    case "rel-stripe": {
      const id = `evt_${crypto.randomUUID().replace(/-/g, "")}`;
      const body = stripeEvent(id);
      return {
        ...common,
        delivery: { source, id },
        build: async () => post(`/webhooks/${source}`, body, await stripeHeaders(body)),
      };
    }
  }
}
