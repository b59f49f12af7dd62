/**
 * Where a bench's CPU goes: the CPU time each part of this machine used over a span, from
 * /proc/<pid>/stat (user + system time). Parts: this process (the consumer, or a baseline's
 * workers), the stand-ins' process (local/standins-process.ts: the Upstash gateway and the
 * Neon proxy), Postgres (every `postgres` process), redis-server, and the rest of the
 * machine. A process that ends within the span loses its share; one that starts counts
 * from zero. Linux only: elsewhere cpuSample() answers null and nothing is printed.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

export type CpuPart = "this process" | "stand-ins" | "postgres" | "redis" | "other";
const PARTS: CpuPart[] = ["this process", "stand-ins", "postgres", "redis", "other"];

export interface CpuSample {
  /** pid -> [part, CPU ticks so far]. */
  procs: Map<number, [CpuPart, number]>;
  at: number;
}

let ticksPerSecond: number | undefined;

function partOf(pid: number, comm: string): CpuPart {
  if (pid === process.pid) return "this process";
  if (comm === "postgres") return "postgres";
  if (comm === "redis-server") return "redis";
  try {
    if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("standins-process")) return "stand-ins";
  } catch {
    // ended between the listing and this read
  }
  return "other";
}

/** The CPU time of every process now. */
export function cpuSample(): CpuSample | null {
  let pids: number[];
  try {
    pids = readdirSync("/proc")
      .filter((d) => /^\d+$/.test(d))
      .map(Number);
    ticksPerSecond ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return null;
  }
  const procs = new Map<number, [CpuPart, number]>();
  for (const pid of pids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      continue;
    }
    // "pid (comm) state ..." - comm may hold spaces; utime and stime are fields 14 and 15.
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(stat.indexOf("(") + 1, close);
    const f = stat.slice(close + 2).split(" ");
    procs.set(pid, [partOf(pid, comm), Number(f[11]) + Number(f[12])]);
  }
  return { procs, at: Date.now() };
}

/** CPU milliseconds per part between two samples. */
export function cpuSplit(a: CpuSample, b: CpuSample): Record<CpuPart, number> {
  const out = Object.fromEntries(PARTS.map((p) => [p, 0])) as Record<CpuPart, number>;
  for (const [pid, [part, ticks]] of b.procs) {
    const before = a.procs.get(pid)?.[1] ?? 0;
    out[part] += ((ticks - before) * 1000) / (ticksPerSecond ?? 100);
  }
  return out;
}

/** "<label> CPU ms per 1,000: this process 80, stand-ins 40, ...; all 180, wall 140" (per 1,000 `events`). */
export function formatCpu(label: string, a: CpuSample | null, b: CpuSample | null, events: number): string | null {
  if (!a || !b) return null;
  const split = cpuSplit(a, b);
  const per = (ms: number) => Math.round((ms * 1000) / events).toLocaleString("en-US");
  const total = PARTS.reduce((s, p) => s + split[p], 0);
  return (
    `${label} CPU ms per 1,000: ${PARTS.map((p) => `${p} ${per(split[p])}`).join(", ")}; ` +
    `all ${per(total)}, wall ${per(b.at - a.at)}`
  );
}
