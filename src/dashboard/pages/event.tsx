/**
 * One event: envelope facts, payload (formatted JSON), handling attempts with their errors,
 * destination deliveries, the causation chain (parents and derived events as links) and
 * its replay copies; actions retry (in the DLQ), discard (in the DLQ) and replay this event.
 */
import type { FC } from "hono/jsx";
import type { StepRow } from "../../db/schema";
import type { DeliveryAttempt } from "../../destinations/delivery-records";
import { deliveryAttemptsFor } from "../../destinations/delivery-records";
import { byId } from "../../operations/db-scope";
import { attemptHistory, eventNotFound } from "../../operations/event-history";
import { replayOneEvent } from "../../operations/replay-jobs";
import type { ChainLink } from "../../reads/dashboard-queries";
import { ancestors } from "../../reads/dashboard-queries";
import type { DerivedSummary, EventView } from "../../reads/event-queries";
import { getEvent } from "../../reads/event-queries";
import { stepsOfEvent } from "../../triggers/step-records";
import type { Session } from "../env";
import { Badge, Csrf, EventLink, Flash, millis, num, Page, Table, Time } from "../layout";
import { type C, type DashRouter, html, query, withFlash } from "../page-kit";
import { requireAdmin } from "../session";
import { searchHref } from "./events";

/** Larger bodies are cut for the page (it stays under 100 KB); GET /events/{id} has them whole. */
const SHOW_BYTES = 48 * 1024;

export interface EventPageData {
  e: EventView & { derived: DerivedSummary[] };
  attempts: Array<{ attempt: number; outcome: string; error?: string; at?: string | null }>;
  deliveries: DeliveryAttempt[];
  /** The durable steps its handlers recorded (ctx.step, agent turns), in the order they ran. */
  steps: StepRow[];
  /** Nearest parent first. */
  chain: ChainLink[];
}

function json(v: unknown): { text: string; cut: number } {
  const text = JSON.stringify(v, null, 2) ?? "null";
  return text.length > SHOW_BYTES ? { text: text.slice(0, SHOW_BYTES), cut: text.length } : { text, cut: 0 };
}

const Json: FC<{ value: unknown; label: string }> = ({ value, label }) => {
  const j = json(value);
  return (
    <>
      <pre class="json" tabindex={0} title={label}>
        <code>{j.text}</code>
      </pre>
      {j.cut ? (
        <p class="hint">
          Showing the first {num(SHOW_BYTES)} of {num(j.cut)} characters; <code>GET /events/&lt;id&gt;</code> has it
          all.
        </p>
      ) : null}
    </>
  );
};

const ChainItem: FC<{ l: { id: string; type: string; status: string; found: boolean } }> = ({ l }) => (
  <>
    <EventLink id={l.id} />
    {l.found ? (
      <>
        <span>{l.type}</span> <Badge value={l.status} />
      </>
    ) : (
      <span class="muted">not in history</span>
    )}
  </>
);

export const EventPage: FC<{ session: Session; d: EventPageData; flash?: string }> = ({ session, d, flash }) => {
  const { e } = d;
  const admin = session.role === "admin";
  const copies = e.derived.filter((x) => x.replay !== null);
  const derived = e.derived.filter((x) => x.replay === null);
  const back = `/dashboard/events/${e.id}`;
  const isCopy = typeof e.meta.replay === "string";
  return (
    <Page title={`${e.type} ${e.id.slice(0, 8)}`} section="events" session={session}>
      <p class="muted">
        <a href="/dashboard/events">Events</a> / <span class="mono">{e.id}</span>
      </p>
      <div class="head">
        <div>
          <h1>
            {e.type} <Badge value={e.status} />
          </h1>
          <p class="lede">
            from <strong>{e.source}</strong>, stamped <Time at={e.timestamp} />
          </p>
        </div>
      </div>
      <Flash code={flash} />
      {admin ? (
        <div class="actions-bar">
          {e.status === "dlq" ? (
            <>
              <form method="post" action={`/dashboard/dlq/${e.id}/retry`}>
                <Csrf session={session} />
                <input type="hidden" name="back" value={back} />
                <button type="submit">Retry</button>
              </form>
              <form method="post" action={`/dashboard/dlq/${e.id}/discard`}>
                <Csrf session={session} />
                <input type="hidden" name="back" value={back} />
                <label class="sr-only" for="discard-reason">
                  Reason for discarding
                </label>
                <input id="discard-reason" name="reason" required maxlength={1000} placeholder="Reason to discard" />
                <button type="submit" class="danger">
                  Discard
                </button>
              </form>
            </>
          ) : null}
          {isCopy ? null : (
            <form
              method="post"
              action={`/dashboard/events/${e.id}/replay`}
              data-confirm="Replay this event through every trigger?"
            >
              <Csrf session={session} />
              <button type="submit" class="secondary" title="A replay job of this event's type, source and millisecond">
                Replay this event
              </button>
            </form>
          )}
        </div>
      ) : null}

      <div class="grid2">
        <section aria-labelledby="facts-h">
          <h2 id="facts-h">Envelope</h2>
          <div class="card">
            <dl class="facts">
              <dt>Id</dt>
              <dd class="mono">{e.id}</dd>
              <dt>Source</dt>
              <dd>{e.source}</dd>
              <dt>Timestamp</dt>
              <dd>
                <Time at={e.timestamp} />
              </dd>
              <dt>Status</dt>
              <dd>
                <Badge value={e.status} />
                {e.status === "discarded" && e.discard_reason ? <span> {e.discard_reason}</span> : null}
              </dd>
              <dt>Attempts</dt>
              <dd>{num(e.attempts)}</dd>
              {e.next_retry_at && e.status === "pending" ? (
                <>
                  <dt>Next retry</dt>
                  <dd>
                    <Time at={e.next_retry_at} />
                  </dd>
                </>
              ) : null}
              <dt>Stored</dt>
              <dd>
                <Time at={e.created_at} />
              </dd>
              <dt>Updated</dt>
              <dd>
                <Time at={e.updated_at} />
              </dd>
              <dt>Processed</dt>
              <dd>
                <Time at={e.processed_at} />
              </dd>
              <dt>Trace</dt>
              <dd class="mono">{e.meta.trace_id}</dd>
              {e.meta.correlation_id ? (
                <>
                  <dt>Correlation</dt>
                  <dd>
                    <a class="mono" href={searchHref({ correlation: e.meta.correlation_id })}>
                      {e.meta.correlation_id}
                    </a>
                  </dd>
                </>
              ) : null}
              {isCopy ? (
                <>
                  <dt>Replay job</dt>
                  <dd>
                    <a class="mono" href={`/dashboard/replays#job-${e.meta.replay}`}>
                      {String(e.meta.replay)}
                    </a>
                  </dd>
                </>
              ) : null}
            </dl>
          </div>
        </section>

        <section aria-labelledby="chain-h">
          <h2 id="chain-h">Causation</h2>
          <div class="card">
            <h3>Chain</h3>
            <ol class="chain" reversed>
              {[...d.chain].reverse().map((l) => (
                <li>
                  <ChainItem l={l} />
                </li>
              ))}
              <li class="self" aria-current="true">
                <span class="mono">{e.id.slice(0, 8)}</span> <span>{e.type}</span>{" "}
                <span class="muted">(this event)</span>
              </li>
            </ol>
            {d.chain.length === 0 ? <p class="hint">No parent: this event came in through ingest.</p> : null}
            <h3>Derived events</h3>
            {derived.length ? (
              <ul class="plain">
                {derived.map((x) => (
                  <li>
                    <ChainItem l={{ ...x, found: true }} />
                  </li>
                ))}
              </ul>
            ) : (
              <p class="hint">None.</p>
            )}
            <h3>Replay copies</h3>
            {copies.length ? (
              <ul class="plain">
                {copies.map((x) => (
                  <li>
                    <ChainItem l={{ ...x, found: true }} />{" "}
                    <a class="muted" href={`/dashboard/replays#job-${x.replay}`}>
                      job {x.replay!.slice(0, 8)}
                    </a>
                  </li>
                ))}
              </ul>
            ) : (
              <p class="hint">None.</p>
            )}
          </div>
        </section>
      </div>

      <section aria-labelledby="attempts-h">
        <h2 id="attempts-h">Attempts</h2>
        <Table
          cols={[{ label: "Attempt", num: true }, "Outcome", "At", "Error"]}
          empty="Not handled yet."
          rows={d.attempts.map((a) => (
            <tr>
              <td class="num">{a.attempt}</td>
              <td>
                <Badge value={a.outcome} />
              </td>
              <td>
                <Time at={a.at ?? null} />
              </td>
              <td class="err">{a.error ?? ""}</td>
            </tr>
          ))}
        />
      </section>

      <section aria-labelledby="steps-h">
        <h2 id="steps-h">Durable steps</h2>
        <Table
          cols={[
            "Trigger",
            "Step",
            "Status",
            { label: "Attempt", num: true },
            { label: "Took", num: true },
            "Model tokens",
          ]}
          empty="No step recorded (handlers that use ctx.step or agents record them)."
          rows={d.steps.map((s) => (
            <tr>
              <td>{s.trigger}</td>
              <td class="mono">{s.name}</td>
              <td>
                <Badge value={s.status} />
                {s.error ? <div class="err">{s.error}</div> : null}
              </td>
              <td class="num">{s.attempt}</td>
              <td class="num nowrap">{millis(s.durationMs)}</td>
              <td class="mono">
                {s.usage ? `${s.usage.model}: ${num(s.usage.input_tokens)} in, ${num(s.usage.output_tokens)} out` : ""}
              </td>
            </tr>
          ))}
        />
      </section>

      <section aria-labelledby="deliveries-h">
        <h2 id="deliveries-h">Destination deliveries</h2>
        <Table
          cols={[
            "Destination",
            { label: "Attempt", num: true },
            "Status",
            "At",
            { label: "Took", num: true },
            "Answer",
          ]}
          empty="No delivery to a destination."
          rows={d.deliveries.map((x) => (
            <tr>
              <td>
                <a href={`/dashboard/destinations#dest-${x.destination}`}>{x.destination}</a>
                {x.probe ? <span class="muted"> (probe)</span> : null}
              </td>
              <td class="num">{x.attempt}</td>
              <td>
                {x.error ? <Badge value="failed" /> : <Badge value="completed" />}{" "}
                <span class="mono">{x.status_code ?? ""}</span>
                {x.error ? <div class="err">{x.error}</div> : null}
              </td>
              <td>
                <Time at={x.at} />
              </td>
              <td class="num nowrap">{millis(x.duration_ms)}</td>
              <td class="mono">{(x.response_body ?? "").slice(0, 160)}</td>
            </tr>
          ))}
        />
      </section>

      <section aria-labelledby="payload-h">
        <h2 id="payload-h">Payload</h2>
        <Json value={Object.fromEntries(Object.entries(e).filter(([k]) => !NOT_PAYLOAD.has(k)))} label="Payload" />
        <details class="raw">
          <summary>Meta</summary>
          <Json value={e.meta} label="Meta" />
        </details>
      </section>
    </Page>
  );
};

/** The envelope and history fields of EventView; everything else is the event's own payload. */
const NOT_PAYLOAD = new Set([
  "id",
  "type",
  "source",
  "timestamp",
  "meta",
  "status",
  "attempts",
  "last_error",
  "errors",
  "next_retry_at",
  "created_at",
  "updated_at",
  "processed_at",
  "discard_reason",
  "derived",
]);

async function eventPage(c: C) {
  const id = c.req.param("id")!;
  const d = await byId(
    c,
    "read",
    id,
    async (db) => {
      const e = await getEvent(db, id);
      if (!e) return null;
      const parent = typeof e.meta.causation_id === "string" ? e.meta.causation_id : undefined;
      const [deliveries, chain, steps] = await Promise.all([
        deliveryAttemptsFor(db, id),
        parent ? ancestors(db, parent) : Promise.resolve([]),
        stepsOfEvent(db, id),
      ]);
      return { e, attempts: attemptHistory(e), deliveries, chain, steps };
    },
    eventNotFound,
  );
  return html(c, <EventPage session={c.var.session} d={d} flash={query(c, "flash")} />);
}

/** "Replay this event" (src/operations/replay-jobs.ts replayOneEvent). */
async function replayEvent(c: C) {
  const job = await replayOneEvent(c, c.req.param("id")!);
  return c.redirect(withFlash(`/dashboard/replays#job-${job.id}`, "replay-started"), 303);
}

/** The page's routes, registered by ../routes.tsx behind the sign-in. */
export function eventRoutes(r: DashRouter) {
  r.get("/events/:id", eventPage);
  r.post("/events/:id/replay", requireAdmin, replayEvent);
}
