/**
 * Parked scopes: the ordered scopes whose head failed, each with its head, the head's error,
 * since when it is parked and how many events wait behind it; retry the head now, or discard
 * it (with a reason) and let the scope resume with the next event.
 */
import type { FC } from "hono/jsx";
import type { Config } from "../../config";
import type { ParkedScope } from "../../consume/ordered-sql";
import { TRIGGER_PREFIX } from "../../destinations/runtime";
import { HTTPProblem } from "../../http/problem";
import { parkedScopes, UnparkBody, unparkParkedScope } from "../../operations/parked-scopes";
import { defaultTriggers } from "../../triggers";
import type { Session } from "../env";
import { Badge, Csrf, EventLink, Flash, num, Page, ReasonInput, Table, Time } from "../layout";
import { type C, type DashRouter, field, html, query, withFlash } from "../page-kit";
import { requireAdmin } from "../session";

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

/** At most this many parked scopes on the page (the longest parked). */
const PARKED_SHOWN = 100;

/**
 * The worker's triggers and destinations that a head's error names as failing: run-event.ts
 * records a failure as "<trigger>: <message>", several joined by "; ".
 */
function failedIn(cfg: Config, error: string | null): FailedIn[] {
  if (!error) return [];
  const known: FailedIn[] = [
    ...defaultTriggers.list().map((t) => ({ name: t.name })),
    ...cfg.DESTINATIONS.map((d) => ({ name: TRIGGER_PREFIX + d.name, destination: d.name })),
  ];
  return known.filter((k) => error.startsWith(`${k.name}: `) || error.includes(`; ${k.name}: `));
}

async function scopesPage(c: C) {
  const found = await parkedScopes(c, PARKED_SHOWN + 1);
  const rows = found.slice(0, PARKED_SHOWN).map((p) => ({ p, failedIn: failedIn(c.var.config, p.error) }));
  return html(
    c,
    <ScopesPage session={c.var.session} rows={rows} more={found.length > PARKED_SHOWN} flash={query(c, "flash")} />,
  );
}

/** Retry or discard a parked scope's head: the admin API's unpark, with the form's scope (as sent) and reason. */
async function unparkFromForm(c: C, action: "retry" | "discard") {
  const scope = (await c.req.parseBody()).scope;
  const body = UnparkBody.safeParse({ scope, action, reason: await field(c, "reason") });
  if (!body.success)
    throw new HTTPProblem(
      422,
      "Invalid fields",
      "A scope is needed, and a reason (1 to 1,000 characters) to discard its head.",
      { errors: body.error.issues.map((i) => ({ path: `/${i.path.join("/")}`, message: i.message })) },
    );
  await unparkParkedScope(c, body.data);
  return c.redirect(withFlash("/dashboard/scopes", action === "retry" ? "head-retried" : "head-discarded"), 303);
}

/** The page's routes, registered by ../routes.tsx behind the sign-in. */
export function scopesRoutes(r: DashRouter) {
  r.get("/scopes", scopesPage);
  r.post("/scopes/retry", requireAdmin, (c) => unparkFromForm(c, "retry"));
  r.post("/scopes/discard", requireAdmin, (c) => unparkFromForm(c, "discard"));
}
