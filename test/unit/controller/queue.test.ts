import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jitter, parseDuration, WorkQueue, type Outcome } from '../../../src/controller/queue.ts';
import { needsReconcile } from '../../../src/controller/manager.ts';
import type { OCIRepository } from '../../../src/api/schema.ts';

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

test('durations and jitter', () => {
  assert.equal(parseDuration('1m30s'), 90_000);
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('1.5h'), 5_400_000);
  assert.throws(() => parseDuration('10'), /invalid duration/);
  assert.throws(() => parseDuration('5m garbage'), /invalid duration/);
  assert.equal(jitter(1000, 5, () => 0), 950);
  assert.equal(jitter(1000, 5, () => 1), 1050);
  assert.equal(jitter(1000, 0, () => 0.3), 1000);
});

test('one in-flight reconcile per key; a key added meanwhile runs once more afterwards', async () => {
  let running = 0;
  let maxRunning = 0;
  let runs = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const q = new WorkQueue({ workers: 4, minRetryMs: 10, maxRetryMs: 100 }, async () => {
    running++;
    maxRunning = Math.max(maxRunning, running);
    runs++;
    if (runs === 1) await gate;
    running--;
    return {};
  });
  q.start();
  q.add('ns/a');
  await tick();
  q.add('ns/a');
  q.add('ns/a');
  await tick();
  assert.equal(maxRunning, 1);
  release();
  await tick(30);
  assert.equal(runs, 2, 'dirty key re-runs exactly once');
  await q.stop();
});

test('exponential backoff per key on failure, reset on success', async () => {
  const q = new WorkQueue({ workers: 1, minRetryMs: 750, maxRetryMs: 15 * 60_000 }, async () => ({}));
  assert.deepEqual([1, 2, 3, 4].map((n) => q.backoff(n)), [750, 1500, 3000, 6000]);
  assert.equal(q.backoff(30), 15 * 60_000);
  const times: number[] = [];
  let fails = 2;
  const q2 = new WorkQueue({ workers: 1, minRetryMs: 20, maxRetryMs: 1000 }, async (): Promise<Outcome> => {
    times.push(Date.now());
    return fails-- > 0 ? { error: new Error('boom') } : {};
  });
  q2.start();
  q2.add('k');
  await tick(150);
  assert.equal(times.length, 3, 'two failures retried, then success stops');
  await q2.stop();
});

test('requeue after interval; a spec change cancels the wait', async () => {
  let runs = 0;
  const q = new WorkQueue({ workers: 1, minRetryMs: 10, maxRetryMs: 100 }, async () => {
    runs++;
    return { requeueAfterMs: 60_000 };
  });
  q.start();
  q.add('k');
  await tick(20);
  assert.equal(runs, 1);
  q.add('k');
  await tick(20);
  assert.equal(runs, 2);
  await q.stop();
});

test('watch updates: spec, requestedAt and deletion trigger; status-only writes do not', () => {
  const base = { apiVersion: 'source.ocisource.dev/v1', kind: 'OCIRepository', metadata: { name: 'a', namespace: 'n', generation: 1, resourceVersion: '1' }, spec: { url: 'oci://x/y', interval: '1m' } } as OCIRepository;
  const statusOnly = { ...base, metadata: { ...base.metadata, resourceVersion: '2' }, status: { observedGeneration: 1 } };
  assert.equal(needsReconcile(base, statusOnly), false);
  assert.equal(needsReconcile(base, { ...base, metadata: { ...base.metadata, generation: 2 } }), true);
  assert.equal(needsReconcile(base, { ...base, metadata: { ...base.metadata, annotations: { 'reconcile.ocisource.dev/requestedAt': 'now' } } }), true);
  assert.equal(needsReconcile(base, { ...base, metadata: { ...base.metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } }), true);
});
