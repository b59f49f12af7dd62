/**
 * The operator dashboard, mounted by src/app.ts under /dashboard: server-rendered pages
 * (hono/jsx) over the admin API's queries, one style sheet and one small script served
 * from here (./assets.ts), nothing from elsewhere.
 *
 *   GET  /dashboard/login, POST /dashboard/login, POST /dashboard/logout     (./session.ts)
 *   GET  /dashboard                  overview
 *   GET  /dashboard/events[?type&source&status&from&to&correlation&cursor]
 *   GET  /dashboard/events/:id       POST /dashboard/events/:id/replay
 *   GET  /dashboard/dlq[?type&source] GET|POST /dashboard/dlq/retry-all
 *   POST /dashboard/dlq/:id/retry    POST /dashboard/dlq/:id/discard
 *   GET  /dashboard/scopes           POST /dashboard/scopes/retry, /dashboard/scopes/discard {scope[, reason]}
 *   GET  /dashboard/replays          POST /dashboard/replays, /dashboard/replays/:id/cancel
 *   GET  /dashboard/destinations
 *
 * Every response carries a strict Content-Security-Policy (scripts, styles and images from
 * this origin only, nothing inline, no framing) and Cache-Control: no-store, except the
 * hashed assets. Actions answer 303 to the page they came from, with a fixed message.
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { csrf } from "hono/csrf";
import { HTTPException } from "hono/http-exception";
import type { JSX } from "hono/jsx/jsx-runtime";
import { secureHeaders } from "hono/secure-headers";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { openBackend, openCache } from "../backends";
import type { Config } from "../config";
import type { Db } from "../db/client";
import { deliveryAttemptsFor } from "../db/deliveries";
import { parkedCounts } from "../db/ordered";
import { type EventStatus, eventStatus } from "../db/schema";
import { stepsOfEvent } from "../db/steps";
import { breakerStates } from "../destinations";
import { TRIGGER_PREFIX } from "../destinations/runtime";
import { authFailed, authThrottled } from "../http/auth-throttle";
import { onError, toProblem } from "../http/errors";
import { HTTPProblem, type ProblemError } from "../http/problem";
import { byId, withDb } from "../operations/db-scope";
import { destinationStatus } from "../operations/destination-status";
import { discardDeadLetter, listDeadLetters, retryDeadLetter, retryDeadLetters } from "../operations/dlq-actions";
import { attemptHistory, eventNotFound } from "../operations/event-history";
import { parkedScopes, UnparkBody, unparkParkedScope } from "../operations/parked-scopes";
import {
  cancelReplayJob,
  NewReplayBody,
  replayJobs,
  replayOneEvent,
  replayView,
  startReplayJob,
} from "../operations/replay-jobs";
import {
  ancestors,
  destinationFigures,
  dlqEvents,
  dlqGroups,
  lastDeliveryErrors,
  type MinuteBucket,
  minuteSeries,
  searchEvents,
} from "../reads/dashboard-queries";
import { decodeCursor, dlqList, getEvent } from "../reads/event-queries";
import { openCounts } from "../reads/open-counts";
import { listReplays } from "../reads/replay-queries";
import { defaultTriggers } from "../triggers";
import { asset } from "./assets";
import type { DashEnv } from "./env";
import { Page, Problem } from "./layout";
import { DestinationsPage } from "./pages/destinations";
import { type DlqFilterForm, DlqPage, dlqHref, RetryAllPage } from "./pages/dlq";
import { EventPage } from "./pages/event";
import { EventsPage, type SearchForm } from "./pages/events";
import { LoginPage } from "./pages/login";
import { OverviewPage } from "./pages/overview";
import { type ReplayForm, ReplaysPage } from "./pages/replays";
import { type FailedIn, ScopesPage } from "./pages/scopes";
import {
  closeSession,
  dashboardEnabled,
  openSession,
  readSession,
  requireAdmin,
  requireCsrfToken,
  requireSession,
  roleOf,
  safeNext,
} from "./session";

type C = Context<DashEnv>;

const PAGE_SIZE = 50;

function html(c: C, node: JSX.Element, status: ContentfulStatusCode = 200) {
  return c.html(`<!doctype html>${node}`, status);
}

/** A form field as a trimmed string; empty and absent are both undefined. */
async function field(c: C, name: string): Promise<string | undefined> {
  const v = (await c.req.parseBody())[name];
  return typeof v === "string" && v.trim() !== "" ? v.trim() : undefined;
}

const query = (c: C, name: string) => {
  const v = c.req.query(name);
  return v !== undefined && v.trim() !== "" ? v.trim() : undefined;
};

/** `back` with a flash code (and a count) added, for the 303 after an action. */
function withFlash(back: string, code: string, n?: number): string {
  const u = new URL(back, "http://dashboard.invalid");
  u.searchParams.set("flash", code);
  if (n !== undefined) u.searchParams.set("n", String(n));
  return `${u.pathname}${u.search}${u.hash}`;
}

/**
 * A datetime-local value ("2026-05-01T10:00" or with seconds) read as UTC, or any ISO 8601
 * date-time with a zone. undefined for empty; null when it is neither.
 */
function utcInput(v: string | undefined): string | undefined | null {
  if (v === undefined) return undefined;
  const s = /^\d{4}-\d\d-\d\dT\d\d:\d\d$/.test(v)
    ? `${v}:00Z`
    : /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$/.test(v)
      ? `${v}Z`
      : v;
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/.test(s) || Number.isNaN(Date.parse(s)))
    return null;
  return new Date(s).toISOString();
}

/** An ISO instant as a datetime-local value in UTC (seconds kept). */
const localInput = (iso: string) => iso.slice(0, 19);

const csv = (v: string | undefined) =>
  v
    ?.split(",")
    .map((x) => x.trim())
    .filter(Boolean);

function isStatus(v: string | undefined): v is EventStatus {
  return v !== undefined && (eventStatus.enumValues as readonly string[]).includes(v);
}

const originCheck = csrf();

/** Origin check of every POST (Origin or Sec-Fetch-Site, hono/csrf), as a problem when refused. */
const sameOrigin: MiddlewareHandler<DashEnv> = async (c, next) => {
  try {
    await originCheck(c, async () => {});
  } catch (e) {
    if (e instanceof HTTPException && e.status === 403) {
      throw new HTTPProblem(
        403,
        "Cross-site request refused",
        "Actions are accepted only from this dashboard's own pages.",
      );
    }
    throw e;
  }
  await next();
};

/** Problems render as an HTML page with their status (the admin API has the JSON ones). */
async function errorPage(err: Error, c: C): Promise<Response> {
  const p = toProblem(err);
  if (p.status >= 500 && !(err instanceof HTTPProblem)) onError(err, c); // logged there; its JSON answer is not sent
  let session = null;
  try {
    session = c.var.session ?? (c.var.config ? await readSession(c) : null);
  } catch {
    session = null;
  }
  const errors = (p.body.errors ?? []).map((e: ProblemError) => ({
    field: e.path ?? e.query ?? e.param ?? e.header ?? "",
    message: e.message,
  }));
  const res = html(
    c,
    <Page title={p.body.title} section="error" session={session}>
      <div class="confirm">
        <h1>{p.body.title}</h1>
        <Problem title={`${p.status}.`} detail={p.body.detail} errors={errors} />
        <p>
          <a href={session ? "/dashboard" : "/dashboard/login"}>{session ? "Back to the overview" : "Sign in"}</a>
        </p>
      </div>
    </Page>,
    p.status,
  );
  for (const [k, v] of Object.entries(p.headers)) res.headers.set(k, v);
  return res;
}

/**
 * The per-minute series, shared by every open overview for CACHE_HEALTH_TTL_S (the hot
 * cache, like /health/detailed's figures): it is the overview's one scan of the hour.
 */
async function cachedSeries(cfg: Config, db: Db, now: Date): Promise<MinuteBucket[]> {
  const cache = openCache(cfg);
  const hit = await cache.get<MinuteBucket[]>("dashboard:series");
  if (hit) return hit;
  const series = await minuteSeries(db, now);
  await cache.set("dashboard:series", series, cfg.CACHE_HEALTH_TTL_S);
  return series;
}

async function overview(c: C) {
  const now = new Date();
  const { d, degraded } = await withDb(c, "write", async (db, cfg, h) => {
    const backend = openBackend(cfg, h);
    const laneNames = [...backend.store.lanes(), backend.replayLane().name];
    const [lanes, counts, parked, breakers, replays, series] = await Promise.all([
      Promise.all(laneNames.map((l) => backend.store.laneStats(l))).catch((e: Error) => ({
        error: String(e.message).slice(0, 200),
      })),
      openCounts(db, now),
      parkedCounts(db),
      breakerStates(db, cfg, now),
      listReplays(db, 100, "running").then(async (r) => [...r, ...(await listReplays(db, 100, "scheduled"))]),
      cachedSeries(cfg, db, now),
    ]);
    return {
      d: { backend: backend.kind, checkedAt: now.toISOString(), counts, parked, lanes, breakers, replays, series },
      degraded: "error" in lanes,
    };
  });
  // A dependency that could not be read makes the page a 503 (it still shows what it could).
  return html(c, <OverviewPage session={c.var.session} d={d} t={c.var.config} />, degraded ? 503 : 200);
}

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

async function destinationsPage(c: C) {
  const cfg = c.var.config;
  const now = new Date();
  const names = cfg.DESTINATIONS.map((d) => d.name);
  const list = await withDb(c, "write", async (db) => {
    const [status, figures, errors] = await Promise.all([
      destinationStatus(db, cfg, now),
      destinationFigures(db, names, new Date(now.getTime() - 3_600_000)),
      Promise.all(names.map((n) => lastDeliveryErrors(db, n, new Date(now.getTime() - 86_400_000), 5))),
    ]);
    return status.map((d, i) => ({
      name: d.name,
      url: d.url,
      types: d.filter.types,
      sources: d.filter.sources,
      breaker: d.breaker,
      figures: figures[i]!,
      errors: errors[i]!,
    }));
  });
  return html(
    c,
    <DestinationsPage session={c.var.session} list={list} cooldownS={cfg.DESTINATION_BREAKER_COOLDOWN_S} />,
  );
}

export function dashboardRoutes() {
  const r = new Hono<DashEnv>();
  r.onError(errorPage);
  r.use(
    "*",
    secureHeaders({
      contentSecurityPolicy: {
        defaultSrc: ["'none'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'"],
        connectSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
      },
      xFrameOptions: "DENY",
      referrerPolicy: "same-origin",
    }),
  );

  r.get("/assets/:name", (c) => {
    const a = asset(c.req.param("name"));
    if (!a) throw new HTTPProblem(404, "Not Found", `No dashboard asset ${c.req.param("name")}.`);
    return c.body(a.body, 200, { "content-type": a.type, "cache-control": "public, max-age=31536000, immutable" });
  });

  r.use("*", async (c, next) => {
    c.header("cache-control", "no-store");
    // No configuration here means a path no page serves (src/http/config.ts lets those through).
    if (!c.var.config) throw new HTTPProblem(404, "Not Found", `No dashboard page ${new URL(c.req.url).pathname}.`);
    if (!dashboardEnabled(c.var.config)) {
      return html(c, <LoginPage next="/dashboard" disabled />, 503);
    }
    await next();
  });
  r.post("*", sameOrigin);

  r.get("/login", async (c) => {
    if (await readSession(c)) return c.redirect(safeNext(c.req.query("next")), 303);
    return html(c, <LoginPage next={safeNext(c.req.query("next"))} flash={query(c, "flash")} />);
  });
  r.post("/login", async (c) => {
    const next = safeNext(await field(c, "next"));
    const token = (await c.req.parseBody()).token;
    const throttled = await authThrottled(c, "dashboard");
    if (throttled) throw throttled;
    const role = typeof token === "string" && token !== "" ? await roleOf(c.var.config, token) : null;
    if (!role) {
      if (typeof token === "string" && token !== "") await authFailed(c, "dashboard");
      return html(c, <LoginPage next={next} error="That token is not valid here." />, 403);
    }
    await openSession(c, role);
    return c.redirect(next, 303);
  });

  r.use("*", requireSession);
  r.post("*", requireCsrfToken);

  r.post("/logout", (c) => {
    closeSession(c);
    return c.redirect("/dashboard/login?flash=signed-out", 303);
  });

  r.get("/", overview);
  r.get("/events", eventsPage);
  r.get("/events/:id", eventPage);
  r.post("/events/:id/replay", requireAdmin, replayEvent);

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

  r.get("/scopes", scopesPage);
  r.post("/scopes/retry", requireAdmin, (c) => unparkFromForm(c, "retry"));
  r.post("/scopes/discard", requireAdmin, (c) => unparkFromForm(c, "discard"));

  r.get("/replays", (c) => replaysPage(c));
  r.post("/replays", requireAdmin, startReplayFromForm);
  r.post("/replays/:id/cancel", requireAdmin, async (c) => {
    const id = c.req.param("id");
    await cancelReplayJob(c, id);
    return c.redirect(withFlash(`/dashboard/replays#job-${id}`, "replay-cancelled"), 303);
  });

  r.get("/destinations", destinationsPage);

  r.all("*", (c) => {
    throw new HTTPProblem(404, "Not Found", `No dashboard page ${new URL(c.req.url).pathname}.`);
  });
  return r;
}
