/**
 * Per-minute bar charts as inline SVG: drawn on the server from numbers, no script and no
 * style attribute (the Content-Security-Policy allows neither inline), colours from CSS.
 */
import type { FC } from "hono/jsx";

export interface Series {
  /** Stacked from the bottom: each part is a class name (its colour) and a value. */
  parts: Array<{ cls: string; value: number; label: string }>;
  minute: string;
}

const W = 600;
const H = 170;
const LEFT = 40;
const BOTTOM = 22;
const TOP = 8;

/** 0, 1, 2, 5, 10, 20, 50, ... at or above `n`: round tick values. */
export function niceMax(n: number): number {
  if (n <= 0) return 4;
  const p = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= n) return m * p;
  return 10 * p;
}

const hhmm = (iso: string) => iso.slice(11, 16);

export const BarChart: FC<{ id: string; title: string; unit: string; data: Series[] }> = ({
  id,
  title,
  unit,
  data,
}) => {
  const totals = data.map((d) => d.parts.reduce((s, p) => s + p.value, 0));
  const max = niceMax(Math.max(0, ...totals));
  const sum = totals.reduce((a, b) => a + b, 0);
  const peak = Math.max(0, ...totals);
  const plotW = W - LEFT - 4;
  const plotH = H - TOP - BOTTOM;
  const slot = plotW / Math.max(1, data.length);
  const barW = Math.max(1, slot * 0.72);
  const y = (v: number) => TOP + plotH - (v / max) * plotH;
  const ticks = [0, max / 2, max];
  const first = data[0]?.minute;
  const last = data[data.length - 1]?.minute;
  const summary = `${title}: ${sum.toLocaleString("en-US")} in all, at most ${peak.toLocaleString("en-US")} ${unit} in one minute${
    first && last ? `, from ${hhmm(first)} to ${hhmm(last)} UTC` : ""
  }.`;
  return (
    <svg class="chart" viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby={`${id}-t`}>
      <title id={`${id}-t`}>{summary}</title>
      {ticks.map((t) => (
        <g>
          <line class="grid" x1={LEFT} x2={W - 4} y1={y(t)} y2={y(t)} />
          <text class="axis" x={LEFT - 6} y={y(t) + 3} text-anchor="end">
            {t % 1 ? t.toFixed(1) : t.toLocaleString("en-US")}
          </text>
        </g>
      ))}
      {data.map((d, i) => {
        const x = LEFT + i * slot + (slot - barW) / 2;
        let base = 0;
        const total = totals[i]!;
        const tip = `${hhmm(d.minute)} UTC: ${d.parts.map((p) => `${p.value.toLocaleString("en-US")} ${p.label}`).join(", ")}`;
        return (
          <g>
            <title>{tip}</title>
            {total === 0 ? (
              <rect
                class="bar empty"
                x={x.toFixed(1)}
                y={(TOP + plotH - 1).toFixed(1)}
                width={barW.toFixed(1)}
                height="1"
              />
            ) : (
              d.parts.map((p) => {
                if (p.value <= 0) return null;
                const top = y(base + p.value);
                const h = y(base) - top;
                base += p.value;
                return (
                  <rect
                    class={`bar ${p.cls}`}
                    x={x.toFixed(1)}
                    y={top.toFixed(1)}
                    width={barW.toFixed(1)}
                    height={Math.max(1, h).toFixed(1)}
                  />
                );
              })
            )}
          </g>
        );
      })}
      {data.map((d, i) =>
        i % 15 === 0 || i === data.length - 1 ? (
          <text
            class="axis"
            x={(i === data.length - 1 ? W - 4 : LEFT + i * slot + slot / 2).toFixed(1)}
            y={H - 6}
            text-anchor={i === data.length - 1 ? "end" : "middle"}
          >
            {hhmm(d.minute)}
          </text>
        ) : null,
      )}
    </svg>
  );
};
