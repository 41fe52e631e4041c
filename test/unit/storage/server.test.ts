// The artifact HTTP server and the store: only artifact files, atomic writes, GC, integrity.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { parseRange, startArtifactServer, type ArtifactServer } from '../../../src/storage/server.ts';
import { Storage, StorageError } from '../../../src/storage/store.ts';

const root = mkdtempSync(path.join(os.tmpdir(), 'osc-store-'));
const storage = new Storage({ root: path.join(root, 'data'), retentionRecords: 2, retentionTTLms: 60_000, advertisedAddr: 'svc.test' });
let srv: ArtifactServer;
let base: string;
const d1 = `sha256:${'1'.repeat(64)}`;
const content = Buffer.from('0123456789abcdef'.repeat(64));
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

before(async () => {
  srv = await startArtifactServer(storage, '127.0.0.1', 0);
  base = `http://127.0.0.1:${srv.address.port}`;
  const rel = storage.artifactPath('default', 'app', d1);
  await storage.writeStream(rel, Readable.from([content]));
  await storage.setLatest(rel);
  writeFileSync(path.join(root, 'secret.txt'), 'outside storage');
  mkdirSync(path.join(root, 'data', 'ocirepository', 'default', 'app', 'sub'), { recursive: true });
});
after(async () => {
  await srv.close();
  rmSync(root, { recursive: true, force: true });
});

test('GET and HEAD with length, ETag of the file digest, and latest alias', async () => {
  const url = `${base}/ocirepository/default/app/${d1}.tar.gz`;
  const res = await fetch(url);
  const body = Buffer.from(await res.arrayBuffer());
  assert.equal(res.status, 200);
  assert.deepEqual(body, content);
  assert.equal(res.headers.get('content-length'), String(content.length));
  assert.equal(res.headers.get('etag'), `"${sha(content)}"`);
  const head = await fetch(url, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get('content-length'), String(content.length));
  assert.equal((await head.arrayBuffer()).byteLength, 0);
  const latest = await fetch(`${base}/ocirepository/default/app/latest.tar.gz`);
  assert.deepEqual(Buffer.from(await latest.arrayBuffer()), content);
  const nm = await fetch(url, { headers: { 'if-none-match': `"${sha(content)}"` } });
  assert.equal(nm.status, 304);
});

test('Range requests', async () => {
  const url = `${base}/ocirepository/default/app/${d1}.tar.gz`;
  const r = await fetch(url, { headers: { range: 'bytes=10-19' } });
  assert.equal(r.status, 206);
  assert.equal(r.headers.get('content-range'), `bytes 10-19/${content.length}`);
  assert.deepEqual(Buffer.from(await r.arrayBuffer()), content.subarray(10, 20));
  const tail = await fetch(url, { headers: { range: 'bytes=-5' } });
  assert.deepEqual(Buffer.from(await tail.arrayBuffer()), content.subarray(content.length - 5));
  const bad = await fetch(url, { headers: { range: `bytes=${content.length}-` } });
  assert.equal(bad.status, 416);
  await bad.arrayBuffer();
  assert.deepEqual(parseRange('bytes=0-', 10), [0, 9]);
  assert.equal(parseRange('items=1-2', 10), null);
});

test('404 for everything that is not an artifact file: listings, traversal, other methods', async () => {
  for (const p of ['/', '/ocirepository/', '/ocirepository/default/app/', '/ocirepository/default/app/sub', '/../secret.txt', '/ocirepository/default/app/..%2f..%2f..%2fsecret.txt', '/%2e%2e/secret.txt', `/ocirepository/default/app/${'sha256:' + '2'.repeat(64)}.tar.gz`, '/ocirepository/default/app/latest.tar.gz/..']) {
    const r = await fetch(base + p);
    await r.arrayBuffer();
    assert.equal(r.status, 404, p);
  }
  const post = await fetch(`${base}/ocirepository/default/app/${d1}.tar.gz`, { method: 'POST' });
  await post.arrayBuffer();
  assert.equal(post.status, 405);
});

test('store refuses names that would leave the root', () => {
  assert.throws(() => storage.artifactPath('..', 'app', d1), StorageError);
  assert.throws(() => storage.artifactPath('default', 'a/b', d1), StorageError);
  assert.throws(() => storage.artifactPath('default', 'app', '../../x'), StorageError);
  assert.throws(() => storage.abs('../outside'), StorageError);
  assert.equal(storage.url(storage.artifactPath('default', 'app', d1)), `http://svc.test/ocirepository/default/app/${d1}.tar.gz`);
});

test('intact() notices a corrupted or missing file', async () => {
  const rel = storage.artifactPath('default', 'corrupt', d1);
  const f = await storage.writeStream(rel, Readable.from([Buffer.from('good')]));
  assert.equal(await storage.intact(rel, f.digest), true);
  writeFileSync(storage.abs(rel), 'evil');
  assert.equal(await storage.intact(rel, f.digest), false);
  rmSync(storage.abs(rel));
  assert.equal(await storage.intact(rel, f.digest), false);
});

test('garbage collection keeps the current artifact and the newest within the record count and TTL', async () => {
  const digests = [3, 4, 5, 6].map((n) => `sha256:${String(n).repeat(64)}`);
  const now = Date.now();
  for (const [i, d] of digests.entries()) {
    const rel = storage.artifactPath('default', 'gc', d);
    await storage.writeStream(rel, Readable.from([Buffer.from(d)]));
    const t = new Date(now - (digests.length - i) * 1000);
    utimesSync(storage.abs(rel), t, t);
  }
  const current = storage.artifactPath('default', 'gc', digests[0]!); // oldest, but current
  const removed = await storage.garbageCollect('default', 'gc', [current], now);
  const left = readdirSync(storage.abs('ocirepository/default/gc')).sort();
  assert.deepEqual(left, [`${digests[0]}.tar.gz`, `${digests[3]}.tar.gz`]);
  assert.equal(removed.length, 2);
  // TTL: even within the count, an old file goes.
  const removed2 = await storage.garbageCollect('default', 'gc', [current], now + 120_000);
  assert.deepEqual(removed2, [storage.artifactPath('default', 'gc', digests[3]!)]);
  await storage.removeObject('default', 'gc');
  assert.equal(existsSync(storage.abs('ocirepository/default/gc')), false);
});

test('garbage collection: once only kept files are left, the same keep set skips the listing until we write there', async () => {
  const [a, b, c] = [1, 2, 3].map((n) => `sha256:${String(n).repeat(63)}f`) as [string, string, string];
  const relA = storage.artifactPath('default', 'gc-memo', a);
  await storage.writeStream(relA, Readable.from([Buffer.from(a)]));
  assert.deepEqual(await storage.garbageCollect('default', 'gc-memo', [relA]), []);
  // A file we did not write is not seen while nothing changed (steady state costs no readdir)...
  const old = new Date(Date.now() - 86400_000);
  const relB = storage.artifactPath('default', 'gc-memo', b);
  writeFileSync(storage.abs(relB), 'stray');
  utimesSync(storage.abs(relB), old, old);
  assert.deepEqual(await storage.garbageCollect('default', 'gc-memo', [relA]), []);
  // ...another keep set looks again, and so does the next collection after one of our writes.
  assert.deepEqual(await storage.garbageCollect('default', 'gc-memo', [relA, relB]), []);
  assert.deepEqual(await storage.garbageCollect('default', 'gc-memo', [relA]), [relB]);
  writeFileSync(storage.abs(relB), 'stray again');
  utimesSync(storage.abs(relB), old, old);
  const relC = storage.artifactPath('default', 'gc-memo', c);
  await storage.writeStream(relC, Readable.from([Buffer.from(c)]));
  assert.deepEqual(await storage.garbageCollect('default', 'gc-memo', [relC]), [relB]);
  await storage.removeObject('default', 'gc-memo');
});

test('garbage collection never deletes a kept artifact (the one an ExternalArtifact points at), however old', async () => {
  const digests = [7, 8, 9].map((n) => `sha256:${String(n).repeat(64)}`);
  const now = Date.now();
  const rels = [];
  for (const [i, d] of digests.entries()) {
    const rel = storage.artifactPath('default', 'gc-keep', d);
    await storage.writeStream(rel, Readable.from([Buffer.from(d)]));
    const t = new Date(now - (digests.length - i) * 3600_000);
    utimesSync(storage.abs(rel), t, t);
    rels.push(rel);
  }
  const [published, middle, current] = rels as [string, string, string];
  // Both kept paths fill the two records: the middle one goes although it is newer than `published`.
  const removed = await storage.garbageCollect('default', 'gc-keep', [current, published], now + 86400_000);
  assert.deepEqual(removed, [middle]);
  assert.deepEqual(readdirSync(storage.abs('ocirepository/default/gc-keep')).sort(), [`${digests[0]}.tar.gz`, `${digests[2]}.tar.gz`]);
  await storage.removeObject('default', 'gc-keep');
});

test('files beyond the cache stream in pooled chunks: whole, ranges across chunk edges, and clients that hang up mid-way', async () => {
  const big = Buffer.alloc(3 * (1 << 20) + 12345);
  for (let i = 0; i + 4 <= big.length; i += 4) big.writeUInt32LE(i, i);
  const d = `sha256:${'2'.repeat(64)}`;
  const rel = storage.artifactPath('default', 'big', d);
  await storage.writeStream(rel, Readable.from([big]));
  const url = `${base}/${rel}`;
  const whole = Buffer.from(await (await fetch(url)).arrayBuffer());
  assert.ok(whole.equals(big), 'the streamed body equals the file');
  const edge = await fetch(url, { headers: { range: `bytes=${(1 << 20) - 7}-${2 * (1 << 20) + 9}` } });
  assert.equal(edge.status, 206);
  assert.ok(Buffer.from(await edge.arrayBuffer()).equals(big.subarray((1 << 20) - 7, 2 * (1 << 20) + 10)));
  // Several clients give up after the first bytes; later downloads are still whole and correct.
  for (let i = 0; i < 4; i++) {
    const ac = new AbortController();
    const res = await fetch(url, { signal: ac.signal });
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    await reader.read().catch(() => undefined);
  }
  const again = await Promise.all([fetch(url), fetch(url), fetch(url)].map(async (p) => Buffer.from(await (await p).arrayBuffer())));
  for (const b of again) assert.ok(b.equals(big));
});
