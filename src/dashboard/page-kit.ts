/**
 * What the dashboard's page routes (./pages/*.tsx) share: the HTML answer, form and query
 * fields, the flash redirect, and the parsing of the forms' dates, lists and statuses.
 */
import type { Context, Hono } from "hono";
import type { JSX } from "hono/jsx/jsx-runtime";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { type EventStatus, eventStatus } from "../db/schema";
import type { DashEnv } from "./env";

/** The router each page's routes are registered on (./routes.tsx builds it). */
export type DashRouter = Hono<DashEnv>;

export type C = Context<DashEnv>;

/** Rows on a page of events or of the DLQ. */
export const PAGE_SIZE = 50;

/** A rendered page as the answer, with its doctype. */
export function html(c: C, node: JSX.Element, status: ContentfulStatusCode = 200) {
  return c.html(`<!doctype html>${node}`, status);
}

/** A form field as a trimmed string; empty and absent are both undefined. */
export async function field(c: C, name: string): Promise<string | undefined> {
  const v = (await c.req.parseBody())[name];
  return typeof v === "string" && v.trim() !== "" ? v.trim() : undefined;
}

export const query = (c: C, name: string) => {
  const v = c.req.query(name);
  return v !== undefined && v.trim() !== "" ? v.trim() : undefined;
};

/** `back` with a flash code (and a count) added, for the 303 after an action. */
export function withFlash(back: string, code: string, n?: number): string {
  const u = new URL(back, "http://dashboard.invalid");
  u.searchParams.set("flash", code);
  if (n !== undefined) u.searchParams.set("n", String(n));
  return `${u.pathname}${u.search}${u.hash}`;
}

/**
 * A datetime-local value ("2026-05-01T10:00" or with seconds) read as UTC, or any ISO 8601
 * date-time with a zone. undefined for empty; null when it is neither.
 */
export function utcInput(v: string | undefined): string | undefined | null {
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
export const localInput = (iso: string) => iso.slice(0, 19);

export const csv = (v: string | undefined) =>
  v
    ?.split(",")
    .map((x) => x.trim())
    .filter(Boolean);

export function isStatus(v: string | undefined): v is EventStatus {
  return v !== undefined && (eventStatus.enumValues as readonly string[]).includes(v);
}
