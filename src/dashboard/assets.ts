/**
 * The dashboard's only style sheet and script, served by the worker under
 * /dashboard/assets/ with a content hash in the name (cached for a year, immutable). They
 * live as strings so the worker bundle needs no loader rules; the script is progressive
 * enhancement only: every page works without it.
 */

const CSS = `
:root {
  color-scheme: light dark;
  --bg: #f5f6f8; --surface: #ffffff; --subtle: #f0f2f5; --border: #dde1e6; --text: #18202b; --muted: #5a6472;
  --accent: #3451d1; --accent-ink: #ffffff; --accent-soft: #e7ebfd;
  --ok: #23813a; --ok-soft: #e3f4e7; --warn: #b35c00; --warn-soft: #fdf0dc; --bad: #c22a2a; --bad-soft: #fbe5e5;
  --info: #1864ab; --info-soft: #e2eefb; --none: #6b7380; --none-soft: #eceef1;
  --radius: 8px; --shadow: 0 1px 2px rgb(16 24 40 / 6%);
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0e1217; --surface: #161b22; --subtle: #1c222b; --border: #2b333e; --text: #e4e8ee; --muted: #97a1af;
    --accent: #7d92ff; --accent-ink: #0e1217; --accent-soft: #232b4a;
    --ok: #5cc878; --ok-soft: #15301e; --warn: #f0a54a; --warn-soft: #3a2a12; --bad: #ff7b7b; --bad-soft: #3d1a1a;
    --info: #6cb2ff; --info-soft: #142a44; --none: #9aa3ae; --none-soft: #232a33; --shadow: none;
  }
}
* { box-sizing: border-box; }
html { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
body { margin: 0; background: var(--bg); color: var(--text); }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; border-radius: 3px; }
.skip { position: absolute; left: -999px; top: 0; background: var(--surface); padding: .5rem 1rem; z-index: 10; }
.skip:focus { left: 1rem; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
header.top { background: var(--surface); border-bottom: 1px solid var(--border); }
header.top .bar { max-width: 1200px; margin: 0 auto; padding: 0 1.25rem; display: flex; align-items: center; gap: 1.5rem; min-height: 56px; flex-wrap: wrap; }
.brand { display: flex; align-items: center; gap: .55rem; font-weight: 650; color: var(--text); letter-spacing: -.01em; }
.brand:hover { text-decoration: none; }
.brand img { width: 22px; height: 22px; }
.brand small { font-weight: 450; color: var(--muted); }
nav.main ul { list-style: none; display: flex; gap: .25rem; margin: 0; padding: 0; flex-wrap: wrap; }
nav.main a { display: block; padding: .4rem .7rem; border-radius: 6px; color: var(--muted); font-weight: 500; }
nav.main a:hover { background: var(--subtle); color: var(--text); text-decoration: none; }
nav.main a[aria-current="page"] { background: var(--accent-soft); color: var(--accent); }
.who { margin-left: auto; display: flex; align-items: center; gap: .75rem; color: var(--muted); font-size: .9rem; }
.who form { margin: 0; }
main { max-width: 1200px; margin: 0 auto; padding: 1.5rem 1.25rem 3rem; }
h1 { font-size: 1.45rem; margin: 0 0 .25rem; letter-spacing: -.015em; }
h2 { font-size: 1.05rem; margin: 2rem 0 .75rem; }
h3 { font-size: .95rem; margin: 1.25rem 0 .5rem; }
.lede { color: var(--muted); margin: 0 0 1.25rem; }
.head { display: flex; align-items: flex-end; justify-content: space-between; gap: 1rem; flex-wrap: wrap; margin-bottom: 1rem; }
.head .lede { margin: 0; }
.live { color: var(--muted); font-size: .85rem; margin: 0; }
[data-stale="true"] .live::after { content: " - not updated, retrying"; color: var(--warn); }
.card { background: var(--surface); border: 1px solid var(--border); border-radius: var(--radius); box-shadow: var(--shadow); padding: 1rem 1.1rem; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: .75rem; margin: 0; align-content: start; }
.tile { background: var(--surface); border: 1px solid var(--border); border-radius: var(--radius); padding: .8rem 1rem; box-shadow: var(--shadow); }
.tile dt { color: var(--muted); font-size: .78rem; text-transform: uppercase; letter-spacing: .04em; font-weight: 600; }
.tile dd { margin: .15rem 0 0; font-size: 1.55rem; font-weight: 650; font-variant-numeric: tabular-nums; }
.tile dd small { display: block; font-size: .8rem; font-weight: 450; color: var(--muted); }
.tile dd.text { font-size: .95rem; font-weight: 500; }
.tile.degraded { border-color: var(--warn); background: var(--warn-soft); }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: .75rem; margin-top: .75rem; }
figure { margin: 0; }
figcaption { display: flex; justify-content: space-between; gap: 1rem; font-weight: 600; margin-bottom: .4rem; }
figcaption span { color: var(--muted); font-weight: 450; font-size: .85rem; }
svg.chart { display: block; width: 100%; height: auto; }
svg.chart .grid { stroke: var(--border); stroke-width: 1; }
svg.chart .axis { fill: var(--muted); font-size: 10px; font-family: inherit; }
svg.chart .bar { fill: var(--accent); }
svg.chart .bar.dlq { fill: var(--bad); }
svg.chart .bar.empty { fill: var(--border); }
.legend { display: flex; gap: 1rem; font-size: .8rem; color: var(--muted); margin-top: .35rem; }
.legend i { display: inline-block; width: .7rem; height: .7rem; border-radius: 2px; margin-right: .3rem; vertical-align: -1px; background: var(--accent); }
.legend i.dlq { background: var(--bad); }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 0 1.5rem; }
.table-wrap { overflow-x: auto; background: var(--surface); border: 1px solid var(--border); border-radius: var(--radius); box-shadow: var(--shadow); }
table { width: 100%; border-collapse: collapse; font-size: .9rem; }
th, td { text-align: left; padding: .55rem .75rem; border-bottom: 1px solid var(--border); vertical-align: top; }
th { font-size: .75rem; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); font-weight: 600; background: var(--subtle); white-space: nowrap; }
tbody tr:last-child td { border-bottom: 0; }
tbody tr:hover td { background: var(--subtle); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.actions { white-space: nowrap; }
td.actions form { display: inline-flex; gap: .35rem; margin: 0 0 0 .35rem; }
.empty { color: var(--muted); padding: 1.25rem; text-align: center; }
.mono, code, pre, kbd { font-family: var(--mono); font-size: .84rem; }
.err { color: var(--bad); font-family: var(--mono); font-size: .82rem; word-break: break-word; }
.muted { color: var(--muted); }
.nowrap { white-space: nowrap; }
.badge { display: inline-block; padding: .08rem .5rem; border-radius: 999px; font-size: .76rem; font-weight: 600; background: var(--none-soft); color: var(--none); white-space: nowrap; }
.badge.completed, .badge.closed, .badge.done, .badge.healthy { background: var(--ok-soft); color: var(--ok); }
.badge.pending, .badge.scheduled { background: var(--info-soft); color: var(--info); }
.badge.processing, .badge.running, .badge.half-open, .badge.degraded { background: var(--warn-soft); color: var(--warn); }
.badge.dlq, .badge.open, .badge.failed, .badge.unhealthy { background: var(--bad-soft); color: var(--bad); }
.badge.role { background: var(--accent-soft); color: var(--accent); }
form.filters { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: .75rem; align-items: end; margin-bottom: 1rem; }
form.stack { display: grid; gap: .85rem; max-width: 780px; }
form.stack .row { display: grid; grid-template-columns: 1fr 1fr; gap: .85rem; }
label { display: grid; gap: .25rem; font-size: .82rem; font-weight: 600; color: var(--muted); }
label.check { display: flex; align-items: center; gap: .5rem; font-size: .9rem; color: var(--text); font-weight: 500; }
input, select, textarea { font: inherit; font-size: .92rem; font-weight: 400; color: var(--text); background: var(--surface); border: 1px solid var(--border); border-radius: 6px; padding: .45rem .6rem; min-width: 0; }
input, select { min-height: 2.3rem; }
input[type="checkbox"] { width: 1rem; height: 1rem; min-height: 0; accent-color: var(--accent); }
input:focus, select:focus, textarea:focus { border-color: var(--accent); }
.hint { font-weight: 400; color: var(--muted); font-size: .78rem; }
button, .btn { font: inherit; font-size: .88rem; font-weight: 600; border-radius: 6px; padding: .45rem .9rem; border: 1px solid var(--accent); background: var(--accent); color: var(--accent-ink); cursor: pointer; display: inline-block; line-height: 1.3; }
button:hover, .btn:hover { filter: brightness(1.08); text-decoration: none; }
button.secondary, .btn.secondary { background: var(--surface); color: var(--text); border-color: var(--border); }
button.danger { background: var(--surface); color: var(--bad); border-color: var(--bad); }
button.sm, .btn.sm { padding: .2rem .55rem; font-size: .8rem; }
button.link { background: none; border: 0; color: var(--accent); padding: 0; font-weight: 500; }
input.reason { width: 11rem; padding: .2rem .45rem; font-size: .8rem; min-height: 0; }
.actions-bar { display: flex; gap: .5rem; flex-wrap: wrap; align-items: center; margin: 1rem 0; }
form.filters .actions-bar { margin: 0; }
form.filters input, form.filters select { height: 2.4rem; }
.actions-bar form { margin: 0; display: flex; gap: .5rem; align-items: center; }
.flash { border-radius: var(--radius); padding: .7rem 1rem; margin-bottom: 1rem; border: 1px solid; }
.flash.ok { background: var(--ok-soft); border-color: var(--ok); color: var(--ok); }
.flash.error { background: var(--bad-soft); border-color: var(--bad); color: var(--bad); }
.flash ul { margin: .35rem 0 0; padding-left: 1.2rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .35rem 1.25rem; margin: 0; }
dl.facts dt { color: var(--muted); font-size: .85rem; }
dl.facts dd { margin: 0; word-break: break-word; }
pre.json { background: var(--subtle); border: 1px solid var(--border); border-radius: var(--radius); padding: .85rem 1rem; overflow: auto; max-height: 32rem; margin: 0; line-height: 1.45; }
ol.chain { list-style: none; padding: 0; margin: 0; display: grid; gap: .35rem; }
ol.chain li { display: flex; gap: .6rem; align-items: center; flex-wrap: wrap; }
ol.chain li::before { content: "\\2191"; color: var(--muted); }
ol.chain li.self::before { content: "\\25CF"; color: var(--accent); }
ul.plain { list-style: none; padding: 0; margin: 0; display: grid; gap: .35rem; }
progress { width: 100%; min-width: 8rem; height: .6rem; appearance: none; border: 0; border-radius: 999px; background: var(--subtle); overflow: hidden; }
progress::-webkit-progress-bar { background: var(--subtle); border-radius: 999px; }
progress::-webkit-progress-value { background: var(--accent); border-radius: 999px; }
progress::-moz-progress-bar { background: var(--accent); border-radius: 999px; }
.progress-text { font-size: .8rem; color: var(--muted); font-variant-numeric: tabular-nums; }
.pager { display: flex; gap: .75rem; justify-content: flex-end; margin-top: .75rem; }
.login { max-width: 420px; margin: 8vh auto; }
.login .card { padding: 1.75rem; }
.login h1 { margin-bottom: .5rem; }
.login form { display: grid; gap: 1rem; margin-top: 1.25rem; }
.login .brand { margin-bottom: 1.5rem; font-size: 1.1rem; }
.confirm { max-width: 560px; }
details.raw summary { cursor: pointer; color: var(--muted); font-size: .85rem; margin: .5rem 0; }
footer.foot { max-width: 1200px; margin: 0 auto; padding: 0 1.25rem 2rem; color: var(--muted); font-size: .8rem; }
@media (max-width: 640px) { form.stack .row { grid-template-columns: 1fr; } .grid2, .charts { grid-template-columns: 1fr; } }
`;

const JS = `"use strict";
// Reflex Edge dashboard: progressive enhancement. Without this script every page still
// works (forms post, links navigate, pages that refresh carry a <noscript> meta refresh).
(function () {
  var parser = new DOMParser();

  // A region with data-refresh="<seconds>" fetches its page again and swaps itself for the
  // fresh copy (same id); the server drops the attribute once there is nothing to follow.
  function schedule(el) {
    var s = Number(el.getAttribute("data-refresh"));
    if (s > 0) setTimeout(function () { refresh(el); }, s * 1000);
  }
  function busy(el) {
    var a = document.activeElement;
    return document.hidden || (a && el.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName));
  }
  function refresh(el) {
    if (!el.isConnected) return;
    if (busy(el)) return schedule(el);
    fetch(location.href, { credentials: "same-origin", cache: "no-store", headers: { accept: "text/html" } })
      .then(function (res) {
        if (res.redirected && new URL(res.url).pathname === "/dashboard/login") { location.reload(); return null; }
        if (!res.ok) throw new Error("HTTP " + res.status);
        return res.text();
      })
      .then(function (html) {
        if (html === null) return;
        var fresh = parser.parseFromString(html, "text/html").getElementById(el.id);
        if (!fresh) return;
        fresh = document.importNode(fresh, true);
        el.replaceWith(fresh);
        enhance(fresh);
        schedule(fresh);
      })
      .catch(function () { el.setAttribute("data-stale", "true"); schedule(el); });
  }

  // Times are rendered in UTC; the local time is a hover away.
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d.getTime()) && !t.title) t.title = d.toLocaleString();
    });
  }

  function enhance(root) { localTimes(root); }

  // Forms with data-confirm ask first (the server asks again where it matters: retry-all).
  document.addEventListener("submit", function (e) {
    var f = e.target;
    var msg = f && f.getAttribute && f.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) e.preventDefault();
  });

  enhance(document);
  document.querySelectorAll("[data-refresh]").forEach(schedule);
})();
`;

const ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#3451d1"/><path d="M9 22V10h7.5a4 4 0 0 1 0 8H13m3.2 0L22 22" fill="none" stroke="#fff" stroke-width="2.6" stroke-linecap="round" stroke-linejoin="round"/></svg>`;

/** FNV-1a, 32 bits: a content hash for cache-busting names, not for security. */
function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}

export interface Asset {
  body: string;
  type: string;
}

const files: Record<string, Asset> = {
  [`app-${fnv1a(CSS)}.css`]: { body: CSS, type: "text/css; charset=utf-8" },
  [`app-${fnv1a(JS)}.js`]: { body: JS, type: "text/javascript; charset=utf-8" },
  [`icon-${fnv1a(ICON)}.svg`]: { body: ICON, type: "image/svg+xml" },
};

const nameOf = (ext: string) => Object.keys(files).find((n) => n.endsWith(ext))!;

/** URLs of the assets, for the pages' <link> and <script> tags. */
export const assetUrls = {
  css: `/dashboard/assets/${nameOf(".css")}`,
  js: `/dashboard/assets/${nameOf(".js")}`,
  icon: `/dashboard/assets/${nameOf(".svg")}`,
};

export function asset(name: string): Asset | undefined {
  return Object.hasOwn(files, name) ? files[name] : undefined;
}
