// Tar safety (a corpus of hostile archives), ignore rules, and reproducible re-packing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { tarGzNames } from '../../helpers/tar.ts';
import { ArchiveError, extractTarGz, packReproducible, safeEntryName } from '../../../src/storage/archive.ts';

type Entry = { name: string; type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo'; body?: string | Buffer; linkname?: string; mode?: number; mtime?: Date };

async function makeTar(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((r) => pack.on('end', () => r()));
  for (const e of entries) {
    const body = e.body === undefined ? undefined : Buffer.from(e.body);
    await new Promise<void>((resolve, reject) => {
      const header = { name: e.name, type: e.type ?? 'file', mode: e.mode ?? 0o644, mtime: e.mtime ?? new Date(1_700_000_000_000), ...(e.linkname ? { linkname: e.linkname } : {}), ...(body ? { size: body.length } : {}) };
      if (body) pack.entry(header, body, (err) => (err ? reject(err) : resolve()));
      else pack.entry(header, (err) => (err ? reject(err) : resolve())).end(Buffer.alloc(0));
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}
const tgz = async (entries: Entry[]) => gzipSync(await makeTar(entries));

function work(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'osc-archive-'));
}

async function extractErr(buf: Buffer, maxBytes = 0): Promise<Error> {
  const dir = work();
  try {
    await extractTarGz(Readable.from([buf]), dir, { limits: { artifactMaxSize: maxBytes } });
  } catch (err) {
    // Nothing may be left behind, and nothing written outside the work dir.
    assert.deepEqual(readdirSync(dir), [], 'extraction left files after failing');
    rmSync(dir, { recursive: true, force: true });
    return err as Error;
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error('extraction unexpectedly succeeded');
}

const names = (out: string) => tarGzNames(readFileSync(out));

async function repack(entries: Entry[], ignore?: string, memoryBudget?: number): Promise<{ names: string[]; digest: string; bytes: Buffer }> {
  const dir = work();
  const x = await extractTarGz(Readable.from([await tgz(entries)]), dir, { limits: { artifactMaxSize: 0 }, ...(memoryBudget !== undefined ? { memoryBudget } : {}) });
  const out = path.join(dir, 'out.tar.gz');
  const r = await packReproducible(x, out, ignore);
  await x.cleanup();
  const result = { names: names(out), digest: r.digest, bytes: readFileSync(out) };
  rmSync(dir, { recursive: true, force: true });
  return result;
}

test('entry names: absolute, parent escapes, NUL and backslashes are refused', () => {
  assert.equal(safeEntryName('./a//b/'), 'a/b');
  for (const bad of ['/etc/passwd', '../x', 'a/../../x', 'a/..', 'C:\\win', 'a\\b', 'a\0b']) assert.throws(() => safeEntryName(bad), ArchiveError, bad);
});

test('hostile archive corpus is rejected with a clear message', async () => {
  const cases: [string, Entry[], RegExp][] = [
    ['absolute path', [{ name: '/etc/cron.d/x', body: 'x' }], /absolute path/],
    ['dot-dot', [{ name: 'a/../../escape', body: 'x' }], /escapes the archive root/],
    ['symlink escaping', [{ name: 'link', type: 'symlink', linkname: '../../etc/passwd' }], /outside the archive root/],
    ['absolute symlink', [{ name: 'link', type: 'symlink', linkname: '/etc/passwd' }], /outside the archive root/],
    ['hardlink escaping', [{ name: 'h', type: 'link', linkname: '../outside' }], /outside the archive root/],
    ['character device', [{ name: 'dev', type: 'character-device' }], /unsupported type 'character-device'/],
    ['block device', [{ name: 'blk', type: 'block-device' }], /unsupported type 'block-device'/],
    ['fifo', [{ name: 'pipe', type: 'fifo' }], /unsupported type 'fifo'/],
    ['file then dir', [{ name: 'a', body: 'x' }, { name: 'a/b', body: 'y' }], /which is a file/],
  ];
  for (const [what, entries, re] of cases) {
    const err = await extractErr(await tgz(entries));
    assert.ok(err instanceof ArchiveError, `${what}: ${err.message}`);
    assert.match(err.message, re, what);
  }
});

test('size limit, not gzip, truncated archives', async () => {
  const big = await tgz([{ name: 'a', body: Buffer.alloc(4000, 1) }, { name: 'b', body: Buffer.alloc(4000, 2) }]);
  assert.match((await extractErr(big, 6000)).message, /maximum size of 6000 bytes/);
  // A highly compressible "bomb" is stopped by the limit, not by memory.
  const bomb = await tgz([{ name: 'zeros', body: Buffer.alloc(8 << 20) }]);
  assert.ok(bomb.length < 64 << 10);
  assert.match((await extractErr(bomb, 1 << 20)).message, /maximum size/);
  assert.match((await extractErr(Buffer.from('plain text, not gzip'))).message, /not a valid gzip-compressed tarball/);
  const whole = await tgz([{ name: 'a', body: Buffer.alloc(10_000, 7) }]);
  assert.match((await extractErr(whole.subarray(0, whole.length - 40))).message, /not a valid (gzip-compressed )?tarball|unexpected end/i);
});

test('links inside the root are dropped, regular content kept', async () => {
  const r = await repack([{ name: 'a.txt', body: 'A' }, { name: 'l', type: 'symlink', linkname: 'a.txt' }, { name: 'sub/h', type: 'link', linkname: 'a.txt' }]);
  // Parents are not invented for dropped links: only what holds regular content remains.
  assert.deepEqual(r.names, ['a.txt']);
});

test('reproducible: order, times and modes do not change the digest', async () => {
  const a = await repack([{ name: 'b.yaml', body: 'b' }, { name: 'dir/', type: 'directory' }, { name: 'dir/a.yaml', body: 'a', mode: 0o755, mtime: new Date(1) }]);
  const b = await repack([{ name: 'dir/a.yaml', body: 'a', mode: 0o700, mtime: new Date(999_999_999) }, { name: 'b.yaml', body: 'b', mtime: new Date(5) }]);
  assert.equal(a.digest, b.digest);
  assert.deepEqual(a.bytes, b.bytes);
  assert.deepEqual(a.names, ['b.yaml', 'dir/', 'dir/a.yaml']);
  const c = await repack([{ name: 'b.yaml', body: 'B' }, { name: 'dir/a.yaml', body: 'a' }]);
  assert.notEqual(a.digest, c.digest);
  // Owner, times and modes are normalised in the headers.
  const t = gunzipSync(a.bytes);
  assert.equal(parseInt(t.subarray(100, 107).toString().trim(), 8), 0o600);
  assert.equal(parseInt(t.subarray(108, 115).toString().trim(), 8), 0); // uid
  assert.equal(parseInt(t.subarray(136, 147).toString(), 8), 0);
});

test("ignore rules: Flux's defaults, .sourceignore (nested) and spec.ignore", async () => {
  const base: Entry[] = [
    { name: 'app.yaml', body: 'x' },
    { name: 'logo.png', body: 'x' },
    { name: '.git/config', body: 'x' },
    { name: '.github/workflows/ci.yml', body: 'x' },
    { name: 'charts/c.tar.gz', body: 'x' },
    { name: 'sub/.sops.yaml', body: 'x' },
  ];
  assert.deepEqual((await repack(base)).names, ['app.yaml', 'charts/', 'sub/']);
  // A non-empty ignore list replaces the defaults (VCS patterns stay).
  assert.deepEqual((await repack(base, 'app.yaml')).names, ['.github/', '.github/workflows/', '.github/workflows/ci.yml', 'charts/', 'charts/c.tar.gz', 'logo.png', 'sub/', 'sub/.sops.yaml']);
  const nested = await repack([
    { name: 'a/.sourceignore', body: '*.md\n/local.txt\n!keep.md\n' },
    { name: 'a/x.md', body: 'x' },
    { name: 'a/deep/y.md', body: 'x' },
    { name: 'a/keep.md', body: 'x' },
    { name: 'a/local.txt', body: 'x' },
    { name: 'a/deep/local.txt', body: 'x' },
    { name: 'top.md', body: 'x' },
  ]);
  assert.deepEqual(nested.names, ['a/', 'a/.sourceignore', 'a/deep/', 'a/deep/local.txt', 'a/keep.md', 'top.md']);
  assert.deepEqual((await repack([{ name: 'docs/a.txt', body: 'x' }, { name: 'b.txt', body: 'x' }], 'docs/\n# comment\n')).names, ['b.txt']);
});

test('files spilled to disk (memory budget exhausted) give the same archive as in-memory ones', async () => {
  const entries: Entry[] = [{ name: 'big.bin', body: Buffer.alloc((1 << 20) + 10, 3) }, { name: 'a.txt', body: 'a' }, { name: 'd/.sourceignore', body: '*.tmp\n' }, { name: 'd/x.tmp', body: 'x' }];
  const inMemory = await repack(entries);
  const onDisk = await repack(entries, undefined, 0);
  assert.equal(onDisk.digest, inMemory.digest);
  assert.deepEqual(onDisk.names, ['a.txt', 'big.bin', 'd/', 'd/.sourceignore']);
});

test('an archive holding only its end marker is an empty artifact; no end marker at all is not a tarball', async () => {
  const empty = await repack([]);
  assert.deepEqual(empty.names, []);
  assert.match((await extractErr(gzipSync(Buffer.alloc(0)))).message, /not a valid tarball/);
});
