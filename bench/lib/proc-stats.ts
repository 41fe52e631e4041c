// CPU and memory of another process from /proc (Linux), and a description of the machine so
// figures taken on a loaded machine say so.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

let clkTck: number | undefined;
export function ticksPerSecond(): number {
  clkTck ??= Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  return clkTck;
}

/** User + system CPU seconds the process has used so far. */
export function cpuSeconds(pid: number, tid?: string): number {
  const stat = readFileSync(tid ? `/proc/${pid}/task/${tid}/stat` : `/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / ticksPerSecond();
}

/** CPU seconds used by the children this process has waited for (cutime + cstime). */
export function childrenCpuSeconds(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) / ticksPerSecond();
}

/** Resident set size in bytes. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** A CPU-time / wall-time window over a process: start() then stop(). */
export class CpuWindow {
  readonly pid: number;
  #cpu0 = 0;
  #t0 = 0;
  #threads = new Map<string, number>();
  constructor(pid: number) {
    this.pid = pid;
  }
  start(): void {
    this.#cpu0 = cpuSeconds(this.pid);
    this.#threads = threadCpu(this.pid);
    this.#t0 = performance.now();
  }
  /** CPU seconds used and wall seconds elapsed since start(), and which threads used it. */
  stop(): { cpu: number; wall: number; threads: string } {
    return { cpu: cpuSeconds(this.pid) - this.#cpu0, wall: (performance.now() - this.#t0) / 1000, threads: threadLine(this.#threads, threadCpu(this.pid)) };
  }
}

export function machine(): string {
  const cpus = os.cpus();
  const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  return `${cpus.length} cores (${cpus[0]?.model.trim() ?? 'unknown'}), load average ${load}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, node ${process.version}, ${os.type()} ${os.release()}`;
}

export function loadAverage(): string {
  return os.loadavg().map((l) => l.toFixed(2)).join(' ');
}

export const MiB = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MB`;

/** CPU seconds by thread name (main thread, V8 workers, libuv pool…), summed over threads of a name. */
export function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      out.set(name, (out.get(name) ?? 0) + cpuSeconds(pid, tid));
    } catch {
      // the thread ended
    }
  }
  return out;
}

export function threadLine(before: Map<string, number>, after: Map<string, number>): string {
  return [...after].map(([k, v]) => [k, v - (before.get(k) ?? 0)] as const).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v.toFixed(2)} s`).join(', ') || 'none';
}

/**
 * Where the RSS is, from /proc/<pid>/smaps: file-backed pages (the node binary and shared
 * libraries, shareable between processes) and anonymous memory (the V8 heap, malloc arenas,
 * thread stacks).
 */
export function rssBreakdown(pid: number): { file: number; anon: number; top: [string, number][] } {
  const byMapping = new Map<string, number>();
  let file = 0;
  let anon = 0;
  let current = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      current = head[1] || '[anon]';
      continue;
    }
    const m = /^Rss:\s+(\d+) kB/.exec(line);
    if (!m) continue;
    const b = Number(m[1]) * 1024;
    byMapping.set(current, (byMapping.get(current) ?? 0) + b);
    if (current.startsWith('/')) file += b;
    else anon += b;
  }
  return { file, anon, top: [...byMapping].sort((a, b) => b[1] - a[1]).slice(0, 5) };
}
