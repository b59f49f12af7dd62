/**
 * App-wide error rendering: every failure leaves the worker as an RFC 9457 problem.
 *
 *   app.onError(onError); app.notFound(notFound);
 *   new OpenAPIHono({ defaultHook: validationHook })   // or createRouter() from ./router
 *
 * - HTTPProblem: rendered as it is.
 * - Hono's HTTPException (body-limit, validator "Malformed JSON", bearer-auth, …): its status,
 *   the standard title, its message as detail; headers of its own response (WWW-Authenticate) kept.
 * - ConfigError: 500 "Server misconfigured"; the log names the variables (never their values).
 * - Anything else: 500 with a generic text; the error goes to the log, not to the client.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ZodError } from "zod";
import { ConfigError } from "../errors";
import { createLogger } from "../obs/log";
import { errorSummary } from "../obs/trace";
import { HTTPProblem, invalidFields, zodErrors } from "./problem";

const STATUS_TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

export function statusTitle(status: number): string {
  return STATUS_TITLES[status] ?? (status >= 500 ? "Server Error" : "Client Error");
}

/** Converts any thrown value to a problem. Exported for code that catches and re-renders. */
export function toProblem(err: unknown): HTTPProblem {
  if (err instanceof HTTPProblem) return err;
  if (err instanceof HTTPException) {
    const headers: Record<string, string> = {};
    err.res?.headers.forEach((v, k) => {
      if (k !== "content-type" && k !== "content-length") headers[k] = v;
    });
    return new HTTPProblem(err.status, statusTitle(err.status), err.message || undefined, { headers });
  }
  if (err instanceof ConfigError) {
    // What is wrong goes to the log (onError), not to whoever sent the request.
    return new HTTPProblem(
      500,
      "Server misconfigured",
      "The worker's configuration is invalid; its log names each bad variable.",
    );
  }
  return new HTTPProblem(500, "Internal Server Error", "An unexpected error occurred.");
}

export function onError(err: Error, c: Context): Response {
  const p = toProblem(err);
  if (p.status >= 500 && !(err instanceof HTTPProblem)) {
    createLogger().error("request failed", {
      method: c.req.method,
      path: new URL(c.req.url).pathname,
      error: errorSummary(err), // first line, without a quoted command (which would hold payloads)
      ...(err instanceof ConfigError ? { problems: err.problems } : {}),
    });
  }
  return p.toResponse();
}

export function notFound(c: Context): Response {
  return new HTTPProblem(404, "Not Found", `No route for ${c.req.method} ${new URL(c.req.url).pathname}`).toResponse();
}

const TARGET_WHERE: Record<string, "path" | "header" | "query" | "param"> = {
  json: "path",
  form: "path",
  header: "header",
  query: "query",
  param: "param",
  cookie: "header",
};

/**
 * `defaultHook` for OpenAPIHono: a failed zod validation becomes 422 "Invalid fields" naming
 * each field. (Malformed JSON never gets here: the validator throws a 400 HTTPException.)
 */
export function validationHook(
  result: { target: string } & ({ success: true } | { success: false; error: ZodError }),
  c: Context,
): Response | undefined {
  void c;
  if (result.success) return undefined;
  return invalidFields(zodErrors(result.error, TARGET_WHERE[result.target] ?? "path")).toResponse();
}

export type { ContentfulStatusCode };
