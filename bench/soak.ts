// `make soak`: many cosign-signed OCIRepositories for a long time, with random faults from the
// fault matrix (test/integration/faults.test.ts) one after another, while tags keep moving.
// Prints the controller's RSS at start and end, the slowest recovery, and every object that
// stayed not Ready (or behind the newest pushed revision) for more than two intervals.
//
//   node bench/soak.ts [--objects 200] [--duration 30m] [--interval 1m] [--timeout 10s]
//                      [--max-retry-delay 1m] [--concurrent 4] [--seed N] [--json FILE]
// Environment: SOAK_OBJECTS, SOAK_DURATION, SOAK_INTERVAL, SOAK_SEED (flags win).
//
// Not part of `make test`: it runs for as long as it is told to.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { parseDuration, formatDuration } from '../src/controller/queue.ts';
import type { ActiveFault, Fault, Matcher } from '../test/harness/fault-proxy.ts';
import { runOk } from '../test/harness/proc.ts';
import { cond, type RepoObject } from '../test/helpers/controller-env.ts';
import { faultRepoObject, fillFilesystem, pushSigned, removeFiller, sha256, startBed, type Bed } from '../test/helpers/fault-bed.ts';

const { values: args } = parseArgs({
  options: {
    objects: { type: 'string', default: process.env['SOAK_OBJECTS'] ?? '200' },
    duration: { type: 'string', default: process.env['SOAK_DURATION'] ?? '30m' },
    interval: { type: 'string', default: process.env['SOAK_INTERVAL'] ?? '1m' },
    timeout: { type: 'string', default: '10s' },
    'max-retry-delay': { type: 'string', default: '1m' },
    concurrent: { type: 'string', default: '4' },
    seed: { type: 'string', default: process.env['SOAK_SEED'] ?? String(Date.now() % 1_000_000) },
    json: { type: 'string' },
  },
});

const N = Number(args.objects);
const durationMs = parseDuration(args.duration!);
const intervalMs = parseDuration(args.interval!);
const timeoutMs = parseDuration(args.timeout!);
const maxRetryMs = parseDuration(args['max-retry-delay']!);
if (!Number.isInteger(N) || N < 1) throw new Error(`--objects must be a positive integer`);

// A small seeded PRNG (mulberry32), so a run's sequence of faults can be replayed.
let seed = Number(args.seed) >>> 0;
function rnd(): number {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
const between = (a: number, b: number): number => a + Math.floor(rnd() * (b - a + 1));
function sample<T>(xs: readonly T[], k: number): T[] {
  const copy = [...xs];
  const out: T[] = [];
  while (out.length < k && copy.length) out.push(copy.splice(Math.floor(rnd() * copy.length), 1)[0]!);
  return out;
}

const log = (msg: string): void => console.log(`${new Date().toISOString()} ${msg}`);
const mib = (kb: number): string => `${(kb / 1024).toFixed(1)} MiB`;

interface Obj {
  name: string;
  repo: string;
  version: number;
  /** Newest pushed revision, and when it was pushed. */
  expected: string;
  /** Every revision pushed, oldest first (the last is `expected`). */
  history: string[];
  pushedAt: number;
  /** Since when the object is not Ready on `expected` (undefined: it is). */
  badSince?: number;
  worstBadMs: number;
  worstBadAt?: string;
  worstBadWhy?: string;
}

interface FaultEvent {
  kind: string;
  objects: number;
  startedAt: number;
  clearedAt: number;
  /** ms from clearing until every affected object was Ready on its newest revision (undefined: not within the cap). */
  recoveryMs?: number;
}

function rssKb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

async function main(): Promise<void> {
  log(`soak: ${N} objects for ${formatDuration(durationMs)}, interval ${formatDuration(intervalMs)}, spec.timeout ${formatDuration(timeoutMs)}, seed ${args.seed}`);
  const bed = await startBed({
    storageMiB: 512,
    controllerArgs: ['--concurrent', args.concurrent!, '--max-retry-delay', formatDuration(maxRetryMs), '--log-level', 'info'],
  });
  const stopAll = async (): Promise<void> => {
    await bed.stop().catch((err: unknown) => console.error('stopping the bed:', err));
  };
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));
  try {
    await soak(bed);
  } finally {
    await stopAll();
  }
}

async function soak(bed: Bed): Promise<void> {
  const objs: Obj[] = [];
  const spec = { interval: formatDuration(intervalMs), timeout: formatDuration(timeoutMs) };
  // Set-up: one signed artifact per object, all objects applied in one List.
  for (let i = 0; i < N; i += 20) {
    await Promise.all(
      Array.from({ length: Math.min(20, N - i) }, async (_, j) => {
        const k = i + j;
        const repo = `soak/r${k}`;
        const a = await pushSigned(bed, repo, 'latest', { 'app.yaml': `object: ${k}\nversion: 1\n` });
        const rev = `latest@${a.manifestDigest}`;
        objs[k] = { name: `soak-${k}`, repo, version: 1, expected: rev, history: [rev], pushedAt: Date.now(), worstBadMs: 0 };
      }),
    );
  }
  await bed.cluster.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs.map((o) => faultRepoObject(bed, o.name, o.repo, spec)) }) });
  const readyOn = (r: RepoObject | undefined, o: Obj): boolean =>
    !!r && cond(r, 'Ready')?.status === 'True' && r.status?.artifact?.revision === o.expected && r.status?.observedGeneration === r.metadata.generation;

  let latest = new Map<string, RepoObject>();
  // How fresh the view is: recoveries and not-Ready spans are only as good as the last LIST.
  const view = { at: Date.now(), failures: 0, longestGapMs: 0, lastError: '' };
  const refresh = async (): Promise<boolean> => {
    try {
      latest = new Map((await bed.listRepos()).map((r) => [r.metadata.name, r]));
      const now = Date.now();
      view.longestGapMs = Math.max(view.longestGapMs, now - view.at);
      view.at = now;
      return true;
    } catch (err) {
      view.failures++;
      view.lastError = (err as Error).message.slice(0, 200);
      return false; // apiserver down: keep the last view
    }
  };
  const viewAge = (): string => `view ${((Date.now() - view.at) / 1000).toFixed(0)} s old`;
  const setupStart = Date.now();
  while (!(await refresh()) || objs.some((o) => !readyOn(latest.get(o.name), o))) {
    if (Date.now() - setupStart > 10 * 60_000) throw new Error(`objects not Ready after 10 minutes: ${objs.filter((o) => !readyOn(latest.get(o.name), o)).length}`);
    await sleep(2000);
  }
  log(`all ${N} objects Ready after ${((Date.now() - setupStart) / 1000).toFixed(1)} s`);

  // RSS per controller process (a fault may SIGKILL and restart it).
  const processes: { pid: number; startedAt: number; startKb: number; endKb: number; maxKb: number }[] = [];
  const track = (): void => {
    const pid = bed.ctrl.proc.pid;
    let p = processes.at(-1);
    if (!p || p.pid !== pid) {
      const kb = rssKb(pid);
      p = { pid, startedAt: Date.now(), startKb: kb, endKb: kb, maxKb: kb };
      processes.push(p);
    }
    const kb = rssKb(pid);
    if (kb > 0) {
      p.endKb = kb;
      p.maxKb = Math.max(p.maxKb, kb);
    }
  };
  track();

  const deadline = Date.now() + durationMs;
  const events: FaultEvent[] = [];
  let servedChecks = 0;
  const violations: string[] = [];
  /** While true, an unreachable artifact server or registry is expected. */
  let controllerDown = false;
  let registryDown = false;
  let apiDown = false;
  let stopping = false;

  // Monitor: one LIST every 2 s; not-Ready spans per object; a few served artifacts checked.
  const monitor = (async () => {
    while (!stopping) {
      track();
      if (await refresh()) {
        const now = Date.now();
        for (const o of objs) {
          const r = latest.get(o.name);
          if (readyOn(r, o)) {
            o.badSince = undefined;
            continue;
          }
          o.badSince ??= now;
          const bad = now - o.badSince;
          if (bad > o.worstBadMs) {
            o.worstBadMs = bad;
            o.worstBadAt = new Date(o.badSince).toISOString();
            const ready = r ? cond(r, 'Ready') : undefined;
            o.worstBadWhy = `Ready=${ready?.status} ${ready?.reason}: ${ready?.message?.slice(0, 200)}; artifact ${r?.status?.artifact?.revision ?? 'none'}, expected ${o.expected}`;
          }
        }
        for (const o of sample(objs, 3)) {
          const a = latest.get(o.name)?.status?.artifact;
          if (!a) continue;
          try {
            const res = await fetch(a.url, { signal: AbortSignal.timeout(10_000) });
            const body = Buffer.from(await res.arrayBuffer());
            servedChecks++;
            if (res.status !== 200 || sha256(body) !== a.digest) {
              // The status may have moved on since the LIST: only a status that still names it counts.
              const again = await bed.getRepo(o.name).catch(() => null);
              if ((!again || again.status?.artifact?.digest === a.digest) && violations.length < 50) violations.push(`${new Date().toISOString()} ${o.name}: ${a.url} answered ${res.status}${res.status === 200 ? ` with ${sha256(body)}` : ''} while its status names ${a.digest}`);
            }
          } catch {
            if (!controllerDown && violations.length < 50) violations.push(`${new Date().toISOString()} ${o.name}: artifact server unreachable`);
          }
        }
      }
      await sleep(2000);
    }
  })();

  /** Pushes a new signed revision for each object; returns those that got one. */
  const move = async (targets: Obj[]): Promise<Obj[]> => {
    const moved: Obj[] = [];
    await Promise.all(
      targets.map(async (o) => {
        // The version is taken before the push: churn and a fault may move the same object at
        // once, and two pushes of the same content are one digest listed twice in the history.
        const version = ++o.version;
        try {
          const a = await pushSigned(bed, o.repo, 'latest', { 'app.yaml': `object: ${o.name}\nversion: ${version}\n` });
          o.expected = `latest@${a.manifestDigest}`;
          o.history.push(o.expected);
          o.pushedAt = Date.now();
          if (o.badSince === undefined) o.badSince = o.pushedAt;
          moved.push(o);
        } catch {
          /* the registry is down: this object keeps its revision */
        }
      }),
    );
    return moved;
  };
  const request = async (targets: Obj[]): Promise<void> => {
    await Promise.all(targets.map((o) => bed.requestReconcile(o.name).catch(() => undefined)));
  };
  /**
   * Waits until every object in `targets` is Ready on the revision it was expected to reach when
   * the fault cleared, or a later one (tags keep moving meanwhile, and a move without a reconcile
   * request waits for the interval: that is not the fault's doing). ms after `from`, or undefined at the cap.
   */
  const recovery = async (targets: Obj[], from: number, capMs: number): Promise<number | undefined> => {
    const mark = new Map(targets.map((o) => [o, o.history.length - 1]));
    const recovered = (o: Obj): boolean => {
      const r = latest.get(o.name);
      return !!r && cond(r, 'Ready')?.status === 'True' && r.status?.observedGeneration === r.metadata.generation && o.history.indexOf(r.status?.artifact?.revision ?? '') >= mark.get(o)!;
    };
    while (Date.now() - from < capMs) {
      if (targets.every(recovered)) return Date.now() - from;
      await sleep(1000);
    }
    const behind = targets.filter((o) => !recovered(o));
    log(`not recovered: ${behind.length} objects (${viewAge()}, ${view.failures} failed LISTs so far, last: ${view.lastError || 'none'})`);
    for (const o of behind.slice(0, 5)) {
      const r = latest.get(o.name);
      const ready = r ? cond(r, 'Ready') : undefined;
      log(`  ${o.name}: Ready=${ready?.status} ${ready?.reason}: ${ready?.message?.slice(0, 160)}; artifact ${r?.status?.artifact?.revision ?? 'none'}, expected at least ${o.history[mark.get(o)!]}`);
    }
    return undefined;
  };

  // Tags keep moving without faults too.
  const churn = (async () => {
    while (!stopping) {
      await sleep(between(10, 30) * 1000);
      if (stopping || registryDown) continue;
      const moved = await move(sample(objs, between(1, 5)));
      if (!apiDown && rnd() < 0.5) await request(moved);
    }
  })();

  const proxy = bed.proxy;
  const repoFaults: { kind: string; matcher: (o: Obj) => Matcher; fault: Fault }[] = [
    { kind: 'storm-500', matcher: (o) => ({ repo: o.repo }), fault: { type: 'status', status: 500 } },
    { kind: 'storm-429', matcher: (o) => ({ repo: o.repo }), fault: { type: 'status', status: 429, retryAfterSeconds: 5 } },
    { kind: 'blob-500', matcher: (o) => ({ repo: o.repo, kind: 'blob' }), fault: { type: 'status', status: 500 } },
    { kind: 'blob-drip', matcher: (o) => ({ repo: o.repo, kind: 'blob' }), fault: { type: 'drip', intervalMs: 1000 } },
    { kind: 'blob-reset', matcher: (o) => ({ repo: o.repo, kind: 'blob' }), fault: { type: 'reset', afterBytes: 100 } },
    { kind: 'hang-manifest', matcher: (o) => ({ repo: o.repo, kind: 'manifest' }), fault: { type: 'hang' } },
    { kind: 'hang-referrers', matcher: (o) => ({ repo: o.repo, kind: 'referrers' }), fault: { type: 'hang' } },
    { kind: 'hang-signature', matcher: (o) => ({ repo: o.repo, kind: 'signature' }), fault: { type: 'hang' } },
  ];
  type Global = { kind: string; run(targets: Obj[]): Promise<void> };
  const globalFaults: Global[] = [
    {
      kind: 'registry-killed',
      async run(targets) {
        await request(await move(targets));
        await sleep(between(0, 2000));
        registryDown = true;
        await bed.reg.kill();
        await sleep(between(5, 20) * 1000);
        await bed.reg.restart();
        registryDown = false;
      },
    },
    {
      kind: 'apiserver-restarted',
      async run(targets) {
        await request(await move(targets));
        await sleep(between(0, 2000));
        apiDown = true;
        await bed.cluster.stopApiserver({ kill: true });
        await sleep(between(2, 10) * 1000);
        await bed.cluster.startApiserver();
        apiDown = false;
      },
    },
    {
      kind: 'watch-410',
      async run(targets) {
        bed.kubeProxy.block();
        try {
          await request(await move(targets));
          const st = JSON.parse(await runOk('etcdctl', ['--endpoints', bed.cluster.etcdUrl, 'endpoint', 'status', '-w', 'json'])) as { Status: { header: { revision: number } } }[];
          await runOk('etcdctl', ['--endpoints', bed.cluster.etcdUrl, 'compact', String(st[0]!.Status.header.revision)]);
          await sleep(between(2, 10) * 1000);
        } finally {
          bed.kubeProxy.unblock();
        }
      },
    },
    {
      kind: 'controller-killed',
      async run(targets) {
        await request(await move(targets));
        await sleep(between(0, 3000));
        controllerDown = true;
        await bed.killController();
        await bed.startController();
        controllerDown = false;
      },
    },
    {
      kind: 'storage-full',
      async run(targets) {
        const filler = await fillFilesystem(bed.storagePath, 16 << 10);
        try {
          await request(await move(targets));
          await sleep(between(10, 30) * 1000);
        } finally {
          removeFiller(filler);
        }
      },
    },
  ];

  while (Date.now() < deadline - 2 * intervalMs) {
    const targets = sample(objs, between(5, Math.max(5, Math.min(20, Math.floor(N / 10)))));
    const startedAt = Date.now();
    let kind: string;
    const global = rnd() >= 0.65;
    if (!global) {
      const rf = pick(repoFaults);
      kind = rf.kind;
      const moved = await move(targets);
      const active: ActiveFault[] = moved.map((o) => proxy.add(rf.matcher(o), rf.fault));
      await request(moved);
      await sleep(between(10, 40) * 1000);
      for (const f of active) f.clear();
    } else {
      const g = pick(globalFaults);
      kind = g.kind;
      await g.run(targets);
    }
    const clearedAt = Date.now();
    // The affected objects: the fault's targets, or all of them when the fault was global.
    const affected = global ? objs : targets;
    const recoveryMs = await recovery(affected, clearedAt, 3 * intervalMs);
    events.push({ kind, objects: affected.length, startedAt, clearedAt, ...(recoveryMs !== undefined ? { recoveryMs } : {}) });
    log(`${kind} on ${affected.length} objects: ${((clearedAt - startedAt) / 1000).toFixed(1)} s, recovered ${recoveryMs === undefined ? 'NOT within 3 intervals' : `in ${(recoveryMs / 1000).toFixed(1)} s`}; RSS ${mib(rssKb(bed.ctrl.proc.pid))}; ${viewAge()}`);
    await sleep(between(2, 10) * 1000);
  }
  // Quiet end: every object must converge on what was pushed so far.
  const quietFrom = Date.now();
  const finalRecovery = await recovery(objs, quietFrom, Math.max(deadline - quietFrom, 2 * intervalMs));
  stopping = true;
  await Promise.all([monitor, churn]);
  track();

  // Report.
  const stuck = objs.filter((o) => o.worstBadMs > 2 * intervalMs).sort((a, b) => b.worstBadMs - a.worstBadMs);
  const recovered = events.filter((e) => e.recoveryMs !== undefined);
  const slowest = [...recovered].sort((a, b) => b.recoveryMs! - a.recoveryMs!)[0];
  const perKind = new Map<string, number[]>();
  for (const e of events) {
    const l = perKind.get(e.kind) ?? [];
    l.push(e.recoveryMs ?? Number.POSITIVE_INFINITY);
    perKind.set(e.kind, l);
  }
  // Error lines of every controller process of the run (a restart starts a new log file).
  const errors = new Map<string, number>();
  for (const f of readdirSync(bed.dir).filter((n) => /^controller-\d+\.log$/.test(n))) {
    for (const line of readFileSync(path.join(bed.dir, f), 'utf8').split('\n')) {
      if (!line.startsWith('{')) continue;
      const l = JSON.parse(line) as { level?: number; msg?: string };
      if ((l.level ?? 0) >= 50) errors.set(l.msg ?? '', (errors.get(l.msg ?? '') ?? 0) + 1);
    }
  }
  const metrics = await fetch(`http://127.0.0.1:${bed.ctrl.metricsPort}/metrics`).then((r) => r.text()).catch(() => '');
  const reconciles = [...metrics.matchAll(/^controller_runtime_reconcile_total\{[^}]*result="([^"]+)"[^}]*\} (\d+)/gm)].map((m) => `${m[1]}=${m[2]}`).join(', ');
  const first = processes[0]!;
  const last = processes.at(-1)!;
  const lines = [
    '',
    `soak summary (seed ${args.seed}): ${N} objects, ${formatDuration(durationMs)}, interval ${formatDuration(intervalMs)}, spec.timeout ${formatDuration(timeoutMs)}, --max-retry-delay ${formatDuration(maxRetryMs)}, --concurrent ${args.concurrent}`,
    `controller RSS: start ${mib(first.startKb)}, end ${mib(last.endKb)} (${processes.length} process${processes.length > 1 ? 'es: the fault matrix SIGKILLs and restarts it' : ''})`,
    ...processes.map((p, i) => `  pid ${p.pid}: ${mib(p.startKb)} at start, ${mib(p.endKb)} at end, max ${mib(p.maxKb)}, lived ${(((processes[i + 1]?.startedAt ?? Date.now()) - p.startedAt) / 60_000).toFixed(1)} min`),
    `fault events: ${events.length} (${[...perKind].map(([k, v]) => `${k} ×${v.length}`).join(', ')})`,
    `slowest recovery: ${slowest ? `${(slowest.recoveryMs! / 1000).toFixed(1)} s after ${slowest.kind} (${slowest.objects} objects, cleared ${new Date(slowest.clearedAt).toISOString()})` : 'n/a'}`,
    ...[...perKind].map(([k, v]) => `  ${k}: recoveries ${v.map((ms) => (Number.isFinite(ms) ? (ms / 1000).toFixed(1) : '∞')).join(', ')} s`),
    `events not recovered within 3 intervals: ${events.length - recovered.length}`,
    `every object converged after the last fault (Ready on what was pushed by then, or newer): ${finalRecovery !== undefined ? `yes (${(finalRecovery / 1000).toFixed(1)} s after the last fault)` : 'NO'}`,
    `objects not Ready (or behind their newest revision) for more than two intervals: ${stuck.length === 0 ? 'none' : stuck.length}`,
    ...stuck.slice(0, 30).map((o) => `  ${o.name}: ${(o.worstBadMs / 1000).toFixed(0)} s from ${o.worstBadAt}: ${o.worstBadWhy}`),
    `monitor LISTs failed: ${view.failures}${view.lastError ? ` (last: ${view.lastError})` : ''}; longest gap between successful LISTs ${(view.longestGapMs / 1000).toFixed(0)} s`,
    `served-artifact checks: ${servedChecks}, violations: ${violations.length}`,
    ...violations.slice(0, 20).map((v) => `  ${v}`),
    `reconciles (last controller process): ${reconciles || 'n/a'}`,
    `controller error log lines: ${[...errors.values()].reduce((a, b) => a + b, 0)}${errors.size ? ` (${[...errors].map(([m, n]) => `${n}× ${m}`).join('; ')})` : ''}`,
  ];
  console.log(lines.join('\n'));
  if (args.json) {
    writeFileSync(args.json, JSON.stringify({ seed: args.seed, objects: N, durationMs, intervalMs, timeoutMs, processes, events, stuck: stuck.map((o) => ({ name: o.name, worstBadMs: o.worstBadMs, at: o.worstBadAt, why: o.worstBadWhy })), servedChecks, violations }, null, 2));
  }
}

await main();
// Exit explicitly: a soak once spun in Node's exit clean-up after its report (see faults.test.ts).
process.exit();
