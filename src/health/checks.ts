/**
 * Dependency checks and the health verdict. Every indicator is healthy, degraded or
 * unhealthy; the overall status is the worst of them.
 */
export type Level = "healthy" | "degraded" | "unhealthy";

export interface Indicator {
  status: Level;
  [figure: string]: unknown;
}

const ORDER: Record<Level, number> = { healthy: 0, degraded: 1, unhealthy: 2 };

export function worst(levels: Level[]): Level {
  return levels.reduce<Level>((a, b) => (ORDER[b] > ORDER[a] ? b : a), "healthy");
}

/** A figure against its threshold: above it is degraded. */
export function threshold(value: number, degradedAbove: number, extra: Record<string, unknown> = {}): Indicator {
  return { status: value > degradedAbove ? "degraded" : "healthy", value, threshold: degradedAbove, ...extra };
}

/**
 * Times one call to a dependency. A failure, or no answer within `timeoutMs`, is
 * unhealthy (with the error's message: never credentials, which live in URLs we don't
 * print); slower than `degradedMs` is degraded.
 */
export async function probe(call: () => Promise<void>, timeoutMs: number, degradedMs: number): Promise<Indicator> {
  const started = Date.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      call(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    const latency = Date.now() - started;
    return { status: latency > degradedMs ? "degraded" : "healthy", latency_ms: latency };
  } catch (e) {
    return { status: "unhealthy", latency_ms: Date.now() - started, error: oneLine(e) };
  } finally {
    clearTimeout(timer);
  }
}

function oneLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  // Upstash errors end with ", command was: [...]": the command is noise here.
  return msg.split(", command was:")[0].replace(/\s+/g, " ").slice(0, 200);
}
