// Issue 7 item 1 and the tarball budgets: hostile layers are refused (or handled) in time and
// memory linear in their size, with a message naming the budget, and the event loop keeps
// turning. Delay and memory bounds are generous; the point is minutes and gigabytes before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { LimitError, type Limits } from '../../../src/api/limits.ts';
import { ArchiveError, extractTarGz, packReproducible, walk } from '../../../src/storage/archive.ts';
import { deepLegalLayer, deepPathLayer, globalPaxLayer, pad, paxEntry, record, tarGz, tarHeader } from '../../helpers/hostile-tar.ts';

const LoopDelayBoundMs = 2000;
const settle = () => new Promise((r) => setTimeout(r, 50));
const RssGrowthBound = 256 << 20;

interface Run {
  err?: Error;
  files?: number;
  paths?: string[];
  delayMs: number;
  rssGrowth: number;
}

/** Extracts and re-packs `layer`, watching the event loop and RSS; nothing may be left behind. */
async function run(layer: Buffer, limits: Partial<Limits> = {}): Promise<Run> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'osc-budget-'));
  const delay = monitorEventLoopDelay({ resolution: 10 });
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  delay.enable();
  await settle(); // the histogram records only after its first tick
  try {
    const x = await extractTarGz(Readable.from([layer]), dir, { limits });
    const r = await packReproducible(x, path.join(dir, 'out.tar.gz'), undefined);
    const paths = [...walk(x.root)].map(([p]) => p);
    await x.cleanup();
    await settle(); // a block that just ended is recorded at the histogram's next tick
    return { files: r.files, paths, delayMs: delay.max / 1e6, rssGrowth: peak - rss0 };
  } catch (err) {
    assert.deepEqual(readdirSync(dir), [], 'a failed extraction left files behind');
    await settle();
    return { err: err as Error, delayMs: delay.max / 1e6, rssGrowth: Math.max(peak, process.memoryUsage().rss) - rss0 };
  } finally {
    delay.disable();
    clearInterval(sampler);
    rmSync(dir, { recursive: true, force: true });
  }
}

function assertResponsive(r: Run, what: string): void {
  assert.ok(r.delayMs < LoopDelayBoundMs, `${what}: event loop held for ${r.delayMs.toFixed(0)} ms`);
  assert.ok(r.rssGrowth < RssGrowthBound, `${what}: RSS grew by ${(r.rssGrowth / 2 ** 20).toFixed(0)} MiB`);
}

function assertLimit(r: Run, limit: keyof Limits, what: string): void {
  assert.ok(r.err instanceof LimitError, `${what}: expected LimitError ${limit}, got ${r.err ? `${r.err.name}: ${r.err.message}` : 'success'}`);
  assert.equal(r.err.limit, limit, r.err.message);
}

test('issue 7 item 1: a PAX path of 10,000 or 80,000 components is refused at once, naming the budget', { timeout: 120_000 }, async () => {
  for (const n of [10_000, 80_000]) {
    const layer = deepPathLayer(n);
    assert.ok(layer.length < 1024, `the layer is tiny (${layer.length} bytes)`);
    const r = await run(layer);
    assertLimit(r, 'tarMaxPathLength', `${n} components`);
    assert.match(r.err!.message, new RegExp(`is ${2 * n + 1} bytes long, over 4096 \\(limit tarMaxPathLength\\)`));
    assertResponsive(r, `${n} components`);
  }
});

test('deep trees within the budgets cost linear time: 60 entries 255 components deep (15,240 implied directories)', { timeout: 300_000 }, async () => {
  const r = await run(deepLegalLayer(60, 255));
  assert.equal(r.err, undefined, r.err?.message);
  assert.equal(r.files, 60);
  // Every implied parent is a directory of the re-packed archive: 60 top dirs × 254 levels + files.
  assert.equal(r.paths!.length, 60 * 254 + 60);
  assertResponsive(r, 'deep tree');
});

test('depth and entry budgets: implied parent directories count', async () => {
  const deep = await run(tarGz(paxEntry(record('path', 'a/'.repeat(300) + 'f'), 'f', 'x')));
  assertLimit(deep, 'tarMaxPathDepth', 'depth 301');
  assert.match(deep.err!.message, /has 301 path components, over 256/);
  const implied = await run(tarGz(paxEntry(record('path', 'a/b/c/d/e/f/g/h/i/j/k'), 'f', 'x')), { tarMaxEntries: 10 });
  assertLimit(implied, 'tarMaxEntries', 'one entry implying 10 directories');
  assert.match(implied.err!.message, /more than 10 tar entries \(parent directories included\).*--tar-max-entries/);
});

test('a global PAX header with 50,000 records costs nothing per entry; one over the header budget is refused', { timeout: 300_000 }, async () => {
  const many = await run(globalPaxLayer(50_000, 500));
  assert.equal(many.err, undefined, many.err?.message);
  assert.equal(many.files, 500);
  assertResponsive(many, 'global PAX header');
  const big = await run(globalPaxLayer(100_000, 1));
  assertLimit(big, 'tarMaxHeaderSize', 'a 1.3 MiB global PAX header');
  assert.match(big.err!.message, /GlobalExtendedHeader header of \d+ bytes is over 1048576/);
  const long = Buffer.from('x/'.repeat(600_000));
  const gnu = await run(tarGz([tarHeader('././@LongLink', 'L', long.length), pad(long), tarHeader('f', '0', 1), pad(Buffer.from('x'))]));
  assertLimit(gnu, 'tarMaxHeaderSize', 'a 1.2 MiB GNU long name');
});

test('gzip bombs: the decompressed tar stream is bounded, content or not', async () => {
  const zeros = gzipSync(Buffer.concat([tarHeader('a', '0', 1), pad(Buffer.from('x')), Buffer.alloc(24 << 20)]));
  assert.ok(zeros.length < 64 << 10);
  const r = await run(zeros, { tarMaxSize: 4 << 20 });
  assertLimit(r, 'tarMaxSize', '24 MiB of zero blocks after the end marker');
  assert.match(r.err!.message, /decompresses to more than 4194304 bytes of tar data.*--tar-max-size/);
  const content = await run(tarGz([tarHeader('big', '0', 8 << 20), Buffer.alloc(8 << 20)]), { artifactMaxSize: 1 << 20 });
  assertLimit(content, 'artifactMaxSize', 'an 8 MiB file');
});

test('a layer compressed twice is refused, not inflated by the tar reader', async () => {
  const inner = tarGz([tarHeader('a', '0', 1), pad(Buffer.from('x'))]);
  const r = await run(gzipSync(inner));
  assert.ok(r.err instanceof ArchiveError, r.err?.message);
  assert.match(r.err.message, /gzip-compressed twice/);
});
