/** The sign-in page, and the page of a dashboard that has no token configured. */
import type { FC } from "hono/jsx";
import { authFailed, authThrottled } from "../../http/auth-throttle";
import { assetUrls } from "../assets";
import { Flash, Page, Problem } from "../layout";
import { type DashRouter, field, html, query } from "../page-kit";
import { closeSession, openSession, readSession, roleOf, safeNext } from "../session";

export const LoginPage: FC<{ next: string; error?: string; flash?: string; disabled?: boolean }> = (p) => (
  <Page title="Sign in" section="login">
    <div class="login">
      <a class="brand" href="/dashboard">
        <img src={assetUrls.icon} alt="" width="22" height="22" />
        Reflex Edge <small>operator</small>
      </a>
      <div class="card">
        <h1>Sign in</h1>
        {p.disabled ? (
          <Problem
            title="The dashboard is off."
            detail="Set ADMIN_TOKEN (and, for read-only access, METRICS_TOKEN) on this deployment to use it."
          />
        ) : (
          <>
            <p class="lede">
              With the admin token (<code>ADMIN_TOKEN</code>), or with the read-only token (<code>METRICS_TOKEN</code>)
              to look without acting.
            </p>
            <Flash code={p.flash} />
            {p.error ? <Problem title="Not signed in." detail={p.error} /> : null}
            <form method="post" action="/dashboard/login">
              <input type="hidden" name="next" value={p.next} />
              <label>
                Token
                <input type="password" name="token" autocomplete="current-password" required autofocus />
              </label>
              <button type="submit">Sign in</button>
            </form>
            <p class="hint">The session lasts 8 hours, in a cookie only this site can read or send.</p>
          </>
        )}
      </div>
    </div>
  </Page>
);

/** Sign-in, registered by ../routes.tsx before the sign-in is required. */
export function signInRoutes(r: DashRouter) {
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
}

/** Sign-out, registered by ../routes.tsx behind the sign-in. */
export function signOutRoutes(r: DashRouter) {
  r.post("/logout", (c) => {
    closeSession(c);
    return c.redirect("/dashboard/login?flash=signed-out", 303);
  });
}
