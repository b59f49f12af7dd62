/**
 * Overview: traffic per minute over the last hour, backlog and lag per lane, pending and
 * oldest pending, DLQ size, parked scopes, replays running, each destination's breaker. The
 * figures region refreshes itself (every 10 s with the script, every 30 s without).
 */
import type { Child, FC } from "hono/jsx";
import { openBackend, openCache } from "../../backends";
import type { LaneStats } from "../../backends/types";
import type { Config } from "../../config";
import type { ParkedCounts } from "../../consume/ordered-sql";
import { parkedCounts } from "../../consume/ordered-sql";
import type { Db } from "../../db/client";
import type { BreakerStatus } from "../../destinations";
import { breakerStates } from "../../destinations";
import { withDb } from "../../operations/db-scope";
import type { MinuteBucket } from "../../reads/dashboard-queries";
import { minuteSeries } from "../../reads/dashboard-queries";
import type { OpenCounts } from "../../reads/open-counts";
import { openCounts } from "../../reads/open-counts";
import type { ReplayJob } from "../../reads/replay-queries";
import { listReplays } from "../../reads/replay-queries";
import { BarChart, type Series } from "../chart";
import type { Session } from "../env";
import { Badge, duration, num, Page, Problem, Table, Time } from "../layout";
import { type C, type DashRouter, html } from "../page-kit";

export interface OverviewData {
  backend: "redis" | "postgres";
  checkedAt: string;
  counts: OpenCounts;
  parked: ParkedCounts;
  lanes: LaneStats[] | { error: string };
  breakers: BreakerStatus[];
  replays: ReplayJob[];
  series: MinuteBucket[];
}

type Thresholds = Pick<
  Config,
  "HEALTH_PENDING_DEGRADED" | "HEALTH_DLQ_DEGRADED" | "HEALTH_LAG_DEGRADED" | "HEALTH_OLDEST_PENDING_DEGRADED_S"
>;

const Tile: FC<{ label: string; value: string; hint?: string; degraded?: boolean; href?: string }> = (p) => (
  <div class={p.degraded ? "tile degraded" : "tile"}>
    <dt>{p.label}</dt>
    <dd>
      {p.href ? <a href={p.href}>{p.value}</a> : p.value}
      {p.hint ? <small>{p.hint}</small> : null}
    </dd>
  </div>
);

const ChartCard: FC<{ id: string; title: string; total: number; data: Series[]; children?: Child }> = (p) => (
  <figure class="card">
    <figcaption>
      {p.title} <span>{num(p.total)} in the hour</span>
    </figcaption>
    <BarChart id={p.id} title={p.title} unit="events" data={p.data} />
    {p.children}
  </figure>
);

export const OverviewPage: FC<{ session: Session; d: OverviewData; t: Thresholds }> = ({ session, d, t }) => {
  const accepted = d.series.reduce((s, m) => s + m.accepted, 0);
  const completed = d.series.reduce((s, m) => s + m.completed, 0);
  const dead = d.series.reduce((s, m) => s + m.dlq, 0);
  const pending = d.counts.pending + d.counts.processing;
  const running = d.replays.filter((j) => j.status === "running").length;
  const scheduled = d.replays.filter((j) => j.status === "scheduled").length;
  return (
    <Page title="Overview" section="overview" session={session} noscriptRefresh={30}>
      <section id="overview" data-refresh="10" aria-labelledby="overview-h">
        <div class="head">
          <div>
            <h1 id="overview-h">Overview</h1>
            <p class="lede">
              Backend <strong>{d.backend}</strong>. Traffic per minute over the last hour, from history.
            </p>
          </div>
          <p class="live" aria-live="polite">
            Figures of <Time at={d.checkedAt} />
          </p>
        </div>
        <dl class="tiles">
          <Tile label="Accepted, 1 h" value={num(accepted)} hint="stamped in the hour, derived included" />
          <Tile
            label="Processed, 1 h"
            value={num(completed + dead)}
            hint={`${num(completed)} completed, ${num(dead)} to DLQ`}
          />
          <Tile
            label="Pending"
            value={num(pending)}
            hint={`${num(d.counts.processing)} processing, ${num(d.counts.retryBacklog)} awaiting retry`}
            degraded={pending > t.HEALTH_PENDING_DEGRADED}
          />
          <Tile
            label="Oldest pending"
            value={duration(d.counts.oldestPendingAgeSeconds)}
            degraded={d.counts.oldestPendingAgeSeconds > t.HEALTH_OLDEST_PENDING_DEGRADED_S}
          />
          <Tile
            label="DLQ"
            value={num(d.counts.dlq)}
            href="/dashboard/dlq"
            degraded={d.counts.dlq > t.HEALTH_DLQ_DEGRADED}
          />
          <Tile
            label="Parked scopes"
            value={num(d.parked.parked)}
            hint={`${num(d.parked.waiting)} waiting, ${num(d.parked.held)} held`}
            href="/dashboard/scopes"
            // as /health/detailed's parked_scopes: a held head stays until an operator acts
            degraded={d.parked.held > 0}
          />
          <Tile
            label="Replays running"
            value={num(running)}
            hint={`${num(scheduled)} scheduled`}
            href="/dashboard/replays"
          />
        </dl>

        <div class="charts">
          <ChartCard
            id="chart-accepted"
            title="Accepted per minute"
            total={accepted}
            data={d.series.map((m) => ({
              minute: m.minute,
              parts: [{ cls: "", value: m.accepted, label: "accepted" }],
            }))}
          />
          <ChartCard
            id="chart-processed"
            title="Processed per minute"
            total={completed + dead}
            data={d.series.map((m) => ({
              minute: m.minute,
              parts: [
                { cls: "", value: m.completed, label: "completed" },
                { cls: "dlq", value: m.dlq, label: "to the DLQ" },
              ],
            }))}
          >
            <p class="legend">
              <span>
                <i />
                completed
              </span>
              <span>
                <i class="dlq" />
                to the DLQ
              </span>
            </p>
          </ChartCard>
        </div>

        <div class="grid2">
          <section aria-labelledby="lanes-h">
            <h2 id="lanes-h">Lanes</h2>
            {"error" in d.lanes ? (
              <Problem title="Lanes unavailable." detail={d.lanes.error} />
            ) : (
              <Table
                cols={[
                  "Lane",
                  { label: "Backlog", num: true },
                  { label: "Lag", num: true },
                  { label: "Pending", num: true },
                  { label: "Consumers", num: true },
                ]}
                empty="No lane."
                rows={d.lanes.map((l) => (
                  <tr>
                    <td class="mono">{l.lane}</td>
                    <td class="num">{num(l.length)}</td>
                    <td class="num">
                      {(l.lag ?? 0) > t.HEALTH_LAG_DEGRADED ? <Badge value="degraded" /> : null} {num(l.lag)}
                    </td>
                    <td class="num">{num(l.pending)}</td>
                    <td class="num">{num(l.consumers)}</td>
                  </tr>
                ))}
              />
            )}
            <p class="hint">
              Backlog: entries in the lane (
              {d.backend === "redis" ? "stream length, until trimmed" : "events not final"}); lag: never delivered;
              pending: delivered, not acknowledged.
            </p>
          </section>
          <section aria-labelledby="breakers-h">
            <h2 id="breakers-h">Destinations</h2>
            <Table
              cols={["Destination", "Breaker", { label: "Failures", num: true }, "Next probe"]}
              empty="No destinations configured."
              rows={d.breakers.map((b) => (
                <tr>
                  <td>
                    <a href={`/dashboard/destinations#dest-${b.destination}`}>{b.destination}</a>
                  </td>
                  <td>
                    <Badge value={b.state} />
                  </td>
                  <td class="num">{num(b.failures)}</td>
                  <td>
                    <Time at={b.next_probe_at} />
                  </td>
                </tr>
              ))}
            />
          </section>
        </div>
      </section>
    </Page>
  );
};

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

/** The page's routes, registered by ../routes.tsx behind the sign-in. */
export function overviewRoutes(r: DashRouter) {
  r.get("/", overview);
}
