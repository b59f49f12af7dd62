/** Destinations: breaker state, success rate and latency over the last hour, last errors. */
import type { FC } from "hono/jsx";
import type { BreakerStatus } from "../../destinations";
import { withDb } from "../../operations/db-scope";
import { destinationStatus } from "../../operations/destination-status";
import type { DeliveryError, DestinationFigures } from "../../reads/dashboard-queries";
import { destinationFigures, lastDeliveryErrors } from "../../reads/dashboard-queries";
import type { Session } from "../env";
import { Badge, duration, EventLink, millis, num, Page, Table, Time } from "../layout";
import { type C, type DashRouter, html } from "../page-kit";

export interface DestinationView {
  name: string;
  /** Origin and path only: credentials and query strings (tokens live there) are not shown. */
  url: string;
  types: string[] | undefined;
  sources: string[] | undefined;
  breaker: BreakerStatus;
  figures: DestinationFigures;
  errors: DeliveryError[];
}

export const DestinationsPage: FC<{ session: Session; list: DestinationView[]; cooldownS: number }> = (p) => (
  <Page title="Destinations" section="destinations" session={p.session}>
    <div class="head">
      <div>
        <h1>Destinations</h1>
        <p class="lede">
          HTTP endpoints from <code>DESTINATIONS</code>. Figures cover the last hour; errors the last day.
        </p>
      </div>
    </div>
    {p.list.length === 0 ? (
      <p class="card empty">
        No destination is configured. Set <code>DESTINATIONS</code> to POST matching events to HTTP endpoints.
      </p>
    ) : null}
    {p.list.map((d) => {
      const rate = d.figures.attempts ? d.figures.succeeded / d.figures.attempts : null;
      return (
        <section id={`dest-${d.name}`} aria-labelledby={`dest-${d.name}-h`}>
          <h2 id={`dest-${d.name}-h`}>
            {d.name} <Badge value={d.breaker.state} />
          </h2>
          <div class="grid2">
            <div class="card">
              <dl class="facts">
                <dt>URL</dt>
                <dd class="mono">{d.url}</dd>
                <dt>Filter</dt>
                <dd>
                  {d.types?.length ? `types ${d.types.join(", ")}` : "every type"}
                  {d.sources?.length ? `; sources ${d.sources.join(", ")}` : ""}
                </dd>
                <dt>Breaker</dt>
                <dd>
                  {d.breaker.state}, {num(d.breaker.failures)} consecutive failure(s)
                </dd>
                {d.breaker.opened_at ? (
                  <>
                    <dt>Opened</dt>
                    <dd>
                      <Time at={d.breaker.opened_at} />
                    </dd>
                  </>
                ) : null}
                {d.breaker.next_probe_at ? (
                  <>
                    <dt>Next probe</dt>
                    <dd>
                      <Time at={d.breaker.next_probe_at} />
                    </dd>
                  </>
                ) : null}
              </dl>
            </div>
            <dl class="tiles">
              <div class={rate !== null && rate < 0.9 ? "tile degraded" : "tile"}>
                <dt>Success, 1 h</dt>
                <dd>
                  {rate === null ? "-" : `${(rate * 100).toFixed(rate === 1 ? 0 : 1)}%`}
                  <small>
                    {num(d.figures.succeeded)} of {num(d.figures.attempts)} deliveries
                  </small>
                </dd>
              </div>
              <div class="tile">
                <dt>Latency p50</dt>
                <dd>
                  {millis(d.figures.p50_ms)}
                  <small>p95 {millis(d.figures.p95_ms)}</small>
                </dd>
              </div>
              <div class="tile">
                <dt>Last delivery</dt>
                <dd class="text">
                  <Time at={d.figures.last_at} />
                </dd>
              </div>
            </dl>
          </div>
          <h3>Last errors</h3>
          <Table
            cols={["At", "Event", { label: "Attempt", num: true }, "Status", "Error"]}
            empty="No failed delivery in the last day."
            rows={d.errors.map((x) => (
              <tr>
                <td>
                  <Time at={x.at} />
                </td>
                <td>
                  <EventLink id={x.event_id} short />
                </td>
                <td class="num">{x.attempt}</td>
                <td class="mono">{x.status_code ?? "-"}</td>
                <td class="err">{x.error}</td>
              </tr>
            ))}
          />
        </section>
      );
    })}
    {p.list.length ? (
      <p class="hint">
        A breaker opens after consecutive failures and waits {duration(p.cooldownS)} (doubling after each failed probe)
        before one event probes it; while open, events wait without using attempts.
      </p>
    ) : null}
  </Page>
);

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

/** The page's routes, registered by ../routes.tsx behind the sign-in. */
export function destinationsRoutes(r: DashRouter) {
  r.get("/destinations", destinationsPage);
}
