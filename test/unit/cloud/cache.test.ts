// The shared token cache: 80 % of the lifetime, the max-duration cap, LRU eviction by size,
// one fetch for concurrent misses, errors not cached, and the recorder's hit/miss/eviction counts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenCache } from '../../../src/oci/cloud/cache.ts';

function recorder() {
  const r = { hit: 0, miss: 0, evictions: 0, items: 0 };
  return { r, rec: { event: (k: 'hit' | 'miss') => void r[k]++, eviction: () => void r.evictions++, items: (n: number) => void (r.items = n) } };
}

test('entries live for 80 % of the token lifetime, capped by max duration', async () => {
  let now = 1_000_000;
  const { r, rec } = recorder();
  const c = new TokenCache({ maxSize: 10, maxDurationMs: 3_600_000, recorder: rec, now: () => now });
  let fetches = 0;
  const get = (life: number) => c.getOrSet('k', 'azure', async () => ({ value: ++fetches, expiresAt: now + life }));
  assert.equal(await get(10_000), 1);
  now += 7_999;
  assert.equal(await get(10_000), 1);
  now += 1;
  assert.equal(await get(10_000), 2, 'expired at 80 %');
  assert.deepEqual([r.hit, r.miss], [1, 2]);
  // A 10 h token is kept at most the max duration (1 h), never more even if asked.
  const capped = new TokenCache({ maxSize: 10, maxDurationMs: 5 * 3_600_000, now: () => now });
  assert.equal(capped.maxDurationMs, 3_600_000);
  let n = 0;
  await capped.getOrSet('x', 'aws', async () => ({ value: ++n, expiresAt: now + 36_000_000 }));
  now += 3_599_999;
  assert.equal(await capped.getOrSet('x', 'aws', async () => ({ value: ++n, expiresAt: now + 36_000_000 })), 1);
  now += 1;
  assert.equal(await capped.getOrSet('x', 'aws', async () => ({ value: ++n, expiresAt: now + 36_000_000 })), 2);
});

test('LRU eviction by size, single flight, errors not cached, size 0 disables', async () => {
  const { r, rec } = recorder();
  const c = new TokenCache({ maxSize: 2, recorder: rec });
  const far = Date.now() + 3_600_000;
  await c.getOrSet('a', 'gcp', async () => ({ value: 'A', expiresAt: far }));
  await c.getOrSet('b', 'gcp', async () => ({ value: 'B', expiresAt: far }));
  await c.getOrSet('a', 'gcp', async () => ({ value: 'A2', expiresAt: far })); // touch a: b is now oldest
  await c.getOrSet('c', 'gcp', async () => ({ value: 'C', expiresAt: far }));
  assert.equal(r.evictions, 1);
  assert.equal(r.items, 2);
  assert.equal(await c.getOrSet('a', 'gcp', async () => ({ value: 'A3', expiresAt: far })), 'A');
  assert.equal(await c.getOrSet('b', 'gcp', async () => ({ value: 'B2', expiresAt: far })), 'B2');
  let calls = 0;
  let release!: () => void;
  const gate = new Promise<void>((res) => (release = res));
  const slow = () => c.getOrSet('s', 'aws', async () => {
    calls++;
    await gate;
    return { value: 'S', expiresAt: far };
  });
  const both = Promise.all([slow(), slow()]);
  release();
  assert.deepEqual(await both, ['S', 'S']);
  assert.equal(calls, 1);
  await assert.rejects(c.getOrSet('e', 'aws', async () => Promise.reject(new Error('AccessDenied'))), /AccessDenied/);
  assert.equal(await c.getOrSet('e', 'aws', async () => ({ value: 'ok', expiresAt: far })), 'ok');
  const off = new TokenCache({ maxSize: 0 });
  let m = 0;
  await off.getOrSet('k', 'aws', async () => ({ value: ++m, expiresAt: far }));
  assert.equal(await off.getOrSet('k', 'aws', async () => ({ value: ++m, expiresAt: far })), 2);
});
