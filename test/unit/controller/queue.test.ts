import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExponentialRateLimiter, WorkQueue, formatDuration, jitter, parseDuration, type QueueMetrics } from '../../../src/controller/queue.ts';
import { needsReconcile } from '../../../src/controller/manager.ts';
import type { OCIRepository } from '../../../src/api/schema.ts';
import { FakeClock } from '../../helpers/fake-clock.ts';

function queue(base = 750, max = 15 * 60_000, alignMs = 0) {
  const clock = new FakeClock();
  const counts = { added: 0, retried: 0, depth: 0, queued: [] as number[], worked: [] as number[] };
  const metrics: QueueMetrics = {
    added: () => counts.added++,
    retried: () => counts.retried++,
    depth: (n) => (counts.depth = n),
    queued: (s) => counts.queued.push(s),
    worked: (s) => counts.worked.push(s),
  };
  const q = new WorkQueue({ rateLimiter: new ExponentialRateLimiter(base, max), clock, metrics, alignMs });
  return { q, clock, counts };
}

test('durations and jitter', () => {
  assert.equal(parseDuration('1m30s'), 90_000);
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('1.5h'), 5_400_000);
  assert.throws(() => parseDuration('10'), /invalid duration/);
  assert.throws(() => parseDuration('5m garbage'), /invalid duration/);
  assert.equal(jitter(1000, 5, () => 0), 950);
  assert.equal(jitter(1000, 5, () => 1), 1050);
  assert.equal(jitter(1000, 0, () => 0.3), 1000);
  assert.deepEqual([5000, 90_000, 750, 3_600_000, 0].map(formatDuration), ['5s', '1m30s', '750ms', '1h', '0ms']);
});

test('a key waiting is queued once; a key added while processed is processed again after done, once', async () => {
  const { q, counts } = queue();
  q.add('a');
  q.add('a');
  q.add('b');
  assert.equal(q.length, 2);
  assert.equal(await q.get(), 'a');
  q.add('a');
  q.add('a');
  assert.equal(q.length, 1, 'a is being processed: not handed to a second worker');
  assert.equal(await q.get(), 'b');
  q.done('b');
  assert.equal(q.length, 0);
  q.done('a');
  assert.equal(q.length, 1, 'a re-queued after done');
  assert.equal(await q.get(), 'a');
  q.done('a');
  assert.equal(q.length, 0);
  assert.equal(counts.added, 3, 'adds of a key already waiting are not counted twice');
});

test('get waits for work and shutDown releases waiting workers', async () => {
  const { q } = queue();
  const waiting = q.get();
  q.add('x');
  assert.equal(await waiting, 'x');
  const idle = q.get();
  q.shutDown();
  assert.equal(await idle, undefined);
  q.add('y');
  assert.equal(await q.get(), undefined, 'nothing is handed out after shutdown');
});

test('addAfter fires at its time; the earlier of two delays wins; add cancels the wait', async () => {
  const { q, clock } = queue();
  q.addAfter('k', 60_000);
  q.addAfter('k', 90_000);
  clock.advance(59_999);
  assert.equal(q.length, 0);
  clock.advance(1);
  assert.equal(q.length, 1);
  assert.equal(await q.get(), 'k');
  q.done('k');
  q.addAfter('k', 60_000);
  q.add('k');
  assert.equal(clock.pending, 0, 'the interval wait is dropped: the work happens now');
  assert.equal(q.length, 1);
});

test('aligned requeues: long delays share a slot and one timer, short ones stay exact, cancelling one key keeps the others', async () => {
  const { q, clock } = queue(750, 15 * 60_000, 1000);
  const start = clock.now(); // a whole second: FakeClock starts at midnight
  clock.advance(250);
  q.addAfter('a', 60_000); // due at start + 60.25 s: aligned to start + 61 s
  clock.advance(300);
  q.addAfter('b', 60_100); // due at start + 60.65 s: the same slot
  q.addAfter('c', 60_000); // start + 60.55 s: the same slot
  q.addAfter('short', 5000); // under ten slots: exact
  assert.equal(clock.pending, 2, 'one timer for the three long delays, one for the short one');
  q.remove('c');
  assert.equal(clock.pending, 2, 'the slot keeps its timer while it holds keys');
  clock.advance(5000);
  assert.equal(q.length, 1, 'the short delay fired on time');
  assert.equal(await q.get(), 'short');
  clock.advance(start + 60_999 - clock.now());
  assert.equal(q.length, 0, 'nothing before the slot');
  clock.advance(1);
  assert.equal(q.length, 2, 'a and b together, c was removed');
  assert.equal(clock.pending, 0);
  q.addAfter('d', 30_000);
  q.remove('d');
  assert.equal(clock.pending, 0, 'an emptied slot drops its timer');
});

test('exponential backoff per key from the rate limiter, reset by forget', () => {
  const rl = new ExponentialRateLimiter(750, 15 * 60_000);
  assert.deepEqual([1, 2, 3, 4].map(() => rl.when('k')), [750, 1500, 3000, 6000]);
  assert.equal(rl.when('other'), 750, 'per key');
  for (let i = 0; i < 30; i++) rl.when('k');
  assert.equal(rl.when('k'), 15 * 60_000, 'capped');
  rl.forget('k');
  assert.equal(rl.retries('k'), 0);
  assert.equal(rl.when('k'), 750);
});

test('addRateLimited waits the backoff, or longer when asked (Retry-After), and counts retries', async () => {
  const { q, clock, counts } = queue(1000, 60_000);
  q.addRateLimited('k');
  clock.advance(999);
  assert.equal(q.length, 0);
  clock.advance(1);
  assert.equal(q.length, 1);
  assert.equal(await q.get(), 'k');
  q.done('k');
  q.addRateLimited('k', 30_000);
  clock.advance(2000);
  assert.equal(q.length, 0, 'second backoff (2s) is below the 30s minimum');
  clock.advance(28_000);
  assert.equal(q.length, 1);
  assert.equal(counts.retried, 2);
  q.remove('k');
});

test('queue metrics: wait and work durations from the injected clock', async () => {
  const { q, clock, counts } = queue();
  q.add('k');
  assert.equal(counts.depth, 1);
  clock.advance(2000);
  await q.get();
  assert.equal(counts.depth, 0);
  clock.advance(500);
  q.done('k');
  assert.deepEqual(counts.queued, [2]);
  assert.deepEqual(counts.worked, [0.5]);
});

test('watch updates: spec, requestedAt and deletion trigger; status-only writes do not', () => {
  const base = { apiVersion: 'source.ocisource.dev/v1', kind: 'OCIRepository', metadata: { name: 'a', namespace: 'n', generation: 1, resourceVersion: '1' }, spec: { url: 'oci://x/y', interval: '1m' } } as OCIRepository;
  const statusOnly = { ...base, metadata: { ...base.metadata, resourceVersion: '2' }, status: { observedGeneration: 1 } };
  assert.equal(needsReconcile(base, statusOnly), false);
  assert.equal(needsReconcile(base, { ...base, metadata: { ...base.metadata, generation: 2 } }), true);
  assert.equal(needsReconcile(base, { ...base, metadata: { ...base.metadata, annotations: { 'reconcile.ocisource.dev/requestedAt': 'now' } } }), true);
  assert.equal(needsReconcile(base, { ...base, metadata: { ...base.metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } }), true);
});
