/**
 * The page frame and the small components every dashboard page uses. Everything is
 * rendered on the server; hono/jsx escapes every interpolated value.
 */
import type { Child, FC } from "hono/jsx";
import { eventStatus } from "../db/schema";
import { assetUrls } from "./assets";
import type { Session } from "./env";

export type Section = "overview" | "events" | "dlq" | "scopes" | "replays" | "destinations" | "login" | "error";

const NAV: Array<[Exclude<Section, "login" | "error">, string, string]> = [
  ["overview", "Overview", "/dashboard"],
  ["events", "Events", "/dashboard/events"],
  ["dlq", "DLQ", "/dashboard/dlq"],
  ["scopes", "Parked scopes", "/dashboard/scopes"],
  ["replays", "Replays", "/dashboard/replays"],
  ["destinations", "Destinations", "/dashboard/destinations"],
];

export interface PageProps {
  title: string;
  section: Section;
  session?: Session | null;
  /** Without JavaScript, reload the whole page this often (seconds). */
  noscriptRefresh?: number;
  children?: Child;
}

export const Page: FC<PageProps> = (p) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <meta name="referrer" content="same-origin" />
      <title>{`${p.title} · Reflex Edge`}</title>
      <link rel="icon" href={assetUrls.icon} type="image/svg+xml" />
      <link rel="stylesheet" href={assetUrls.css} />
      {p.noscriptRefresh ? (
        <noscript>
          <meta http-equiv="refresh" content={String(p.noscriptRefresh)} />
        </noscript>
      ) : null}
      <script src={assetUrls.js} defer />
    </head>
    <body>
      <a class="skip" href="#content">
        Skip to content
      </a>
      {p.section === "login" ? (
        <main id="content">{p.children}</main>
      ) : (
        <>
          <header class="top">
            <div class="bar">
              <a class="brand" href="/dashboard">
                <img src={assetUrls.icon} alt="" width="22" height="22" />
                Reflex Edge <small>operator</small>
              </a>
              {p.session ? (
                <nav class="main" aria-label="Dashboard">
                  <ul>
                    {NAV.map(([key, label, href]) => (
                      <li>
                        <a href={href} aria-current={p.section === key ? "page" : undefined}>
                          {label}
                        </a>
                      </li>
                    ))}
                  </ul>
                </nav>
              ) : null}
              {p.session ? (
                <div class="who">
                  <span class="badge role">{p.session.role === "admin" ? "admin" : "read-only"}</span>
                  <form method="post" action="/dashboard/logout">
                    <Csrf session={p.session} />
                    <button type="submit" class="secondary sm">
                      Sign out
                    </button>
                  </form>
                </div>
              ) : null}
            </div>
          </header>
          <main id="content">{p.children}</main>
        </>
      )}
    </body>
  </html>
);

/** The session's anti-forgery token, in every form that posts. */
export const Csrf: FC<{ session: Session }> = ({ session }) => (
  <input type="hidden" name="_csrf" value={session.csrf} />
);

/** A status, state or outcome as a coloured pill; the word itself carries the meaning. */
export const Badge: FC<{ value: string }> = ({ value }) => (
  <span class={`badge ${value}`}>{value.replace("_", " ")}</span>
);

/** "2026-05-01 10:00:03 UTC", machine-readable in `datetime`. */
export function utc(iso: string | null | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

export const Time: FC<{ at: string | null | undefined }> = ({ at }) =>
  at ? (
    <time datetime={at} class="nowrap">
      {utc(at)}
    </time>
  ) : (
    <span class="muted">-</span>
  );

export const num = (n: number | null | undefined) => (n === null || n === undefined ? "-" : n.toLocaleString("en-US"));

/** 42 s, 3 min 5 s, 2 h 10 min, 3 d 4 h. */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "-";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ""}`;
  if (s < 86400)
    return `${Math.floor(s / 3600)} h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)} min` : ""}`;
  return `${Math.floor(s / 86400)} d${Math.floor((s % 86400) / 3600) ? ` ${Math.floor((s % 86400) / 3600)} h` : ""}`;
}

/** A duration given in milliseconds: "42 ms", or "3 min 5 s" from a second up. */
export const millis = (v: number | null) => (v === null ? "-" : v < 1000 ? `${v} ms` : duration(v / 1000));

export const EventLink: FC<{ id: string; short?: boolean }> = ({ id, short }) => (
  <a class="mono" href={`/dashboard/events/${id}`} title={id}>
    {short ? id.slice(0, 8) : id}
  </a>
);

const FLASH: Record<string, (n: string | undefined) => string> = {
  retried: () => "Sent back for processing: the consumers pick it up as a due retry.",
  "retried-all": (n) => `${n ?? "The"} event(s) sent back for processing, spread at REDRIVE_RATE per second.`,
  discarded: () => "Discarded. The history row stays, with the reason.",
  "head-retried": () => "Head sent back for processing: the scope resumes once it succeeds.",
  "head-discarded": () =>
    "Head discarded (its history row stays, with the reason): the scope resumes with the next event.",
  "replay-started": () => "Replay started: the replay runner advances it every few minutes.",
  "replay-cancelled": () => "Replay cancelled: no chunk is published after this.",
  "signed-out": () => "Signed out.",
};

/** The outcome of the action that redirected here (a fixed text per code: links cannot inject any). */
export const Flash: FC<{ code?: string; n?: string }> = ({ code, n }) => {
  const text = code && Object.hasOwn(FLASH, code) ? FLASH[code]!(n && /^\d+$/.test(n) ? n : undefined) : null;
  return text ? (
    <p class="flash ok" role="status">
      {text}
    </p>
  ) : null;
};

/** A problem shown in the page: its title, its detail and the fields at fault. */
export const Problem: FC<{ title: string; detail?: string; errors?: Array<{ field: string; message: string }> }> = (
  p,
) => (
  <div class="flash error" role="alert">
    <strong>{p.title}</strong>
    {p.detail ? <> {p.detail}</> : null}
    {p.errors?.length ? (
      <ul>
        {p.errors.map((e) => (
          <li>
            <code>{e.field}</code>: {e.message}
          </li>
        ))}
      </ul>
    ) : null}
  </div>
);

/** A column heading; `num` right-aligns figures; `hidden` keeps the heading for screen readers only. */
export type Col = string | { label: string; num?: boolean; hidden?: boolean };

/** A data table in its scrolling frame; without rows, one row that says `empty`. */
export const Table: FC<{ cols: Col[]; rows: Child[]; empty: string; caption?: string }> = (p) => (
  <div class="table-wrap">
    <table>
      {p.caption ? <caption class="sr-only">{p.caption}</caption> : null}
      <thead>
        <tr>
          {p.cols.map((c) => {
            const col = typeof c === "string" ? { label: c } : c;
            return (
              <th scope="col" class={col.num ? "num" : undefined}>
                {col.hidden ? <span class="sr-only">{col.label}</span> : col.label}
              </th>
            );
          })}
        </tr>
      </thead>
      <tbody>
        {p.rows.length ? (
          p.rows
        ) : (
          <tr>
            <td colspan={p.cols.length} class="empty">
              {p.empty}
            </td>
          </tr>
        )}
      </tbody>
    </table>
  </div>
);

/** The reason a discard needs (1 to 1,000 characters, as the discard routes check). */
export const ReasonInput: FC<{ label: string }> = ({ label }) => (
  <input class="reason" name="reason" required maxlength={1000} placeholder="Reason" aria-label={label} />
);

/** A select of event statuses, "any" first. */
export const StatusSelect: FC<{ id: string; value?: string }> = ({ id, value }) => (
  <select name="status" id={id}>
    <option value="">any</option>
    {eventStatus.enumValues.map((s) => (
      <option value={s} selected={value === s}>
        {s}
      </option>
    ))}
  </select>
);
