/**
 * Replays: the jobs with a live progress bar each (scanned, republished, rate, time left),
 * cancel, and the form that starts one (range, types, sources, target, dry run, rate).
 * While a job is scheduled or running the list refreshes itself every 3 s.
 */
import type { FC } from "hono/jsx";
import { HTTPProblem } from "../../http/problem";
import { cancelReplayJob, NewReplayBody, replayJobs, replayView, startReplayJob } from "../../operations/replay-jobs";
import { defaultTriggers } from "../../triggers";
import type { Session } from "../env";
import { Badge, Csrf, duration, Flash, num, Page, Problem, StatusSelect, Table, Time, utc } from "../layout";
import { type C, csv, type DashRouter, field, html, localInput, query, utcInput, withFlash } from "../page-kit";
import { requireAdmin } from "../session";

type Job = ReturnType<typeof replayView>;

/** The start form as typed, to show it again when it is refused. */
export interface ReplayForm {
  from?: string;
  to?: string;
  types?: string;
  sources?: string;
  status?: string;
  target?: string;
  dry_run?: boolean;
  rate?: string;
}

const LIVE = new Set(["scheduled", "running"]);

const Progress: FC<{ j: Job }> = ({ j }) => {
  const pct = Math.round(j.progress * 100);
  const total = j.total_estimate;
  return (
    <div>
      <progress max={1} value={j.progress} aria-label={`Replay ${j.id.slice(0, 8)}: ${pct}%`}>
        {pct}%
      </progress>
      <div class="progress-text">
        {pct}% · {num(j.scanned)}
        {total !== null ? ` of ${num(total)}` : ""} scanned · {num(j.republished)} republished
        {j.dry_run ? " (dry run)" : ""} · {num(j.rate)}/s
        {LIVE.has(j.status) ? ` · ${j.eta_s === null ? "time left unknown" : `${duration(j.eta_s)} left`}` : ""}
      </div>
    </div>
  );
};

const filterText = (j: Job) =>
  [
    j.filter.types ? `types ${j.filter.types.join(", ")}` : "",
    j.filter.sources ? `sources ${j.filter.sources.join(", ")}` : "",
    j.filter.status ? `status ${j.filter.status}` : "",
  ]
    .filter(Boolean)
    .join("; ") || "every event";

export const ReplaysPage: FC<{
  session: Session;
  jobs: Job[];
  form: ReplayForm;
  targets: string[];
  maxRate: number;
  defaultRate: number;
  errors?: Array<{ field: string; message: string }>;
  flash?: string;
}> = (p) => {
  const admin = p.session.role === "admin";
  const live = p.jobs.some((j) => LIVE.has(j.status));
  return (
    <Page title="Replays" section="replays" session={p.session} noscriptRefresh={live ? 15 : undefined}>
      <div class="head">
        <div>
          <h1>Replays</h1>
          <p class="lede">
            Jobs republish history behind live traffic, in their own lane; copies get new ids and point at their
            original.
          </p>
        </div>
      </div>
      <Flash code={p.flash} />
      <section id="replay-jobs" data-refresh={live ? "3" : undefined} aria-labelledby="jobs-h">
        <h2 id="jobs-h">Jobs</h2>
        <Table
          cols={[
            "Job",
            "Status",
            "Range and filter",
            "Progress",
            ...(admin ? [{ label: "Actions", hidden: true }] : []),
          ]}
          empty="No replay yet."
          rows={p.jobs.map((j) => (
            <tr id={`job-${j.id}`}>
              <td>
                <span class="mono" title={j.id}>
                  {j.id.slice(0, 8)}
                </span>
                <div class="progress-text">
                  created <Time at={j.created_at} />
                </div>
              </td>
              <td>
                <Badge value={j.status} />
                {j.errors.length ? <div class="err">{j.errors[j.errors.length - 1]!.error}</div> : null}
              </td>
              <td>
                <div class="nowrap">
                  {utc(j.filter.from)} → {utc(j.filter.to)}
                </div>
                <div class="progress-text">
                  {filterText(j)}
                  {j.target ? ` · target ${j.target}` : ""}
                </div>
              </td>
              <td>
                <Progress j={j} />
              </td>
              {admin ? (
                <td class="actions">
                  {LIVE.has(j.status) ? (
                    <form
                      method="post"
                      action={`/dashboard/replays/${j.id}/cancel`}
                      data-confirm="Cancel this replay? Copies already published stay."
                    >
                      <Csrf session={p.session} />
                      <button type="submit" class="danger sm" aria-label={`Cancel replay ${j.id}`}>
                        Cancel
                      </button>
                    </form>
                  ) : null}
                </td>
              ) : null}
            </tr>
          ))}
        />
        <p class="live" aria-live="polite">
          {live ? "Following the running jobs." : "No job running."} The replay runner advances jobs every 2 minutes.
        </p>
      </section>

      {admin ? (
        <section aria-labelledby="start-h">
          <h2 id="start-h">Start a replay</h2>
          {p.errors?.length ? <Problem title="The replay was not started." errors={p.errors} /> : null}
          <form class="stack card" method="post" action="/dashboard/replays">
            <Csrf session={p.session} />
            <div class="row">
              <label>
                From (UTC)
                <input type="datetime-local" name="from" step={1} required value={p.form.from ?? ""} />
                <span class="hint">inclusive, on the events' own timestamps</span>
              </label>
              <label>
                To (UTC)
                <input type="datetime-local" name="to" step={1} value={p.form.to ?? ""} />
                <span class="hint">empty: now</span>
              </label>
            </div>
            <div class="row">
              <label>
                Types
                <input name="types" value={p.form.types ?? ""} placeholder="order.created, order.paid" />
                <span class="hint">comma-separated; empty: all</span>
              </label>
              <label>
                Sources
                <input name="sources" value={p.form.sources ?? ""} placeholder="shopify" />
                <span class="hint">comma-separated; empty: all</span>
              </label>
            </div>
            <div class="row">
              <label for="replay-status">
                Status
                <StatusSelect id="replay-status" value={p.form.status} />
                <span class="hint">only events whose history status is this</span>
              </label>
              <label>
                Target
                <input name="target" list="replay-targets" value={p.form.target ?? ""} maxlength={128} />
                <span class="hint">one trigger or destination; empty: all</span>
                <datalist id="replay-targets">
                  {p.targets.map((t) => (
                    <option value={t} />
                  ))}
                </datalist>
              </label>
            </div>
            <div class="row">
              <label>
                Rate
                <input
                  type="number"
                  name="rate"
                  min={1}
                  max={p.maxRate}
                  placeholder={String(p.defaultRate)}
                  value={p.form.rate ?? ""}
                />
                <span class="hint">events per second, at most {num(p.maxRate)}</span>
              </label>
              <label class="check">
                <input type="checkbox" name="dry_run" value="on" checked={p.form.dry_run ?? false} />
                Dry run: count what would be replayed, publish nothing
              </label>
            </div>
            <div>
              <button type="submit">Start replay</button>
            </div>
          </form>
        </section>
      ) : null}
    </Page>
  );
};

async function replaysPage(c: C, form: ReplayForm = {}, errors?: Array<{ field: string; message: string }>) {
  const cfg = c.var.config;
  const jobs = await replayJobs(c, 50);
  const now = new Date();
  const targets = [...new Set([...defaultTriggers.list().map((t) => t.name), ...cfg.DESTINATIONS.map((d) => d.name)])];
  return html(
    c,
    <ReplaysPage
      session={c.var.session}
      jobs={jobs.map((j) => replayView(j, now))}
      form={{ from: localInput(new Date(now.getTime() - 3_600_000).toISOString()), ...form }}
      targets={targets}
      maxRate={cfg.REPLAY_MAX_RATE}
      defaultRate={Math.min(cfg.REPLAY_DEFAULT_RATE, cfg.REPLAY_MAX_RATE)}
      errors={errors}
      flash={query(c, "flash")}
    />,
    errors?.length ? 422 : 200,
  );
}

async function startReplayFromForm(c: C) {
  const form: ReplayForm = {
    from: await field(c, "from"),
    to: await field(c, "to"),
    types: await field(c, "types"),
    sources: await field(c, "sources"),
    status: await field(c, "status"),
    target: await field(c, "target"),
    dry_run: (await field(c, "dry_run")) === "on",
    rate: await field(c, "rate"),
  };
  const errors: Array<{ field: string; message: string }> = [];
  const from = utcInput(form.from);
  const to = utcInput(form.to);
  if (!from) errors.push({ field: "from", message: "a date and time (UTC) is required" });
  if (to === null) errors.push({ field: "to", message: "a date and time (UTC), or empty for now" });
  const rate = form.rate === undefined ? undefined : Number(form.rate);
  const body = NewReplayBody.safeParse({
    from: from ?? undefined,
    to: to ?? undefined,
    types: csv(form.types),
    sources: csv(form.sources),
    status: form.status,
    target: form.target,
    dry_run: form.dry_run,
    rate,
  });
  if (!body.success)
    for (const i of body.error.issues)
      if (!errors.some((e) => e.field === String(i.path[0])))
        errors.push({ field: i.path.join("."), message: i.message });
  if (errors.length || !body.success) return replaysPage(c, form, errors);
  try {
    const job = await startReplayJob(c, body.data);
    return c.redirect(withFlash(`/dashboard/replays#job-${job.id}`, "replay-started"), 303);
  } catch (e) {
    if (e instanceof HTTPProblem && e.status === 422) {
      const refused = (e.body.errors ?? []).map((x) => ({
        field: (x.path ?? "").replace(/^\//, ""),
        message: x.message,
      }));
      return replaysPage(c, form, refused);
    }
    throw e;
  }
}

/** The page's routes, registered by ../routes.tsx behind the sign-in. */
export function replaysRoutes(r: DashRouter) {
  r.get("/replays", (c) => replaysPage(c));
  r.post("/replays", requireAdmin, startReplayFromForm);
  r.post("/replays/:id/cancel", requireAdmin, async (c) => {
    const id = c.req.param("id");
    await cancelReplayJob(c, id);
    return c.redirect(withFlash(`/dashboard/replays#job-${id}`, "replay-cancelled"), 303);
  });
}
