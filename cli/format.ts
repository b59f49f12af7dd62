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
