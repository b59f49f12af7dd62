/** The sign-in page, and the page of a dashboard that has no token configured. */
import type { FC } from "hono/jsx";
import { assetUrls } from "../assets";
import { Flash, Page, Problem } from "../layout";

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
