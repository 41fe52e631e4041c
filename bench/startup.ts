// CLI start-up (make bench): what `pull` and `verify` cost before they do any work (`--help`
// loads the command's modules and exits), against Node's own start-up (`node -e 0`, the floor),
// with the compile cache cold and warm; what each verifier stack costs to load; and where the
// time goes (--cpu-prof by area). Runs the compiled CLI when built, as the image does. CPU time
// (user + system, from the children's accounting) is the figure that holds on a loaded machine.
//   node bench/startup.ts [--runs 7]
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { makeTempDir, removeTempDir } from '../test/harness/index.ts';
import { projectRoot } from '../test/helpers/shared.ts';
import { printProfile, summariseProfile } from './lib/cpuprofile.ts';
import { childrenCpuSeconds, loadAverage, machine } from './lib/proc-stats.ts';

const { values: flags } = parseArgs({ options: { runs: { type: 'string', default: process.env.BENCH_RUNS || '7' } } });
const runs = Number(flags.runs);
const compiled = existsSync(path.join(projectRoot, 'dist/src/main.js'));
const src = (p: string) => path.join(projectRoot, compiled ? `dist/src/${p}.js` : `src/${p}.ts`);
const cli = src('main');

function run(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`node ${args.join(' ')} exited ${code}: ${err}`))));
  });
}

/** Median wall and CPU milliseconds over the runs. */
async function cost(args: string[], env: NodeJS.ProcessEnv, before?: () => void): Promise<{ wall: number; cpu: number }> {
  const walls: number[] = [];
  const cpus: number[] = [];
  for (let i = 0; i < runs; i++) {
    before?.();
    const c0 = childrenCpuSeconds();
    const t0 = performance.now();
    await run(args, env);
    walls.push(performance.now() - t0);
    cpus.push((childrenCpuSeconds() - c0) * 1000);
  }
  const mid = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { wall: mid(walls), cpu: mid(cpus) };
}

async function main(): Promise<void> {
  console.log(`bench/startup: ${compiled ? 'compiled CLI (dist/)' : 'CLI from sources (type stripping; make build for the compiled one)'}, median of ${runs} runs`);
  console.log(`machine: ${machine()}\n`);
  const work = makeTempDir('osc-bench-startup-');
  try {
    const base: NodeJS.ProcessEnv = { ...process.env, XDG_CACHE_HOME: path.join(work, 'cache') };
    delete base.NODE_COMPILE_CACHE;
    const noCache = { ...base, NODE_DISABLE_COMPILE_CACHE: '1' };
    const floor = await cost(['-e', '0'], base);
    const row = (what: string, c: { wall: number; cpu: number }) =>
      console.log(`  ${what.padEnd(46)} ${c.cpu.toFixed(0).padStart(6)} ms CPU ${(c.cpu / floor.cpu).toFixed(1).padStart(5)}x node -e 0 ${c.wall.toFixed(0).padStart(7)} ms wall`);
    row('node -e 0 (floor)', floor);
    for (const cmd of ['pull', 'verify']) {
      row(`${cmd} --help, no compile cache`, await cost([cli, cmd, '--help'], noCache));
      await run([cli, cmd, '--help'], base); // fills the cache
      row(`${cmd} --help, compile cache warm`, await cost([cli, cmd, '--help'], base));
    }
    // What lazy loading of verifier stacks would save: the cost of importing each.
    console.log('\n  import cost on top of node -e 0 (no compile cache):');
    for (const [what, mods] of [
      ['undici', ['undici']],
      ['cosign verifier stack', [src('verify/cosign/index')]],
      ['notation verifier stack', [src('verify/notation/index')]],
      ['both (src/verify/providers)', [src('verify/providers')]],
      ['prom-client', ['prom-client']],
      ['pino', ['pino']],
    ] as const) {
      const script = mods.map((m) => `await import(${JSON.stringify(m.startsWith('/') ? m : m)});`).join('');
      const c = await cost(['--input-type=module', '-e', script], { ...noCache }, undefined);
      console.log(`    ${what.padEnd(44)} +${(c.cpu - floor.cpu).toFixed(0).padStart(5)} ms CPU`);
    }
    const prof = path.join(work, 'prof');
    await run(['--cpu-prof', `--cpu-prof-dir=${prof}`, cli, 'pull', '--help'], noCache);
    console.log('\n  where `pull --help` spends its time (no compile cache, main thread):');
    printProfile(summariseProfile(path.join(prof, readdirSync(prof)[0]!), undefined, 10));
    console.log(`\nload average now ${loadAverage()}`);
  } finally {
    removeTempDir(work);
  }
}

await main();
