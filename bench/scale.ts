// Cost at scale (make bench-scale N=1000; make bench runs it with a small N): N cosign-signed
// artifacts, each its own repository in a real docker-registry, N OCIRepository objects
// (interval 1m) on a real kube-apiserver, and the controller as its own process with default
// flags and the RBAC we ship. Prints:
//   - time from `kubectl create` of all N to all Ready and SourceVerified;
//   - steady-state CPU (% of one core, ms per reconcile) from /proc over a window, with the
//     reconcile count from controller_runtime_reconcile_total;
//   - RSS idle (no objects) and loaded, with heap figures from the controller's own metrics;
//   - apiserver and registry requests per steady-state reconcile, counted by relays that only the
//     controller talks through;
//   - the floor: a bare Node loop doing the same N manifest HEADs per interval with the same HTTP
//     client (bench/floor.ts), its CPU and RSS, and ours ÷ floor.
// Options (flags or environment): --n N (20), --window SECONDS (90), --interval DUR (1m),
// --controller dist|src|PATH (dist when built: the image runs compiled JS; PATH: another build's main.js), --profile (--cpu-prof over
// the window, summarised), --heap (heap snapshots idle and loaded, summarised by constructor),
// --concurrent N (default: the controller's own default), --node-flags "…" (extra flags for the
// controller's node, e.g. --max-semi-space-size=2), --controller-args "…" (extra flags for the
// controller itself, e.g. --requeue-alignment=0), --burst-only (stop after all are Ready: for
// comparing --concurrent), --no-floor (skip the floors), --no-storm (skip the download storm: wrk
// on a 4 MiB artifact during a second window, reconcile latency and event-loop delay compared). --n 0 measures the idle controller only.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, promisify } from 'node:util';
import ts from 'typescript';
import { Group, Plural, Version, type OCIRepository } from '../src/api/schema.ts';
import { Informer, keyOf } from '../src/controller/informer.ts';
import { Kube } from '../src/controller/kube.ts';
import { EventLoopSampleMs } from '../src/controller/metrics.ts';
import { makeLogger } from '../src/util/log.ts';
import { createServerCert, freePort, keepTempDir, makeTempDir, pushTarGzArtifact, startCluster, startProcess, startRegistry, type Cluster, type ManagedProcess, type Registry } from '../test/harness/index.ts';
import { installController } from '../test/helpers/controller-env.ts';
import { generateKey, signLegacy } from '../test/helpers/cosign-sign.ts';
import { pushCosignSig } from '../test/helpers/push-signatures.ts';
import { projectRoot } from '../test/helpers/shared.ts';
import { printHeap, summariseHeap } from './lib/heapsnapshot.ts';
import { printProfile, summariseProfile } from './lib/cpuprofile.ts';
import { CpuWindow, loadAverage, machine, MiB, rssBreakdown, rssBytes } from './lib/proc-stats.ts';
import { classifyKube, classifyRegistry, diffCounts, startRelay, sum, type Relay } from './lib/relay.ts';

const { values: flags } = parseArgs({
  options: {
    n: { type: 'string', default: process.env.N || '20' },
    window: { type: 'string', default: process.env.WINDOW || '90' },
    interval: { type: 'string', default: process.env.INTERVAL || '1m' },
    controller: { type: 'string', default: process.env.CONTROLLER || (existsSync(path.join(projectRoot, 'dist/src/main.js')) ? 'dist' : 'src') },
    concurrent: { type: 'string', default: process.env.CONCURRENT || '' },
    profile: { type: 'boolean', default: !!process.env.PROFILE },
    heap: { type: 'boolean', default: !!process.env.HEAP },
    'node-flags': { type: 'string', default: process.env.NODE_FLAGS || '' },
    'controller-args': { type: 'string', default: process.env.CONTROLLER_ARGS || '' },
    'burst-only': { type: 'boolean', default: !!process.env.BURST_ONLY },
    'no-floor': { type: 'boolean', default: !!process.env.NO_FLOOR },
    'no-storm': { type: 'boolean', default: !!process.env.NO_STORM },
  },
});
const N = Number(flags.n);
const windowS = Number(flags.window);
const intervalMs = (() => {
  const m = /^(\d+)(s|m)$/.exec(flags.interval!);
  if (!m) throw new Error(`--interval must look like 30s or 1m`);
  return Number(m[1]) * (m[2] === 'm' ? 60_000 : 1000);
})();
// dist, src, or the path of another build's main.js (a before/after comparison from one tree).
const entry = flags.controller === 'dist' ? path.join(projectRoot, 'dist/src/main.js') : flags.controller === 'src' ? path.join(projectRoot, 'src/main.ts') : path.resolve(flags.controller!);
if (!existsSync(entry)) throw new Error(`${entry} not found (make build)`);
const StormBytes = 4 << 20;
const Namespace = 'bench';
const Repo = 'bench/app-';
const Tag = 'v1';

const log = (msg: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

/** Runs `fn` over 0..n-1 with at most `limit` in flight. */
async function pool(n: number, limit: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, n) }, async () => {
    while (next < n) await fn(next++);
  }));
}

async function metrics(port: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}
const reconcileTotal = (m: Map<string, number>) => [...m].filter(([k]) => k.startsWith('controller_runtime_reconcile_total')).reduce((a, [, v]) => a + v, 0);
const reconcileErrors = (m: Map<string, number>) => [...m].filter(([k]) => k.startsWith('controller_runtime_reconcile_total') && k.includes('result="error"')).reduce((a, [, v]) => a + v, 0);
const metric = (m: Map<string, number>, name: string) => m.get(name) ?? NaN;

/** --node-flags, which the floors get too: same runtime, same conditions. */
const nodeFlagsOf = () => flags['node-flags']!.split(' ').filter(Boolean);

interface Controller {
  proc: ManagedProcess;
  metricsPort: number;
  dir: string;
}

/**
 * The controller as the image runs it: `run` with default flags, except that every address is on
 * loopback (the defaults listen on all interfaces) and storage lives in a temp dir.
 */
async function startController(kubeconfig: string, dir: string): Promise<Controller> {
  const metricsPort = await freePort();
  const storagePort = await freePort();
  const nodeFlags = [
    ...nodeFlagsOf(),
    ...(flags.profile ? ['--cpu-prof', `--cpu-prof-dir=${path.join(dir, 'profile')}`] : []),
    ...(flags.heap ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${path.join(dir, 'heap')}`] : []),
  ];
  mkdirSync(path.join(dir, 'heap'), { recursive: true });
  const proc = await startProcess({
    name: 'oci-source-controller',
    cmd: process.execPath,
    args: [
      ...nodeFlags,
      entry,
      'run',
      '--kubeconfig', kubeconfig,
      '--storage-path', path.join(dir, 'data'),
      '--storage-addr', `127.0.0.1:${storagePort}`,
      '--metrics-addr', `127.0.0.1:${metricsPort}`,
      ...(flags.concurrent ? ['--concurrent', flags.concurrent] : []),
      ...(flags['controller-args'] ? flags['controller-args'].split(/\s+/).filter(Boolean) : []),
    ],
    logFile: path.join(dir, 'controller.log'),
    ready: { url: `http://127.0.0.1:${metricsPort}/readyz`, okStatus: [200], timeoutMs: 120_000 },
  });
  return { proc, metricsPort, dir };
}

/** Signals the controller to write a heap snapshot and summarises it. */
async function heapSnapshot(c: Controller, label: string): Promise<void> {
  const dir = path.join(c.dir, 'heap');
  const before = new Set(readdirSync(dir));
  process.kill(c.proc.pid, 'SIGUSR2');
  for (let i = 0; i < 600; i++) {
    await sleep(500);
    const f = readdirSync(dir).find((x) => !before.has(x) && x.endsWith('.heapsnapshot'));
    // Written by the main thread in one go; done when the JSON is complete.
    if (f) {
      let summary;
      for (let j = 0; j < 120 && !summary; j++) {
        await sleep(1000);
        try {
          summary = summariseHeap(path.join(dir, f));
        } catch {
          // still being written
        }
      }
      if (!summary) break;
      console.log(`\nheap snapshot, ${label}:`);
      printHeap(summary);
      rmSync(path.join(dir, f));
      return;
    }
  }
  console.log(`heap snapshot (${label}) not written`);
}

interface Memory {
  rss: number;
  /** RSS in file-backed pages (node binary, libraries) and anonymous memory. */
  file: number;
  anon: number;
  heapUsed: number;
  heapTotal: number;
  /** Committed young generation (part of heapTotal): what a busy start-up leaves resident. */
  newSpace: number;
  external: number;
}

/** Memory of the controller: RSS from /proc, heap and external from its own metrics. */
async function memory(c: Controller): Promise<Memory> {
  const m = await metrics(c.metricsPort);
  const b = rssBreakdown(c.proc.pid);
  return {
    rss: rssBytes(c.proc.pid),
    file: b.file,
    anon: b.anon,
    heapUsed: metric(m, 'nodejs_heap_size_used_bytes'),
    heapTotal: metric(m, 'nodejs_heap_size_total_bytes'),
    newSpace: metric(m, 'nodejs_heap_space_size_total_bytes{space="new"}'),
    external: metric(m, 'nodejs_external_memory_bytes'),
  };
}
const memLine = (m: Memory) => `RSS ${MiB(m.rss)} (file-backed ${MiB(m.file)}, anonymous ${MiB(m.anon)}): V8 heap used ${MiB(m.heapUsed)} of ${MiB(m.heapTotal)} committed (young generation ${MiB(m.newSpace)}), external ${MiB(m.external)}`;

/** RSS samples every 5 s over `seconds`: the median, and the series' first, min, max and last. */
async function sampleRss(pid: number, seconds: number): Promise<{ median: number; series: string }> {
  const rss: number[] = [];
  for (let t = 0; t < seconds; t += 5) {
    await sleep(Math.min(5, seconds - t) * 1000);
    rss.push(rssBytes(pid));
  }
  const sorted = [...rss].sort((a, b) => a - b);
  const mb = (b: number) => (b / 2 ** 20).toFixed(0);
  return { median: sorted[Math.floor(sorted.length / 2)]!, series: `first ${mb(rss[0]!)}, min ${mb(sorted[0]!)}, max ${mb(sorted.at(-1)!)}, last ${mb(rss.at(-1)!)} MB` };
}

interface WindowStats {
  seconds: number;
  reconciles: number;
  meanS: number;
  /** Share of reconciles slower than 100 ms (histogram bucket le="0.1"). */
  over100ms: number;
  /**
   * prom-client's event-loop lag figures, which it resets at every scrape: the window between two
   * scrapes. They include the monitor's sampling interval, subtracted here so they read as delay.
   */
  lagP99S: number;
  lagMaxS: number;
}

/** Reconcile durations (all objects' histograms added up) and event-loop delay between two scrapes. */
function windowStats(a: Map<string, number>, b: Map<string, number>, seconds: number): WindowStats {
  const total = (m: Map<string, number>, prefix: string, le?: string) =>
    [...m].filter(([k]) => k.startsWith(prefix) && (le === undefined || k.includes(`le="${le}"`))).reduce((acc, [, v]) => acc + v, 0);
  const H = 'ocisource_reconcile_duration_seconds';
  const count = total(b, `${H}_count`) - total(a, `${H}_count`);
  const sumS = total(b, `${H}_sum`) - total(a, `${H}_sum`);
  const fast = total(b, `${H}_bucket`, '0.1') - total(a, `${H}_bucket`, '0.1');
  return { seconds, reconciles: count, meanS: count ? sumS / count : NaN, over100ms: count ? 1 - fast / count : NaN, lagP99S: metric(b, 'nodejs_eventloop_lag_p99_seconds') - EventLoopSampleMs / 1000, lagMaxS: metric(b, 'nodejs_eventloop_lag_max_seconds') - EventLoopSampleMs / 1000 };
}

/**
 * wrk hammers object 0's 4 MiB artifact from the controller's artifact server for `seconds`,
 * while every object keeps reconciling: do reconciles slow down, does the event loop stall?
 */
async function downloadStorm(ctl: Controller, admin: Kube, seconds: number): Promise<{ seconds: number; rps: number; stats: WindowStats }> {
  const o = await admin.request<OCIRepository>('GET', `/apis/${Group}/${Version}/namespaces/${Namespace}/${Plural}/app-0`);
  const url = o.status?.artifact?.url;
  if (!url) throw new Error('app-0 has no artifact URL');
  const size = Number((await fetch(url, { method: 'HEAD' })).headers.get('content-length'));
  if (size < StormBytes) throw new Error(`app-0's artifact is ${size} bytes, expected the 4 MiB one`);
  const m0 = await metrics(ctl.metricsPort);
  const t0 = performance.now();
  const { stdout } = await promisify(execFile)('wrk', ['-t2', '-c16', `-d${seconds}s`, url]);
  const wall = (performance.now() - t0) / 1000;
  const m1 = await metrics(ctl.metricsPort);
  if (/Non-2xx or 3xx responses/.test(stdout)) throw new Error(`the artifact server answered errors under load:\n${stdout}`);
  return { seconds: wall, rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]), stats: windowStats(m0, m1, wall) };
}

async function pushArtifacts(reg: Registry, pub: ReturnType<typeof generateKey>): Promise<void> {
  const t = performance.now();
  await pool(N, 8, async (i) => {
    const files: Record<string, string | Buffer> = { 'deploy.yaml': `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-${i}\ndata:\n  index: "${i}"\n` };
    // The artifact the download storm fetches: 4 MiB that gzip cannot shrink.
    if (i === 0 && !flags['no-storm']) files['blob.bin'] = randomBytes(StormBytes);
    const a = await pushTarGzArtifact(reg, `${Repo}${i}`, Tag, files);
    await pushCosignSig(reg, `${Repo}${i}`, a.manifestDigest, [signLegacy(pub, a.manifestDigest)]);
  });
  log(`pushed ${N} signed artifacts in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}

function objectsManifest(registryHost: string): string {
  const items = Array.from({ length: N }, (_, i) => ({
    apiVersion: `${Group}/${Version}`,
    kind: 'OCIRepository',
    metadata: { name: `app-${i}`, namespace: Namespace },
    spec: { url: `oci://${registryHost}/${Repo}${i}`, interval: flags.interval, insecure: true, ref: { tag: Tag }, verify: { provider: 'cosign', secretRef: { name: 'cosign-pub' } } },
  }));
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items });
}

/** Watches the objects and resolves when every one is Ready and SourceVerified for its generation. */
function trackReady(kube: Kube): { all: Promise<void>; count: () => number; stop: () => Promise<void> } {
  const done = new Set<string>();
  let resolveAll!: () => void;
  const all = new Promise<void>((r) => (resolveAll = r));
  const check = (o: OCIRepository) => {
    const c = (t: string) => o.status?.conditions?.find((x) => x.type === t)?.status === 'True';
    if (o.status?.observedGeneration === o.metadata.generation && c('Ready') && c('SourceVerified')) done.add(keyOf(o));
    else done.delete(keyOf(o));
    if (done.size === N) resolveAll();
  };
  const inf = new Informer<OCIRepository>(kube, { path: `/apis/${Group}/${Version}/namespaces/${Namespace}/${Plural}`, log: makeLogger('silent') }, { onAdd: check, onUpdate: (_p, o) => check(o), onDelete: () => undefined });
  inf.start();
  return { all, count: () => done.size, stop: () => inf.stop() };
}

async function main(): Promise<void> {
  const work = makeTempDir('osc-bench-scale-');
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
    stops.length = 0;
  };
  try {
    if (flags.profile || flags.heap) console.log('note: --profile and --heap perturb the figures they explain (the profiler samples every 1 ms; a heap snapshot grows RSS); measure without them.');
    console.log(`bench/scale: N=${N} objects, interval ${flags.interval}, window ${windowS} s, controller ${path.relative(projectRoot, entry)}${flags.concurrent ? ` --concurrent ${flags.concurrent}` : ' (default flags)'}${flags['node-flags'] ? `, node ${flags['node-flags']}` : ''}`);
    console.log(`machine: ${machine()}\n`);
    const [reg, cluster] = await Promise.all([startRegistry(), startCluster()]);
    stops.push(() => reg.stop(), () => cluster.stop());
    // Relays the controller (and the floor) talk through, counting requests.
    const relayCert = await createServerCert(cluster.ca, { dir: path.join(work, 'pki'), name: 'relay' });
    const kubeRelay = await startRelay({ target: cluster.server, targetCa: cluster.caPem, tls: { cert: relayCert.certPem, key: relayCert.keyPem }, classify: classifyKube });
    const regRelay = await startRelay({ target: reg.url, classify: classifyRegistry });
    stops.push(() => kubeRelay.close(), () => regRelay.close());

    const kubeconfig = await installController(cluster, work);
    const viaRelay = path.join(work, 'controller-relay.kubeconfig');
    writeFileSync(viaRelay, readFileSync(kubeconfig, 'utf8').replace(cluster.server, kubeRelay.url), { mode: 0o600 });
    await cluster.kubectlOk(['create', 'namespace', Namespace]);
    const key = generateKey('p256');
    await cluster.kubectlOk(['-n', Namespace, 'create', 'secret', 'generic', 'cosign-pub', `--from-literal=cosign.pub=${key.pubPem}`]);
    if (N) await pushArtifacts(reg, key);

    // Idle: no objects.
    const ctl = await startController(viaRelay, path.join(work, 'controller'));
    stops.push(() => ctl.proc.stop(30_000));
    // Start-up work (lazy compilation, the first GCs) settles within seconds.
    await sleep(20_000);
    const idleCpu = new CpuWindow(ctl.proc.pid);
    const idleHr0 = process.hrtime.bigint();
    idleCpu.start();
    await sleep(20_000);
    const idleUse = idleCpu.stop();
    const idleHr1 = process.hrtime.bigint();
    const idle = await memory(ctl);
    const idleCpuRate = idleUse.cpu / idleUse.wall;
    log(`idle (no objects): ${memLine(idle)}; CPU ${(100 * idleCpuRate).toFixed(2)} % of a core (${idleUse.threads})`);
    if (flags.heap) await heapSnapshot(ctl, 'idle');

    // The floor's idle: a bare Node process with undici loaded.
    const floorJs = path.join(projectRoot, 'dist/bench/floor.mjs');
    mkdirSync(path.dirname(floorJs), { recursive: true });
    writeFileSync(floorJs, ts.transpileModule(readFileSync(path.join(import.meta.dirname, 'floor.ts'), 'utf8'), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2023 } }).outputText);
    const floorIdle = await startProcess({ name: 'floor', cmd: process.execPath, args: [...nodeFlagsOf(), floorJs, 'undici', regRelay.url, Repo, '0', String(intervalMs), Tag], logFile: path.join(work, 'floor-idle.log') });
    await sleep(3000);
    const fiw = new CpuWindow(floorIdle.pid);
    fiw.start();
    await sleep(10_000);
    const floorIdleCpuRate = fiw.stop().cpu / 10;
    const floorIdleRss = rssBytes(floorIdle.pid);
    await floorIdle.stop();

    const row = (what: string, o: string, f = '', r = '') => console.log(`  ${what.padEnd(58)} ${o.padStart(12)} ${f.padStart(12)} ${r.padStart(8)}`);
    const ratio = (ours: number, floor: number) => (Number.isFinite(ours / floor) ? `${(ours / floor).toFixed(1)}x` : 'n/a');
    if (!N) {
      console.log(`\nResults (idle only, load average now ${loadAverage()}):`);
      row('', 'ours', 'floor', 'ratio');
      row('RSS idle (no objects; floor: node with undici loaded)', MiB(idle.rss), MiB(floorIdleRss), ratio(idle.rss, floorIdleRss));
      row('CPU idle, % of one core', `${(100 * idleCpuRate).toFixed(2)} %`, `${(100 * floorIdleCpuRate).toFixed(2)} %`);
      await stopAll();
      if (flags.profile) printProfiles(ctl, { idle: [idleHr0, idleHr1] });
      return;
    }

    // Burst: kubectl create of all N, until all Ready and SourceVerified.
    const admin = Kube.load({ kubeconfig: cluster.adminKubeconfig });
    stops.push(async () => admin.close());
    const tracker = trackReady(admin);
    stops.push(() => tracker.stop());
    const manifest = path.join(work, 'objects.json');
    writeFileSync(manifest, objectsManifest(regRelay.host));
    const burstCpu = new CpuWindow(ctl.proc.pid);
    const kb = kubeRelay.counts();
    const rb = regRelay.counts();
    burstCpu.start();
    const burstHr0 = process.hrtime.bigint();
    const t0 = performance.now();
    await cluster.kubectlOk(['create', '-f', manifest]);
    const created = (performance.now() - t0) / 1000;
    const progress = setInterval(() => log(`  ${tracker.count()}/${N} Ready and SourceVerified`), 10_000);
    const timeoutMs = Math.max(300_000, N * 1000);
    const finished = await Promise.race([tracker.all.then(() => true), sleep(timeoutMs).then(() => false)]);
    clearInterval(progress);
    const readyS = (performance.now() - t0) / 1000;
    const burst = burstCpu.stop();
    const burstHr1 = process.hrtime.bigint();
    if (!finished) throw new Error(`only ${tracker.count()}/${N} objects became Ready within ${timeoutMs / 1000} s; see ${ctl.proc.logFile}`);
    const burstKube = diffCounts(kb, kubeRelay.counts());
    const burstReg = diffCounts(rb, regRelay.counts());
    log(`all ${N} Ready and SourceVerified ${readyS.toFixed(1)} s after kubectl create (kubectl create itself took ${created.toFixed(1)} s); controller CPU ${burst.cpu.toFixed(1)} s (${burst.threads})`);
    if (flags['burst-only']) {
      console.log(`  burst apiserver requests (${N} objects): ${[...burstKube].map(([k, v]) => `${k} ${v}`).join(', ')}`);
      console.log(`  load average now ${loadAverage()}`);
      await stopAll();
      if (flags.profile) printProfiles(ctl, { idle: [idleHr0, idleHr1], burst: [burstHr0, burstHr1] }, { objects: N });
      return;
    }

    // Steady state: nothing changes; every object is reconciled once per interval.
    await sleep(Math.min(15_000, intervalMs / 4));
    const win = new CpuWindow(ctl.proc.pid);
    const m0 = await metrics(ctl.metricsPort);
    const k0 = kubeRelay.counts();
    const r0 = regRelay.counts();
    const c0 = regRelay.connections();
    const hr0 = process.hrtime.bigint();
    win.start();
    const { median: loadedRss, series: loadedSeries } = await sampleRss(ctl.proc.pid, windowS);
    const used = win.stop();
    const hr1 = process.hrtime.bigint();
    const m1 = await metrics(ctl.metricsPort);
    const kube = diffCounts(k0, kubeRelay.counts());
    const regc = diffCounts(r0, regRelay.counts());
    const regConns = regRelay.connections() - c0;
    const reconciles = reconcileTotal(m1) - reconcileTotal(m0);
    const errors = reconcileErrors(m1) - reconcileErrors(m0);
    const loaded = await memory(ctl);
    log(`steady state over ${used.wall.toFixed(0)} s: ${reconciles} reconciles (${errors} errors), CPU ${used.cpu.toFixed(2)} s (${used.threads})`);
    if (flags.heap) await heapSnapshot(ctl, `loaded (${N} objects)`);
    const quiet = windowStats(m0, m1, used.wall);
    const storm = flags['no-storm'] ? undefined : await downloadStorm(ctl, admin, Math.min(windowS, 60));
    await ctl.proc.stop(30_000);

    // The floor: the same N HEADs per interval from a bare loop, through the same relay; with
    // the controller's client, and over a kept-alive connection (what undici does not do for HEAD).
    const floorS = Math.min(windowS, 90);
    const floors: Record<string, { cpu: number; perHead: number; marginal: number; rss: number; heads: number; conns: number; threads: string }> = {};
    for (const client of flags['no-floor'] ? [] : ['undici', 'undici-keepalive', 'undici-aligned', 'node-http']) {
      const floor = await startProcess({ name: 'floor', cmd: process.execPath, args: [...nodeFlagsOf(), floorJs, client, regRelay.url, Repo, String(N), String(intervalMs), Tag], logFile: path.join(work, `floor-${client}.log`) });
      stops.push(() => floor.stop());
      await sleep(Math.min(10_000, intervalMs / 4));
      const fw = new CpuWindow(floor.pid);
      const f0 = regRelay.counts();
      const fc0 = regRelay.connections();
      fw.start();
      const rss = (await sampleRss(floor.pid, floorS)).median;
      const fused = fw.stop();
      const heads = sum(diffCounts(f0, regRelay.counts()));
      const conns = regRelay.connections() - fc0;
      await floor.stop();
      floors[client] = { cpu: fused.cpu / fused.wall, perHead: fused.cpu / heads, marginal: (fused.cpu - floorIdleCpuRate * fused.wall) / heads, rss, heads, conns, threads: `${heads} HEADs in ${fused.wall.toFixed(0)} s; ${fused.threads}` };
    }
    const none = { cpu: NaN, perHead: NaN, marginal: NaN, rss: NaN, heads: NaN, conns: NaN, threads: 'not run' };
    const fl = floors.undici ?? none;
    const fk = floors['node-http'] ?? none;
    const fu = floors['undici-keepalive'] ?? none;
    const fa = floors['undici-aligned'] ?? none;
    const floorLoadedRss = fl.rss;
    const ours = { cpu: used.cpu / used.wall, perRec: used.cpu / reconciles, marginal: (used.cpu - idleCpuRate * used.wall) / reconciles };
    const pct = (x: number) => `${(100 * x).toFixed(2)} %`;
    const msOf = (x: number) => `${(1000 * x).toFixed(2)} ms`;
    const perRec = (m: Map<string, number>) => (reconciles ? (sum(m) / reconciles).toFixed(2) : 'n/a');
    const detail = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
    console.log(`\nResults (N=${N}, interval ${flags.interval}, window ${windowS} s, load average now ${loadAverage()}):`);
    const row3 = (what: string, o: string, f = '', r = '', k = '', rk = '') => console.log(`  ${what.padEnd(58)} ${o.padStart(12)} ${f.padStart(12)} ${r.padStart(8)} ${k.padStart(12)} ${rk.padStart(8)}`);
    row3('', 'ours', 'floor', 'ratio', 'keep-alive', 'ratio');
    row3(`all ${N} Ready+SourceVerified after kubectl create`, `${readyS.toFixed(1)} s`);
    row3('steady state CPU, % of one core', pct(ours.cpu), pct(fl.cpu), ratio(ours.cpu, fl.cpu), pct(fk.cpu), ratio(ours.cpu, fk.cpu));
    row3('CPU per reconcile (floor: per HEAD)', msOf(ours.perRec), msOf(fl.perHead), ratio(ours.perRec, fl.perHead), msOf(fk.perHead), ratio(ours.perRec, fk.perHead));
    row3('  the same without the idle process cost', msOf(ours.marginal), msOf(fl.marginal), ratio(ours.marginal, fl.marginal), msOf(fk.marginal), ratio(ours.marginal, fk.marginal));
    row3('CPU idle (no objects), % of one core', pct(idleCpuRate), pct(floorIdleCpuRate));
    row3('RSS idle (no objects; floor: node with undici loaded)', MiB(idle.rss), MiB(floorIdleRss), ratio(idle.rss, floorIdleRss));
    row3(`RSS loaded (${N} objects; median over the window)`, MiB(loadedRss), MiB(floorLoadedRss), ratio(loadedRss, floorLoadedRss), MiB(fk.rss), ratio(loadedRss, fk.rss));
    row3('apiserver requests per steady-state reconcile', perRec(kube), '0');
    row3('registry requests per steady-state reconcile', perRec(regc), '1.00', '', '1.00');
    row3('new registry connections per steady-state reconcile', reconciles ? (regConns / reconciles).toFixed(2) : 'n/a', (fl.conns / fl.heads).toFixed(2), '', (fk.conns / fk.heads).toFixed(2));
    console.log('  floor: a bare loop with the same HTTP client (undici: a new connection per HEAD); keep-alive: node:http over kept-alive connections');
    console.log(`  floor with undici's reset: false on HEAD (connections kept): CPU ${pct(fu.cpu)}, ${msOf(fu.perHead)} per HEAD (${msOf(fu.marginal)} without the idle cost), ${Number.isFinite(fu.heads) ? (fu.conns / fu.heads).toFixed(2) : 'n/a'} new connections per HEAD, RSS ${MiB(fu.rss)}`);
    console.log(`  the same aligned as the controller's requeues (HEADs due in the same second run together, 4 at a time): CPU ${pct(fa.cpu)}, ${msOf(fa.perHead)} per HEAD (${msOf(fa.marginal)} without the idle cost); ours ÷ this: ${ratio(ours.perRec, fa.perHead)}`);
    console.log(`  steady-state apiserver requests: ${detail(kube)}`);
    console.log(`  steady-state registry requests: ${detail(regc)}`);
    console.log(`  burst apiserver requests (${N} objects): ${detail(burstKube)}`);
    console.log(`  burst registry requests (${N} objects): ${detail(burstReg)}`);
    console.log(`  idle controller ${memLine(idle)}`);
    console.log(`  loaded controller RSS over the window: ${loadedSeries}; at the end ${memLine(loaded)}`);
    console.log(`  floor (undici): ${fl.threads}; floor (keep-alive): ${fk.threads}`);
    if (storm) {
      console.log(`\nDownload storm: wrk -t2 -c16 on one 4 MiB artifact for ${storm.seconds.toFixed(0)} s (${storm.rps.toFixed(0)} req/s, ${MiB(storm.rps * StormBytes)}/s) while all ${N} objects reconcile on their interval:`);
      const row2 = (what: string, a: string, b: string) => console.log(`  ${what.padEnd(58)} ${a.padStart(12)} ${b.padStart(12)}`);
      row2('', 'quiet', 'storm');
      row2('reconciles per minute', (quiet.reconciles / (quiet.seconds / 60)).toFixed(0), (storm.stats.reconciles / (storm.seconds / 60)).toFixed(0));
      row2('reconcile duration, mean', msOf(quiet.meanS), msOf(storm.stats.meanS));
      row2('reconciles taking over 100 ms', `${(100 * quiet.over100ms).toFixed(1)} %`, `${(100 * storm.stats.over100ms).toFixed(1)} %`);
      row2('event-loop delay, p99 / max over the window', `${msOf(quiet.lagP99S)} / ${msOf(quiet.lagMaxS)}`, `${msOf(storm.stats.lagP99S)} / ${msOf(storm.stats.lagMaxS)}`);
    }
    await stopAll();
    if (flags.profile) printProfiles(ctl, { idle: [idleHr0, idleHr1], burst: [burstHr0, burstHr1], steady: [hr0, hr1] }, { objects: N, reconciles });
  } finally {
    await stopAll();
    if (!process.env.KEEP) rmSync(work, { recursive: true, force: true });
    else {
      keepTempDir(work);
      console.log(`kept ${work}`);
    }
  }
}

/** The controller's CPU profile (written when it exits) over the idle, burst and steady-state windows. */
function printProfiles(ctl: Controller, windows: { idle: [bigint, bigint]; burst?: [bigint, bigint]; steady?: [bigint, bigint] }, counts: { objects?: number; reconciles?: number } = {}): void {
  const dir = path.join(ctl.dir, 'profile');
  const file = existsSync(dir) ? readdirSync(dir).find((f) => f.endsWith('.cpuprofile')) : undefined;
  if (!file) {
    console.log('no CPU profile written');
    return;
  }
  const w = ([a, b]: [bigint, bigint]) => ({ fromUs: Number(a / 1000n), toUs: Number(b / 1000n) });
  console.log(`\nCPU profile of the idle controller (no objects, ${(windows.idle[1] - windows.idle[0]) / 1_000_000_000n} s, main thread):`);
  printProfile(summariseProfile(path.join(dir, file), w(windows.idle), 12));
  if (windows.burst) {
    console.log(`\nCPU profile of the controller over the burst (${counts.objects} new objects, main thread):`);
    printProfile(summariseProfile(path.join(dir, file), w(windows.burst)), { count: counts.objects ?? 0, unit: 'object' });
  }
  if (windows.steady) {
    console.log(`\nCPU profile of the controller over the steady-state window (${counts.reconciles} reconciles, main thread):`);
    printProfile(summariseProfile(path.join(dir, file), w(windows.steady)), { count: counts.reconciles ?? 0, unit: 'reconcile' });
  }
}

await main();
// Everything started has been stopped; a handle left behind (a relay's or a client's socket)
// must not keep the benchmark from ending.
process.exit(process.exitCode ?? 0);
