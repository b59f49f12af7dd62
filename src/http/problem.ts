/**
 * RFC 9457 problem details: the one error shape of every route in the project.
 *
 *   HTTP/1.1 422 Unprocessable Content
 *   Content-Type: application/problem+json
 *   { "type": "urn:reflex:problem:invalid-fields", "title": "Invalid fields", "status": 422,
 *     "detail": "1 field is invalid",
 *     "errors": [{ "path": "/events/3/tick_count", "message": "expected int" }] }
 *
 * Two ways to answer with one:
 *   - `throw new HTTPProblem(422, "Invalid fields", "…", { errors })` anywhere below a route;
 *     the app's error handler (./error-handler.ts) renders it. Best inside helpers.
 *   - `return problem(c, 404, "Not found", "…")` from a handler.
 *
 * `errors` names what is at fault: `path` is a JSON Pointer (RFC 6901) into the request
 * body, `header` a request header name (lower case), `query` / `param` a query or path
 * parameter. Extra members (`registered_types`, …) are RFC 9457 extensions.
 */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ZodError } from "zod";

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

export interface ProblemError {
  /** JSON Pointer into the request body ("" is the whole body). */
  path?: string;
  /** Request header at fault, lower case. */
  header?: string;
  query?: string;
  param?: string;
  message: string;
}

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail?: string;
  errors?: ProblemError[];
  [extension: string]: unknown;
}

export interface ProblemExtra {
  /** Problem type URI; defaults to `urn:reflex:problem:<slug of title>`. */
  type?: string;
  errors?: ProblemError[];
  /** Response headers to send with the problem (Retry-After, WWW-Authenticate, …). Not in the body. */
  headers?: Record<string, string>;
  /** Further members of the body (RFC 9457 extensions). */
  [extension: string]: unknown;
}

/** The problem type URI for a title: stable, readable, and needs no web page to exist. */
export function problemType(title: string): string {
  const slug = title
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "");
  return `urn:reflex:problem:${slug || "error"}`;
}

/** An error that renders as a problem response (see ./error-handler.ts). Throw it from anywhere. */
export class HTTPProblem extends Error {
  readonly headers: Record<string, string>;
  readonly body: ProblemDetails;

  constructor(
    readonly status: ContentfulStatusCode,
    title: string,
    detail?: string,
    extra: ProblemExtra = {},
  ) {
    super(detail ? `${title}: ${detail}` : title);
    this.name = "HTTPProblem";
    const { type, errors, headers, ...extensions } = extra;
    this.headers = headers ?? {};
    this.body = {
      type: type ?? problemType(title),
      title,
      status,
      ...(detail !== undefined ? { detail } : {}),
      ...(errors?.length ? { errors } : {}),
      ...extensions,
    };
  }

  toResponse(): Response {
    return new Response(JSON.stringify(this.body), {
      status: this.status,
      headers: { "content-type": PROBLEM_CONTENT_TYPE, ...this.headers },
    });
  }
}

/** Answers with a problem from a handler: `return problem(c, 404, "Not found", "no such source")`. */
export function problem(
  c: Context,
  status: ContentfulStatusCode,
  title: string,
  detail?: string,
  extra?: ProblemExtra,
): Response {
  void c; // kept in the signature so handlers read like `c.json(...)`, and for future use (instance URIs)
  return new HTTPProblem(status, title, detail, extra).toResponse();
}

/** "Invalid fields" (422) with the given errors: the common validation failure. */
export function invalidFields(errors: ProblemError[], detail?: string, extra: ProblemExtra = {}): HTTPProblem {
  const n = errors.length;
  return new HTTPProblem(422, "Invalid fields", detail ?? `${n} ${n === 1 ? "field is" : "fields are"} invalid`, {
    ...extra,
    errors,
  });
}

/** Escapes one JSON Pointer reference token (RFC 6901). */
export function pointerToken(s: string | number): string {
  return String(s).replace(/~/g, "~0").replace(/\//g, "~1");
}

/** Builds a JSON Pointer from path segments: ["events", 3, "type"] -> "/events/3/type". */
export function pointer(segments: readonly PropertyKey[]): string {
  return segments
    .map((s) => `/${pointerToken(typeof s === "symbol" ? String(s.description) : (s as string | number))}`)
    .join("");
}

/** One issue per offending field: unknown keys are listed one by one, at their own path. */
function flatIssues(error: ZodError): Array<{ path: PropertyKey[]; message: string }> {
  return error.issues.flatMap((issue) => {
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((k) => ({ path: [...issue.path, k], message: "unknown field" }));
    }
    const missing = issue.code === "invalid_type" && / received undefined$/.test(issue.message);
    return [
      {
        path: issue.path,
        message: missing
          ? `required (${issue.message.replace(/^Invalid input: /, "").replace(/, received undefined$/, "")})`
          : issue.message,
      },
    ];
  });
}

/** Zod issues -> problem errors, each naming where it is (JSON Pointer, header, query, param). */
export function zodErrors(
  error: ZodError,
  where: "path" | "header" | "query" | "param" = "path",
  prefix: readonly PropertyKey[] = [],
): ProblemError[] {
  return flatIssues(error).map((issue) => {
    const segs = [...prefix, ...issue.path];
    if (where === "path") return { path: pointer(segs), message: issue.message };
    const name = segs.map(String).join(".");
    return { [where]: where === "header" ? name.toLowerCase() : name, message: issue.message };
  });
}
