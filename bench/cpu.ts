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

// --- CPU of named processes only -----------------------------------------------------------

/** CPU ticks (user + system) of `pid` and its start time in ticks since boot, or null once it has ended. */
function procTicks(pid: number): { ticks: number; start: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { ticks: Number(f[11]) + Number(f[12]), start: Number(f[19]) };
  } catch {
    return null;
  }
}

/** Seconds since boot, in CPU ticks (what /proc/<pid>/stat's starttime counts). */
function uptimeTicks(): number {
  return Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]) * (ticksPerSecond ?? 100);
}

/**
 * The pid of this process's child whose command line contains `needle` (the stand-ins'
 * process: local/standins-process.ts), or undefined.
 */
export function childPid(parent: number, needle: string): number | undefined {
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === parent && readFileSync(`/proc/${d}/cmdline`, "utf8").includes(needle)) return Number(d);
    } catch {
      // ended between the listing and the read
    }
  }
  return undefined;
}

/**
 * CPU milliseconds of named parts, each a set of pids, over a window, and nothing else. Fixed
 * parts (the consumer, the stand-ins, redis-server) are given by pid; a dynamic part (the
 * Postgres backends of the bench's database) is listed again by `poll` every `everyMs`
 * during the window, so that a backend that ends mid-window keeps its last reading, and
 * one that started after the window opened counts from zero. Linux only: start() answers
 * false elsewhere and stop() then answers null.
 */
export class CpuMeter {
  private first = new Map<number, number>();
  private last = new Map<number, number>();
  private partOf = new Map<number, string>();
  private t0 = 0;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> = Promise.resolve();

  constructor(
    private fixed: Record<string, Array<number | undefined>>,
    private dynamic?: { part: string; poll: () => Promise<number[]>; everyMs?: number },
  ) {}

  private read(pid: number, part: string, atStart: boolean): void {
    const p = procTicks(pid);
    if (!p) return;
    if (!this.partOf.has(pid)) {
      this.partOf.set(pid, part);
      // Seen first after the window opened: counts from zero only if it also started after.
      this.first.set(pid, atStart || p.start < this.t0 ? p.ticks : 0);
    }
    this.last.set(pid, p.ticks);
  }

  private async pollDynamic(atStart: boolean): Promise<void> {
    if (!this.dynamic) return;
    const pids = await this.dynamic.poll();
    for (const pid of pids) this.read(pid, this.dynamic.part, atStart);
  }

  /** Opens the window (after the dynamic part's first listing). */
  async start(): Promise<boolean> {
    try {
      ticksPerSecond ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
      readFileSync("/proc/uptime");
    } catch {
      return false;
    }
    const pids = this.dynamic ? await this.dynamic.poll() : [];
    this.t0 = uptimeTicks();
    for (const [part, list] of Object.entries(this.fixed))
      for (const pid of list) if (pid !== undefined) this.read(pid, part, true);
    for (const pid of pids) this.read(pid, this.dynamic!.part, true);
    if (this.dynamic) {
      this.timer = setInterval(() => {
        this.polling = this.polling.then(() => this.pollDynamic(false)).catch(() => {});
      }, this.dynamic.everyMs ?? 500);
    }
    return true;
  }

  /** Closes the window: CPU ms per part (null if start() answered false). */
  async stop(): Promise<Record<string, number> | null> {
    if (!this.t0) return null;
    clearInterval(this.timer);
    await this.polling;
    for (const pid of this.partOf.keys()) this.read(pid, this.partOf.get(pid)!, false);
    await this.pollDynamic(false).catch(() => {});
    const out: Record<string, number> = {};
    for (const part of [...Object.keys(this.fixed), ...(this.dynamic ? [this.dynamic.part] : [])]) out[part] = 0;
    for (const [pid, part] of this.partOf)
      out[part]! += (((this.last.get(pid) ?? 0) - (this.first.get(pid) ?? 0)) * 1000) / (ticksPerSecond ?? 100);
    return out;
  }
}
