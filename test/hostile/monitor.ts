// Watches the controller process while the corpus runs: event-loop delay from its /metrics
// (the max since the previous scrape: we are the only scraper), RSS and peak RSS from
// /proc/<pid>/status, and liveness. A process that exits, stops answering for `stallMs`, or grows
// past `rssHardCapBytes` is reported at once, so the runner can blame the cases in flight, kill it
// (by PID: we started it) and carry on with a fresh one instead of waiting hours or swapping.
import { readFileSync } from 'node:fs';

/**
 * Event-loop delay, two ways: prom-client's default `nodejs_eventloop_lag_max_seconds` is the
 * maximum since the previous scrape (monitorEventLoopDelay, reset at every scrape; we are the only
 * scraper), which is what a per-case window needs; the controller's own
 * `ocisource_event_loop_delay_seconds{quantile="1"}` (issue 7) is the maximum over the process's
 * life, reported in the summary.
 */
export const WindowDelayMetric = 'nodejs_eventloop_lag_max_seconds';
export const LifetimeDelayMetric = 'ocisource_event_loop_delay_seconds';

export interface Sample {
  t: number;
  pid: number;
  /** The scrape answered. */
  ok: boolean;
  /** Max event-loop delay since the previous scrape (seconds), when the scrape answered. */
  delayMaxS?: number;
  /** Max event-loop delay over the process's life, as the controller reports it. */
  lifetimeMaxS?: number;
  rssBytes?: number;
  hwmBytes?: number;
}

export interface Trouble {
  t: number;
  pid: number;
  /** `stuck`: a case got no answer, so a reconcile may still be chewing on its input. */
  kind: 'exit' | 'stall' | 'rss' | 'stuck';
  detail: string;
}

export interface Target {
  pid: number;
  metricsPort: number;
  running(): boolean;
}

export interface MonitorOptions {
  intervalMs: number;
  stallMs: number;
  rssHardCapBytes: number;
  onTrouble(t: Trouble): void;
}

export function procStatus(pid: number): { rssBytes: number; hwmBytes: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
    const rssBytes = kb('VmRSS');
    const hwmBytes = kb('VmHWM');
    return Number.isFinite(rssBytes) && Number.isFinite(hwmBytes) ? { rssBytes, hwmBytes } : undefined;
  } catch {
    return undefined;
  }
}

export function parseDelays(text: string): { windowMaxS?: number; lifetimeMaxS?: number } {
  const num = (re: RegExp) => {
    const m = re.exec(text);
    return m && m[1] !== 'NaN' ? Number(m[1]) : undefined;
  };
  const windowMaxS = num(new RegExp(`^${WindowDelayMetric}(?:\\{[^}]*\\})? ([0-9.eE+-]+|NaN)$`, 'm'));
  const lifetimeMaxS = num(new RegExp(`^${LifetimeDelayMetric}\\{quantile="1"\\} ([0-9.eE+-]+|NaN)$`, 'm'));
  return { ...(windowMaxS !== undefined ? { windowMaxS } : {}), ...(lifetimeMaxS !== undefined ? { lifetimeMaxS } : {}) };
}

export class Monitor {
  readonly samples: Sample[] = [];
  readonly troubles: Trouble[] = [];
  readonly #opts: MonitorOptions;
  #target: Target;
  #timer: NodeJS.Timeout | undefined;
  #inflight: Promise<Sample> | undefined;
  #lastOk = Date.now();
  #reported = new Set<string>();

  constructor(target: Target, opts: MonitorOptions) {
    this.#target = target;
    this.#opts = opts;
  }

  /** We are about to kill `pid` ourselves: its exit is no news. */
  expectExit(pid: number): void {
    for (const k of ['exit', 'stall', 'rss']) this.#reported.add(`${pid}:${k}`);
  }

  /** Watch another process (after a restart). */
  retarget(target: Target): void {
    this.#target = target;
    this.#lastOk = Date.now();
  }

  start(): void {
    this.#timer = setInterval(() => void this.tick(), this.#opts.intervalMs);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  async tick(): Promise<void> {
    const target = this.#target;
    if (!target.running()) {
      this.#trouble({ t: Date.now(), pid: target.pid, kind: 'exit', detail: 'the controller process exited' });
      return;
    }
    const st = procStatus(target.pid);
    if (st && st.rssBytes > this.#opts.rssHardCapBytes) {
      this.#trouble({ t: Date.now(), pid: target.pid, kind: 'rss', detail: `RSS ${mib(st.rssBytes)} over the hard cap ${mib(this.#opts.rssHardCapBytes)}` });
    }
    if (this.#inflight) {
      if (Date.now() - this.#lastOk > this.#opts.stallMs) {
        this.#trouble({ t: Date.now(), pid: target.pid, kind: 'stall', detail: `/metrics unanswered for ${Math.round((Date.now() - this.#lastOk) / 1000)} s (event loop blocked)` });
      }
      return;
    }
    await this.sample();
  }

  /** One scrape now (waits for a scrape already in flight). */
  sample(): Promise<Sample> {
    if (this.#inflight) return this.#inflight;
    const target = this.#target;
    this.#inflight = (async () => {
      const t0 = Date.now();
      const s: Sample = { t: t0, pid: target.pid, ok: false };
      try {
        const res = await fetch(`http://127.0.0.1:${target.metricsPort}/metrics`, { signal: AbortSignal.timeout(this.#opts.stallMs) });
        const text = await res.text();
        const d = parseDelays(text);
        s.ok = res.status === 200;
        if (d.windowMaxS !== undefined) s.delayMaxS = d.windowMaxS;
        if (d.lifetimeMaxS !== undefined) s.lifetimeMaxS = d.lifetimeMaxS;
      } catch {
        s.ok = false;
      }
      s.t = Date.now();
      const st = procStatus(target.pid);
      if (st) Object.assign(s, st);
      if (s.ok) this.#lastOk = s.t;
      this.samples.push(s);
      return s;
    })().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  #trouble(t: Trouble): void {
    const key = `${t.pid}:${t.kind}`;
    if (this.#reported.has(key)) return;
    this.#reported.add(key);
    this.troubles.push(t);
    this.#opts.onTrouble(t);
  }

  /**
   * What happened between `from` and `to`: the worst delay of the scrapes covering that time (a
   * scrape reports the interval since the previous one, so the first scrape after `to` counts),
   * the largest RSS, and any trouble.
   */
  window(from: number, to: number): { maxDelayS: number; maxRssBytes: number; troubles: Trouble[]; samples: number } {
    let maxDelayS = 0;
    let maxRssBytes = 0;
    let n = 0;
    let prevT = 0;
    for (const s of this.samples) {
      if (prevT > to) break;
      if (s.t >= from) {
        n++;
        if (s.delayMaxS !== undefined) maxDelayS = Math.max(maxDelayS, s.delayMaxS);
        if (s.rssBytes !== undefined) maxRssBytes = Math.max(maxRssBytes, s.rssBytes);
      }
      prevT = s.t;
    }
    // A stall is reported stallMs after the loop stopped answering: it concerns the window if the
    // block began before the window ended. The other troubles happen at the moment they are seen.
    const within = (t: Trouble) => (t.kind === 'stall' ? t.t >= from && t.t - this.#opts.stallMs <= to : t.t >= from && t.t <= to);
    return { maxDelayS, maxRssBytes, troubles: this.troubles.filter(within), samples: n };
  }

  summary(): { maxDelayS: number; lifetimeMaxS: number | undefined; peakHwmBytes: number; maxRssBytes: number; samples: number } {
    let maxDelayS = 0;
    let lifetimeMaxS: number | undefined;
    let peakHwmBytes = 0;
    let maxRssBytes = 0;
    for (const s of this.samples) {
      if (s.delayMaxS !== undefined) maxDelayS = Math.max(maxDelayS, s.delayMaxS);
      if (s.lifetimeMaxS !== undefined) lifetimeMaxS = Math.max(lifetimeMaxS ?? 0, s.lifetimeMaxS);
      if (s.hwmBytes !== undefined) peakHwmBytes = Math.max(peakHwmBytes, s.hwmBytes);
      if (s.rssBytes !== undefined) maxRssBytes = Math.max(maxRssBytes, s.rssBytes);
    }
    return { maxDelayS, lifetimeMaxS, peakHwmBytes, maxRssBytes, samples: this.samples.length };
  }
}

export const mib = (b: number): string => `${(b / (1 << 20)).toFixed(0)} MiB`;
