/** Small formatting helpers for the CLI's human output. */

/** "90s", "30m", "1h", "2d", "1w" -> milliseconds; null when it is not a duration. */
export function parseDuration(s: string): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$/.exec(s.trim());
  if (!m) return null;
  const unit = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 }[m[2] as "ms"];
  return Math.round(Number(m[1]) * unit);
}

/** A plain left-aligned text table of the given columns. */
export function table(rows: Record<string, unknown>[], cols: string[]): string {
  if (rows.length === 0) return "(none)";
  const cell = (v: unknown) => {
    const s = v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
    const one = s.replace(/\s+/g, " ");
    return one.length > 60 ? `${one.slice(0, 57)}...` : one;
  };
  const grid = [cols, ...rows.map((r) => cols.map((c) => cell(r[c])))];
  const widths = cols.map((_, i) => Math.max(...grid.map((g) => g[i].length)));
  return grid
    .map((g) =>
      g
        .map((c, i) => c.padEnd(widths[i]))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/**
 * Characters a terminal may act on rather than print: C0 controls but tab and newline
 * (ESC starts colour, cursor and title sequences), DEL, C1 controls (CSI and friends, which
 * JSON.stringify leaves as they are), and the bidirectional overrides that reorder what is
 * shown. Everything the CLI prints comes from the API, i.e. from clients' events.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

const escaped = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

/** Text for a terminal: each unsafe character shown as its \uXXXX escape instead. */
export function terminalSafe(s: string): string {
  return s.replace(UNSAFE, escaped);
}

/** JSON text whose strings keep no unsafe character raw (escaped: the JSON means the same). */
export function terminalSafeJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(UNSAFE, escaped);
}
