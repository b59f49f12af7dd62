/**
 * The dead-letter queue: grouped by error, type and source with counts, the events with
 * retry and discard (with a reason) each, and retry-all for a filter, confirmed with the
 * count on a page of its own first.
 */
import type { FC } from "hono/jsx";
import { HTTPProblem } from "../../http/problem";
import { withDb } from "../../operations/db-scope";
import { discardDeadLetter, listDeadLetters, retryDeadLetter, retryDeadLetters } from "../../operations/dlq-actions";
import type { DlqGroup, EventSummary } from "../../reads/dashboard-queries";
import { dlqEvents, dlqGroups } from "../../reads/dashboard-queries";
import { dlqList } from "../../reads/dlq-queries";
import type { Session } from "../env";
import { Badge, Csrf, EventLink, Flash, num, Page, ReasonInput, Table, Time } from "../layout";
import { type C, type DashRouter, field, html, PAGE_SIZE, query, withFlash } from "../page-kit";
import { requireAdmin, safeNext } from "../session";

export interface DlqFilterForm {
  type?: string;
  source?: string;
}

export function dlqHref(f: DlqFilterForm, path = "/dashboard/dlq"): string {
  const q = new URLSearchParams();
  if (f.type) q.set("type", f.type);
  if (f.source) q.set("source", f.source);
  const s = q.toString();
  return `${path}${s ? `?${s}` : ""}`;
}

const filterText = (f: DlqFilterForm) =>
  [f.type ? `type ${f.type}` : "", f.source ? `source ${f.source}` : ""].filter(Boolean).join(" and ") || "no filter";

export const DlqPage: FC<{
  session: Session;
  form: DlqFilterForm;
  total: number;
  matching: number;
  groups: DlqGroup[];
  rows: EventSummary[];
  flash?: string;
  n?: string;
}> = (p) => {
  const admin = p.session.role === "admin";
  const back = dlqHref(p.form);
  const filtered = Boolean(p.form.type || p.form.source);
  return (
    <Page title="DLQ" section="dlq" session={p.session}>
      <div class="head">
        <div>
          <h1>Dead-letter queue</h1>
          <p class="lede">
            {num(p.total)} event(s) whose attempts ran out. A retry sends an event back with its attempts reset (its
            errors are kept); a discard takes it out for good, with a reason.
          </p>
        </div>
      </div>
      <Flash code={p.flash} n={p.n} />

      <section aria-labelledby="groups-h">
        <h2 id="groups-h">By error, type and source</h2>
        <Table
          cols={[
            { label: "Events", num: true },
            "Error",
            "Type",
            "Source",
            "Latest",
            { label: "Filter", hidden: true },
          ]}
          empty="The DLQ is empty."
          rows={p.groups.map((g) => (
            <tr>
              <td class="num">{num(g.count)}</td>
              <td class="err">{g.error || <span class="muted">(no error recorded)</span>}</td>
              <td>{g.type}</td>
              <td>{g.source}</td>
              <td>
                <Time at={g.newest} />
              </td>
              <td class="actions">
                <a href={dlqHref({ type: g.type, source: g.source })}>Show these</a>
              </td>
            </tr>
          ))}
        />
      </section>

      <section aria-labelledby="dlq-events-h">
        <h2 id="dlq-events-h">Events</h2>
        <form class="filters card" method="get" action="/dashboard/dlq" aria-label="Filter the DLQ">
          <label>
            Type
            <input name="type" value={p.form.type ?? ""} maxlength={128} />
          </label>
          <label>
            Source
            <input name="source" value={p.form.source ?? ""} maxlength={256} />
          </label>
          <div class="actions-bar">
            <button type="submit" class="secondary">
              Filter
            </button>
            {filtered ? (
              <a class="btn secondary" href="/dashboard/dlq">
                Clear
              </a>
            ) : null}
            {admin && p.matching > 0 ? (
              <a class="btn" href={dlqHref(p.form, "/dashboard/dlq/retry-all")}>
                Retry all {num(p.matching)} matching…
              </a>
            ) : null}
          </div>
        </form>
        <Table
          caption={`DLQ events (${filterText(p.form)}), most recently dead first: ${num(p.rows.length)} of ${num(p.matching)}`}
          cols={[
            "Dead since",
            "Event",
            "Type",
            "Source",
            { label: "Attempts", num: true },
            "Last error",
            ...(admin ? [{ label: "Actions", hidden: true }] : []),
          ]}
          empty="Nothing here."
          rows={p.rows.map((e) => (
            <tr id={`dlq-${e.id}`}>
              <td>
                <Time at={e.updated_at} />
              </td>
              <td>
                <EventLink id={e.id} short />
              </td>
              <td>{e.type}</td>
              <td>{e.source}</td>
              <td class="num">{num(e.attempts)}</td>
              <td class="err">{e.last_error ?? ""}</td>
              {admin ? (
                <td class="actions">
                  <form method="post" action={`/dashboard/dlq/${e.id}/retry`}>
                    <Csrf session={p.session} />
                    <input type="hidden" name="back" value={back} />
                    <button type="submit" class="sm" aria-label={`Retry event ${e.id}`}>
                      Retry
                    </button>
                  </form>
                  <form method="post" action={`/dashboard/dlq/${e.id}/discard`}>
                    <Csrf session={p.session} />
                    <input type="hidden" name="back" value={back} />
                    <ReasonInput label={`Reason for discarding event ${e.id}`} />
                    <button type="submit" class="danger sm" aria-label={`Discard event ${e.id}`}>
                      Discard
                    </button>
                  </form>
                </td>
              ) : null}
            </tr>
          ))}
        />
        {p.matching > p.rows.length ? (
          <p class="hint">
            Showing the {num(p.rows.length)} most recent of {num(p.matching)}; filter by type or source to narrow.
          </p>
        ) : null}
      </section>
    </Page>
  );
};

/** Step one of retry-all: how many events the filter takes, and the button that does it. */
export const RetryAllPage: FC<{ session: Session; form: DlqFilterForm; count: number }> = (p) => (
  <Page title="Retry all" section="dlq" session={p.session}>
    <div class="confirm">
      <h1>Retry all matching?</h1>
      {p.count === 0 ? (
        <p class="lede">No event in the DLQ matches {filterText(p.form)}.</p>
      ) : p.session.role !== "admin" ? (
        <p class="lede">
          <strong>{num(p.count)}</strong> event(s) in the DLQ match {filterText(p.form)}. Retrying them needs the admin
          token.
        </p>
      ) : (
        <>
          <p class="lede">
            <strong>{num(p.count)}</strong> event(s) in the DLQ match {filterText(p.form)}. They go back to{" "}
            <Badge value="pending" /> with their attempts reset and reach the consumers oldest first, spread at
            REDRIVE_RATE per second.
          </p>
          <form method="post" action="/dashboard/dlq/retry-all" class="actions-bar">
            <Csrf session={p.session} />
            {p.form.type ? <input type="hidden" name="type" value={p.form.type} /> : null}
            {p.form.source ? <input type="hidden" name="source" value={p.form.source} /> : null}
            {p.form.type || p.form.source ? null : <input type="hidden" name="all" value="true" />}
            <button type="submit">Retry {num(p.count)} event(s)</button>
            <a class="btn secondary" href={dlqHref(p.form)}>
              Cancel
            </a>
          </form>
        </>
      )}
      {p.count === 0 || p.session.role !== "admin" ? (
        <a class="btn secondary" href={dlqHref(p.form)}>
          Back to the DLQ
        </a>
      ) : null}
    </div>
  </Page>
);

/** A row the page showed that an action finds gone from the DLQ: someone else acted first. */
const goneFromDlq = (id: string) =>
  new HTTPProblem(409, "Not in the DLQ", `Event ${id} is not in the dead-letter queue (any more).`);

function dlqForm(type: string | undefined, source: string | undefined): DlqFilterForm {
  if ((type?.length ?? 0) > 128 || (source?.length ?? 0) > 256)
    throw new HTTPProblem(422, "Invalid fields", "type: at most 128 characters; source: at most 256");
  return { type, source };
}

async function dlqPage(c: C) {
  const form = dlqForm(query(c, "type"), query(c, "source"));
  const d = await withDb(c, "read", async (db) => {
    const [groups, rows, matching] = await Promise.all([
      dlqGroups(db, 25),
      dlqEvents(db, form, PAGE_SIZE),
      dlqList(db, form, 0).then((x) => x.count),
    ]);
    const total = form.type || form.source ? (await dlqList(db, {}, 0)).count : matching;
    return { groups, rows, matching, total };
  });
  return html(c, <DlqPage session={c.var.session} form={form} {...d} flash={query(c, "flash")} n={query(c, "n")} />);
}

/** The page's routes, registered by ../routes.tsx behind the sign-in. */
export function dlqRoutes(r: DashRouter) {
  r.get("/dlq", dlqPage);
  r.get("/dlq/retry-all", async (c) => {
    const form = dlqForm(query(c, "type"), query(c, "source"));
    const { count } = await listDeadLetters(c, form, 0);
    return html(c, <RetryAllPage session={c.var.session} form={form} count={count} />);
  });
  r.post("/dlq/retry-all", requireAdmin, async (c) => {
    const f = dlqForm(await field(c, "type"), await field(c, "source"));
    // As the admin API: the whole DLQ only when the form says so, never for a post without a filter.
    if (!f.type && !f.source && (await field(c, "all")) !== "true")
      throw new HTTPProblem(422, "Invalid fields", "Retry-all needs a filter, or `all` to retry every DLQ event.", {
        errors: [{ path: "/all", message: "send all=true to retry every DLQ event, or a type/source filter" }],
      });
    const n = await retryDeadLetters(c, f);
    return c.redirect(withFlash(dlqHref(f), "retried-all", n), 303);
  });
  r.post("/dlq/:id/retry", requireAdmin, async (c) => {
    const id = c.req.param("id");
    const back = safeNext(await field(c, "back"));
    await retryDeadLetter(c, id, goneFromDlq);
    return c.redirect(withFlash(back, "retried"), 303);
  });
  r.post("/dlq/:id/discard", requireAdmin, async (c) => {
    const id = c.req.param("id");
    const back = safeNext(await field(c, "back"));
    const reason = await field(c, "reason");
    if (!reason || reason.length > 1000)
      throw new HTTPProblem(422, "Invalid fields", "A reason (1 to 1,000 characters) is needed to discard.", {
        errors: [{ path: "/reason", message: "required, at most 1000 characters" }],
      });
    await discardDeadLetter(c, id, reason, goneFromDlq);
    return c.redirect(withFlash(back, "discarded"), 303);
  });
}
