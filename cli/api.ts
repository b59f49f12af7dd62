/**
 * The admin API, seen from the CLI: one function per call, errors as ApiError.
 * REFLEX_URL and REFLEX_ADMIN_TOKEN come from the environment (or --url / --token).
 */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly body?: unknown,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** Could not reach the worker at all (exit code 3). */
export class UnreachableError extends Error {}

export interface Client {
  call<T>(method: string, path: string, body?: unknown): Promise<T>;
}

export function client(baseUrl: string | undefined, token: string | undefined): Client {
  if (!baseUrl) throw new ApiError("REFLEX_URL is not set (or pass --url)", 0);
  if (!token) throw new ApiError("REFLEX_ADMIN_TOKEN is not set (or pass --token)", 0);
  const base = baseUrl.replace(/\/+$/, "");
  return {
    async call<T>(method: string, path: string, body?: unknown): Promise<T> {
      let res: Response;
      try {
        res = await fetch(base + path, {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            ...(body === undefined ? {} : { "content-type": "application/json" }),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch (e) {
        throw new UnreachableError(`cannot reach ${base}: ${(e as Error).cause ?? (e as Error).message}`);
      }
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        /* not JSON: keep the text */
      }
      if (!res.ok) {
        const p = parsed as { title?: string; detail?: string } | undefined;
        const why =
          p && typeof p === "object" ? [p.title, p.detail].filter(Boolean).join(": ") : String(text).slice(0, 200);
        throw new ApiError(`${method} ${path} -> ${res.status}${why ? ` ${why}` : ""}`, res.status, parsed);
      }
      return parsed as T;
    },
  };
}

export function query(params: Record<string, string | number | string[] | undefined | boolean>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === false) continue;
    if (Array.isArray(v)) for (const x of v) q.append(k, x);
    else q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}
