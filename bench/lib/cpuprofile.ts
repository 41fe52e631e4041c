// Summarises a V8 .cpuprofile (node --cpu-prof) over a time window: self time by function and by
// area (our folders, npm packages, Node internals, GC). Profile timestamps are CLOCK_MONOTONIC
// microseconds, the clock of process.hrtime, so a window taken in another process lines up.
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  /** Milliseconds of samples inside the window, by category. */
  totalMs: number;
  idleMs: number;
  byFunction: { name: string; ms: number }[];
  byArea: { name: string; ms: number }[];
}

/** "src/controller/manager.ts", "undici", "node:internal/…" or the special V8 frames. */
export function areaOf(url: string, fn: string): string {
  if (!url) return `(${fn.replace(/[()]/g, '') || 'native'})`;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith('node:')) return url.replace(/^node:internal\/(?:deps\/)?([^/]+).*$/, 'node:$1');
  const ours = /\/((?:dist\/)?(?:src|bench|test)\/.*)$/.exec(url);
  return ours ? ours[1]!.replace(/^dist\//, '').replace(/\.js$/, '.ts') : url;
}

export function summariseProfile(file: string, window?: { fromUs: number; toUs: number }, top = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const fn = new Map<string, number>();
  const area = new Map<string, number>();
  let t = p.startTime;
  let total = 0;
  let idle = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    // A sample's weight is the time until the next one.
    const w = (p.timeDeltas[i + 1] ?? 0) / 1000;
    if (window && (t < window.fromUs || t > window.toUs)) continue;
    const node = byId.get(p.samples[i]!);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') {
      idle += w;
      continue;
    }
    total += w;
    const a = areaOf(url, functionName);
    const key = `${functionName || '(anonymous)'} ${url ? `${a}:${lineNumber + 1}` : ''}`.trim();
    fn.set(key, (fn.get(key) ?? 0) + w);
    area.set(a, (area.get(a) ?? 0) + w);
  }
  const sorted = (m: Map<string, number>) => [...m].sort((x, y) => y[1] - x[1]).slice(0, top).map(([name, ms]) => ({ name, ms }));
  return { totalMs: total, idleMs: idle, byFunction: sorted(fn), byArea: sorted(area) };
}

export function printProfile(s: ProfileSummary, perUnit?: { count: number; unit: string }): void {
  const per = (ms: number) => (perUnit && perUnit.count ? `  ${((ms / perUnit.count) * 1000).toFixed(1).padStart(8)} µs/${perUnit.unit}` : '');
  console.log(`  busy ${s.totalMs.toFixed(0)} ms, idle ${s.idleMs.toFixed(0)} ms in the window${per(s.totalMs)}`);
  console.log('  self time by area:');
  for (const r of s.byArea) console.log(`    ${r.ms.toFixed(1).padStart(9)} ms ${((100 * r.ms) / s.totalMs).toFixed(1).padStart(5)} %${per(r.ms)}  ${r.name}`);
  console.log('  self time by function:');
  for (const r of s.byFunction) console.log(`    ${r.ms.toFixed(1).padStart(9)} ms ${((100 * r.ms) / s.totalMs).toFixed(1).padStart(5)} %${per(r.ms)}  ${r.name}`);
}
