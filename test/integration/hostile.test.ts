// The hostile-input corpus (issue 7), end to end: every case of test/hostile/cases against ONE
// controller process (shipped RBAC) on a real kube-apiserver and docker-registry, plus a hostile
// server for answers no real registry gives, and the `verify`/`pull` CLI. For each case: the
// object gets a False condition a user can act on, the last good artifact is still served, the
// process stays up with event-loop delay and RSS under the bounds of test/hostile/world.ts, and
// nothing is written outside the storage directory. The expected outcome of each case is written
// next to its input in test/hostile/cases/*.ts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { DefaultLimits, LimitFlags, type Limits } from '../../src/api/limits.ts';
import { projectRoot } from '../helpers/shared.ts';
import { corpus, countByCategory } from '../hostile/corpus.ts';
import { mib } from '../hostile/monitor.ts';
import { auditStorage, Runner, type CaseResult } from '../hostile/runner.ts';
import { CategoryTitles, type Category } from '../hostile/types.ts';
import { Bounds, startWorld, type World } from '../hostile/world.ts';

const cases = corpus();
const categories = [...new Set(cases.map((c) => c.category))];
if (!process.env.HOSTILE_ONLY) {
  // The issue asks for at least 200 cases across every category.
  assert.ok(cases.length >= 200, `the corpus has ${cases.length} cases`);
  assert.deepEqual(categories.sort(), (Object.keys(CategoryTitles) as Category[]).sort());
}

// docs/security.md's budget table is the user's reference: every budget, its default and its flag
// exactly as src/api/limits.ts has them.
test('docs/security.md lists every budget with the default and flag of src/api/limits.ts', () => {
  const doc = readFileSync(path.join(projectRoot, 'docs/security.md'), 'utf8');
  const units: Record<string, number> = { KiB: 1 << 10, MiB: 1 << 20, GiB: 1 << 30 };
  const rows = new Map<string, { value: number; flag: string | undefined }>();
  for (const m of doc.matchAll(/^\| `(\w+)` \| ([\d,]+) ?(KiB|MiB|GiB)?[^|]*\| (`--[\w-]+`|—) \|/gm)) {
    rows.set(m[1]!, { value: Number(m[2]!.replaceAll(',', '')) * (m[3] ? units[m[3]]! : 1), flag: m[4] === '—' ? undefined : m[4]!.slice(3, -1) });
  }
  const want = Object.entries(DefaultLimits).map(([k, v]) => [k, { value: v, flag: LimitFlags[k as keyof Limits] }]);
  assert.deepEqual(Object.fromEntries([...rows].sort()), Object.fromEntries(want.sort()));
});

describe(`hostile-input corpus (${cases.length} cases)`, { timeout: 1_800_000 }, () => {
  let world: World;
  let results = new Map<string, CaseResult>();
  let startedAt = 0;
  let runner: Runner;
  const projectFiles = new Set(readdirSync(projectRoot));

  // The whole corpus runs here, under its own timeout (about 10 minutes on a busy 2-core machine).
  before(async () => {
    startedAt = Date.now();
    world = await startWorld(categories);
    runner = new Runner(world);
    results = await runner.runAll(cases, Number(process.env.HOSTILE_CONCURRENCY ?? 8), (r) => {
      const all = [...r.processFailures, ...r.failures];
      if (process.env.HOSTILE_VERBOSE) process.stderr.write(`${all.length ? 'FAIL' : 'ok  '} ${r.name} ${(r.ms / 1000).toFixed(1)}s ${JSON.stringify(r.phases)} delay=${r.window?.maxDelayS.toFixed(2)}s rss=${mib(r.window?.maxRssBytes ?? 0)} ${r.ready ? `ready=${r.ready.reason}: …${r.ready.message.slice(-300)}` : r.admission ? `api: ${r.admission.slice(0, 200)}` : ''}${r.cli ? ` cli=${r.cli.exit}: ${r.cli.output.replace(/\s+/g, ' ').slice(0, 200)}` : ''}${all.length ? `\n     ${all.join('\n     ')}` : ''}\n`);
    });
  }, { timeout: 25 * 60_000 });
  after(async () => {
    await world?.stop();
  });

  for (const cat of Object.keys(CategoryTitles) as Category[]) {
    const mine = cases.filter((c) => c.category === cat);
    if (mine.length === 0) continue;
    describe(`${cat}: ${CategoryTitles[cat]}`, () => {
      for (const c of mine) {
        test(`${c.id}${c.item ? ` [issue 7 item ${c.item}]` : ''}: ${c.title}`, () => {
          const r = results.get(c.id);
          assert.ok(r, 'the case did not run');
          const why = r.sharedRun ? ` (re-run alone after a shared run that saw: ${r.sharedRun.join('; ')})` : '';
          assert.deepEqual([...r.processFailures, ...r.failures], [], `${c.id} (${c.attacker}-controlled): ${c.title}${why}`);
        });
      }
    });
  }

  test('nothing was written outside the storage directory; storage holds only artifacts', (t) => {
    const problems = auditStorage(world.ctrl.storagePath, runner.names);
    assert.deepEqual(readdirSync(world.sentinel), [], 'the sentinel directory outside storage was written to');
    assert.deepEqual(world.sentinelEvents, [], 'files appeared in the sentinel directory');
    // The controller's working directory is the project root: nothing may appear there either.
    assert.deepEqual(readdirSync(projectRoot).filter((f) => !projectFiles.has(f)), [], 'new files in the controller working directory');
    // Relative traversal from a work directory would land next to the storage directory.
    const around = readdirSync(world.dir).filter((f) => !/^(data|cli|hostile-pki|controller-\d+\.log|controller\.kubeconfig)$/.test(f));
    assert.deepEqual(around, [], 'unexpected files next to the storage directory');
    for (const run of existsSync(path.join(world.dir, 'cli')) ? readdirSync(path.join(world.dir, 'cli')) : []) {
      const out = path.join(world.dir, 'cli', run, 'out');
      if (existsSync(out)) assert.deepEqual(auditStorage(out, runner.names), [], `pull -o ${out} holds unexpected files`);
    }
    assert.deepEqual(problems, []);
    const s = world.monitor.summary();
    const counts = countByCategory(cases);
    t.diagnostic(`corpus: ${cases.length} cases: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    t.diagnostic(`bounds: event-loop delay <= ${Bounds.eventLoopDelayS} s, RSS <= ${mib(Bounds.rssBytes)}; observed worst delay ${s.maxDelayS.toFixed(3)} s (per-scrape nodejs_eventloop_lag_max_seconds${s.lifetimeMaxS !== undefined ? `; the controller's ocisource_event_loop_delay_seconds{quantile="1"} says ${s.lifetimeMaxS.toFixed(3)} s` : ''}), peak RSS (VmHWM) ${mib(s.peakHwmBytes)}, ${s.samples} samples`);
    t.diagnostic(`controller restarts: ${world.restarts.length}${world.restarts.map((r) => `\n  ${r.why}`).join('')}`);
    t.diagnostic(`run time: ${((Date.now() - startedAt) / 1000).toFixed(0)} s`);
  });
});
