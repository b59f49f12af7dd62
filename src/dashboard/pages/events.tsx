/** Events: search history by type, source, status, time range and correlation id, keyset pages. */
import type { FC } from "hono/jsx";
import { type EventStatus, eventStatus } from "../../db/schema";
import { withDb } from "../../operations/db-scope";
import type { EventSummary } from "../../reads/dashboard-queries";
import { searchEvents } from "../../reads/dashboard-queries";
import { decodeCursor } from "../../reads/event-queries";
import type { Session } from "../env";
import { Badge, EventLink, Flash, num, Page, Problem, StatusSelect, Table, Time } from "../layout";
import { type C, type DashRouter, html, isStatus, PAGE_SIZE, query, utcInput } from "../page-kit";

/** The search as typed (datetime-local values stay as the browser sent them). */
export interface SearchForm {
  type?: string;
  source?: string;
  status?: string;
  from?: string;
  to?: string;
  correlation?: string;
  cursor?: string;
}

export function searchHref(f: SearchForm, cursor?: string): string {
  const q = new URLSearchParams();
  for (const k of ["type", "source", "status", "from", "to", "correlation"] as const) if (f[k]) q.set(k, f[k]!);
  if (cursor) q.set("cursor", cursor);
  const s = q.toString();
  return `/dashboard/events${s ? `?${s}` : ""}`;
}

export const EventsPage: FC<{
  session: Session;
  form: SearchForm;
  rows: EventSummary[];
  next: string | null;
  errors?: Array<{ field: string; message: string }>;
  flash?: string;
}> = (p) => (
  <Page title="Events" section="events" session={p.session}>
    <div class="head">
      <div>
        <h1>Events</h1>
        <p class="lede">History, newest first. Times are UTC; the range applies to the event's own timestamp.</p>
      </div>
    </div>
    <Flash code={p.flash} />
    {p.errors?.length ? <Problem title="The search was not run." errors={p.errors} /> : null}
    <form class="filters card" method="get" action="/dashboard/events" aria-label="Search events">
      <label>
        Type
        <input name="type" value={p.form.type ?? ""} placeholder="e.g. order.created" maxlength={128} />
      </label>
      <label>
        Source
        <input name="source" value={p.form.source ?? ""} placeholder="e.g. stripe" maxlength={256} />
      </label>
      <label for="search-status">
        Status
        <StatusSelect id="search-status" value={p.form.status} />
      </label>
      <label>
        From (UTC)
        <input type="datetime-local" name="from" step={1} value={p.form.from ?? ""} />
      </label>
      <label>
        To (UTC)
        <input type="datetime-local" name="to" step={1} value={p.form.to ?? ""} />
      </label>
      <label>
        Correlation id
        <input name="correlation" value={p.form.correlation ?? ""} maxlength={128} class="mono" />
      </label>
      <div class="actions-bar">
        <button type="submit">Search</button>
        <a class="btn secondary" href="/dashboard/events">
          Clear
        </a>
      </div>
    </form>
    <Table
      caption="Events matching the search, newest first"
      cols={["Time", "Event", "Type", "Source", "Status", { label: "Attempts", num: true }, "Last error"]}
      empty="No event matches."
      rows={p.rows.map((e) => (
        <tr>
          <td>
            <Time at={e.timestamp} />
          </td>
          <td>
            <EventLink id={e.id} short />
            {e.replay ? <span class="muted"> (replay)</span> : null}
          </td>
          <td>{e.type}</td>
          <td>{e.source}</td>
          <td>
            <Badge value={e.status} />
          </td>
          <td class="num">{num(e.attempts)}</td>
          <td class="err">{e.last_error ?? ""}</td>
        </tr>
      ))}
    />
    <nav class="pager" aria-label="Pages">
      {p.form.cursor ? (
        <a class="btn secondary sm" href={searchHref(p.form)}>
          Newest
        </a>
      ) : null}
      {p.next ? (
        <a class="btn secondary sm" href={searchHref(p.form, p.next)} rel="next">
          Older
        </a>
      ) : null}
    </nav>
  </Page>
);

function searchForm(c: C): { form: SearchForm; errors: Array<{ field: string; message: string }> } {
  const form: SearchForm = {
    type: query(c, "type"),
    source: query(c, "source"),
    status: query(c, "status"),
    from: query(c, "from"),
    to: query(c, "to"),
    correlation: query(c, "correlation"),
    cursor: query(c, "cursor"),
  };
  const errors: Array<{ field: string; message: string }> = [];
  if (form.status !== undefined && !isStatus(form.status))
    errors.push({ field: "status", message: `one of ${eventStatus.enumValues.join(", ")}` });
  for (const k of ["from", "to"] as const)
    if (utcInput(form[k]) === null) errors.push({ field: k, message: "a date and time (UTC)" });
  if ((form.type?.length ?? 0) > 128) errors.push({ field: "type", message: "at most 128 characters" });
  if ((form.source?.length ?? 0) > 256) errors.push({ field: "source", message: "at most 256 characters" });
  if ((form.correlation?.length ?? 0) > 128) errors.push({ field: "correlation", message: "at most 128 characters" });
  if (form.cursor !== undefined && decodeCursor(form.cursor) === null)
    errors.push({ field: "cursor", message: "not a cursor this dashboard handed out" });
  return { form, errors };
}

async function eventsPage(c: C) {
  const { form, errors } = searchForm(c);
  if (errors.length)
    return html(c, <EventsPage session={c.var.session} form={form} rows={[]} next={null} errors={errors} />, 422);
  const cursor = form.cursor ? decodeCursor(form.cursor)! : undefined;
  const page = await withDb(c, "read", (db) =>
    searchEvents(
      db,
      {
        type: form.type,
        source: form.source,
        status: form.status as EventStatus | undefined,
        from: utcInput(form.from) ?? undefined,
        to: utcInput(form.to) ?? undefined,
        correlation: form.correlation,
      },
      { ...(cursor ? { cursor } : {}), limit: PAGE_SIZE },
    ),
  );
  return html(
    c,
    <EventsPage
      session={c.var.session}
      form={form}
      rows={page.events}
      next={page.next_cursor}
      flash={query(c, "flash")}
    />,
  );
}

/** The page's routes, registered by ../routes.tsx behind the sign-in. */
export function eventsRoutes(r: DashRouter) {
  r.get("/events", eventsPage);
}
