// The artifact server's in-memory cache stays within its byte budget, drops the least recently
// served file first, and is off at 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SmallFileCache } from '../../../src/storage/server.ts';
import { makeTempDir } from '../../harness/proc.ts';

function files(n: number, size: number): string[] {
  const dir = makeTempDir('osc-server-cache-');
  return Array.from({ length: n }, (_, i) => {
    const p = path.join(dir, `f${i}`);
    writeFileSync(p, Buffer.alloc(size, i));
    return p;
  });
}

test('the artifact cache holds at most its byte budget, least recently served first out', async () => {
  const [a, b, c] = files(3, 1000);
  const cache = new SmallFileCache(2500, 1 << 20);
  for (const p of [a!, b!, a!, c!]) assert.equal((await cache.get(p, statSync(p)))?.length, 1000);
  // a was served after b, so b went when c came in.
  assert.deepEqual({ ...cache.stats() }, { bytes: 2000, entries: 2, hits: 1, misses: 3 });
  await cache.get(a!, statSync(a!));
  await cache.get(b!, statSync(b!));
  assert.deepEqual(cache.stats(), { bytes: 2000, entries: 2, hits: 2, misses: 4 });
});

test('an artifact cache of 0 bytes holds nothing (files are streamed)', async () => {
  const [a] = files(1, 10);
  const cache = new SmallFileCache(0);
  assert.equal(await cache.get(a!, statSync(a!)), undefined);
  assert.equal(cache.stats().bytes, 0);
});
