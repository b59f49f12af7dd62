/** Events: search history by type, source, status, time range and correlation id, keyset pages. */
import type { FC } from "hono/jsx";
import type { EventSummary } from "../../reads/dashboard-queries";
import type { Session } from "../env";
import { Badge, EventLink, Flash, num, Page, Problem, StatusSelect, Table, Time } from "../layout";

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
