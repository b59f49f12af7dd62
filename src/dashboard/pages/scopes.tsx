/**
 * Parked scopes: the ordered scopes whose head failed, each with its head, the head's error,
 * since when it is parked and how many events wait behind it; retry the head now, or discard
 * it (with a reason) and let the scope resume with the next event.
 */
import type { FC } from "hono/jsx";
import type { ParkedScope } from "../../consume/ordered-sql";
import type { Session } from "../env";
import { Badge, Csrf, EventLink, Flash, num, Page, ReasonInput, Table, Time } from "../layout";

/** A trigger or destination the head's error names as failing; `destination` links its page. */
export interface FailedIn {
  name: string;
  destination?: string;
}

export interface ParkedRow {
  p: ParkedScope;
  failedIn: FailedIn[];
}

const Head: FC<{ p: ParkedScope }> = ({ p }) => (
  <>
    <EventLink id={p.eventId} short /> {p.type}
    <div class="progress-text">
      <Badge value={p.status} /> {num(p.attempts)} attempt(s)
      {p.status === "dlq" ? " · held" : null}
      {p.status === "pending" && p.nextRetryAt ? (
        <>
          {" · next try "}
          <Time at={p.nextRetryAt} />
        </>
      ) : null}
    </div>
  </>
);

export const ScopesPage: FC<{ session: Session; rows: ParkedRow[]; more: boolean; flash?: string }> = (p) => {
  const admin = p.session.role === "admin";
  return (
    <Page title="Parked scopes" section="scopes" session={p.session}>
      <div class="head">
        <div>
          <h1>Parked scopes</h1>
          <p class="lede">
            Ordered scopes whose head failed: the events behind it wait, using no attempts, while every other scope
            flows. A head still retrying moves on by itself; one held in the DLQ waits for a retry or a discard here.
          </p>
        </div>
      </div>
      <Flash code={p.flash} />
      <Table
        caption={`Parked scopes, parked longest first: ${num(p.rows.length)}`}
        cols={[
          "Parked since",
          "Scope",
          "Trigger / destination",
          "Head",
          "Error",
          { label: "Waiting", num: true },
          ...(admin ? [{ label: "Actions", hidden: true }] : []),
        ]}
        empty="No scope is parked."
        rows={p.rows.map(({ p: s, failedIn }) => (
          <tr>
            <td>
              <Time at={s.parkedAt} />
            </td>
            <td class="mono">{s.scope}</td>
            <td>
              {failedIn.length ? (
                failedIn.map((f) => (
                  <div>
                    {f.destination ? (
                      <a href={`/dashboard/destinations#dest-${f.destination}`}>{f.name}</a>
                    ) : (
                      <span class="mono">{f.name}</span>
                    )}
                  </div>
                ))
              ) : (
                <span class="muted">-</span>
              )}
            </td>
            <td>
              <Head p={s} />
            </td>
            <td class="err">{s.error ?? ""}</td>
            <td class="num">{num(s.waiting)}</td>
            {admin ? (
              <td class="actions">
                {s.status === "processing" ? (
                  <span class="muted">being handled</span>
                ) : (
                  // One form a line: the error column keeps its width.
                  <>
                    <div>
                      <form method="post" action="/dashboard/scopes/retry">
                        <Csrf session={p.session} />
                        <input type="hidden" name="scope" value={s.scope} />
                        <button type="submit" class="sm" aria-label={`Retry head of scope ${s.scope}`}>
                          Retry head
                        </button>
                      </form>
                    </div>
                    <div>
                      <form method="post" action="/dashboard/scopes/discard">
                        <Csrf session={p.session} />
                        <input type="hidden" name="scope" value={s.scope} />
                        <ReasonInput label={`Reason for discarding the head of scope ${s.scope}`} />
                        <button type="submit" class="danger sm" aria-label={`Discard head of scope ${s.scope}`}>
                          Discard head
                        </button>
                      </form>
                    </div>
                  </>
                )}
              </td>
            ) : null}
          </tr>
        ))}
      />
      {p.more ? <p class="hint">More scopes are parked: the {num(p.rows.length)} parked longest are shown.</p> : null}
      <p class="hint">
        A retry makes the head due now (a held head gets a fresh set of attempts); a discard sets it discarded with the
        reason, and the next event of the scope runs.
      </p>
    </Page>
  );
};
