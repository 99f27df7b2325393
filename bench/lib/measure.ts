/** Timing and statistics helpers for benchmarks. */
import { readdirSync, readFileSync } from "node:fs";

export const MiB = 1024 * 1024;

/** Runs `fn` and returns its result with the elapsed milliseconds (monotonic clock). */
export async function timed<T>(fn: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const start = performance.now();
  const result = await fn();
  return { result, ms: performance.now() - start };
}

/** Throughput in MB/s (10^6 bytes per second, as `sftp` and rclone print them). */
export function mbps(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000);
}

export function median(values: number[]): number {
  return quantile(values, 0.5);
}

/** Nearest-rank quantile (p95 of 20 samples is the 19th smallest). */
export function quantile(values: number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1] as number;
}

/** Rounds for display: 3 significant digits, no exponent. */
export function round(value: number): number {
  if (!Number.isFinite(value) || value === 0) return value;
  const digits = Math.max(0, 2 - Math.floor(Math.log10(Math.abs(value))));
  return Number(value.toFixed(Math.min(digits, 6)));
}

/** VmHWM (peak resident set) of a live process in bytes, or undefined when it is gone. */
export function vmHwm(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** utime, stime, cutime, cstime of a process in ms (clock ticks of 10 ms); undefined when gone. */
function cpuFields(pid: number | "self"): [number, number, number, number] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after "(comm)" start at field 3 (state): utime is field 14, cstime field 17.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return [f[11], f[12], f[13], f[14]].map((x) => Number(x) * 10) as [
      number,
      number,
      number,
      number,
    ];
  } catch {
    return undefined;
  }
}

/** CPU time (user + system) a live process has used, in ms; undefined when it is gone. */
export function cpuMs(pid: number): number | undefined {
  const f = cpuFields(pid);
  return f && f[0] + f[1];
}

/** CPU time of this process's children that have exited (and of theirs), in ms. */
export function childrenCpuMs(): number {
  const f = cpuFields("self");
  return f ? f[2] + f[3] : 0;
}

/**
 * CPU time of a server and all its sessions, in ms: its own, that of sessions already
 * reaped, and that of live descendants (e.g. sshd's per-connection processes).
 */
export function treeCpuMs(pid: number): number {
  const all = (p: number): number => {
    const f = cpuFields(p);
    if (!f) return 0;
    let sum = f[0] + f[1] + f[2] + f[3];
    for (const child of childPids(p)) sum += all(child);
    return sum;
  };
  return all(pid);
}

function childPids(pid: number): number[] {
  try {
    const tasks = readdirSync(`/proc/${pid}/task`);
    return tasks.flatMap((t) =>
      readFileSync(`/proc/${pid}/task/${t}/children`, "utf8")
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map(Number),
    );
  } catch {
    return [];
  }
}

/**
 * Samples a child's peak RSS (VmHWM, which the kernel keeps as a high-water mark) and CPU time
 * until `stop()`. The kernel's own mark makes the sampling interval matter little for the RSS:
 * only growth in the last interval before exit can be missed (CPU time likewise).
 */
export function sampleProcess(
  pid: number,
  intervalMs = 20,
): { stop(): { peakRss: number; cpuMs: number } } {
  let peakRss = 0;
  let cpu = 0;
  const sample = () => {
    const rss = vmHwm(pid);
    if (rss !== undefined && rss > peakRss) peakRss = rss;
    const c = cpuMs(pid);
    if (c !== undefined && c > cpu) cpu = c;
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return { peakRss, cpuMs: cpu };
    },
  };
}
