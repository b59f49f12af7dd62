/**
 * The operator dashboard, mounted by src/app.ts under /dashboard: server-rendered pages
 * (hono/jsx) over the operations the admin API calls too (src/operations/), one style sheet
 * and one small script served from here (./assets.ts), nothing from elsewhere. Each page's
 * routes sit beside its component in ./pages/; this file mounts them behind the headers,
 * the origin check, the sign-in and the anti-forgery token, and renders problems as pages.
 *
 *   GET  /dashboard/login, POST /dashboard/login, POST /dashboard/logout     (./pages/login.tsx, ./session.ts)
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
import { Hono, type MiddlewareHandler } from "hono";
import { csrf } from "hono/csrf";
import { HTTPException } from "hono/http-exception";
import { secureHeaders } from "hono/secure-headers";
import { onError, toProblem } from "../http/error-handler";
import { HTTPProblem, type ProblemError } from "../http/problem";
import { asset } from "./assets";
import type { DashEnv } from "./env";
import { Page, Problem } from "./layout";
import { type C, html } from "./page-kit";
import { destinationsRoutes } from "./pages/destinations";
import { dlqRoutes } from "./pages/dlq";
import { eventRoutes } from "./pages/event";
import { eventsRoutes } from "./pages/events";
import { LoginPage, signInRoutes, signOutRoutes } from "./pages/login";
import { overviewRoutes } from "./pages/overview";
import { replaysRoutes } from "./pages/replays";
import { scopesRoutes } from "./pages/scopes";
import { dashboardEnabled, readSession, requireCsrfToken, requireSession } from "./session";

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

  signInRoutes(r);

  r.use("*", requireSession);
  r.post("*", requireCsrfToken);

  signOutRoutes(r);

  // Each page's routes, from ./pages/ (the 404 below is registered after all of them).
  overviewRoutes(r);
  eventsRoutes(r);
  eventRoutes(r);
  dlqRoutes(r);
  scopesRoutes(r);
  replaysRoutes(r);
  destinationsRoutes(r);

  r.all("*", (c) => {
    throw new HTTPProblem(404, "Not Found", `No dashboard page ${new URL(c.req.url).pathname}.`);
  });
  return r;
}
