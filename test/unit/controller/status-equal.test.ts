// sameJSON decides whether a status write is needed: equal as stored JSON, key order ignored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sameJSON } from '../../../src/controller/objects.ts';

test('sameJSON compares as the stored JSON would', () => {
  const cond = { type: 'Ready', status: 'True', reason: 'Succeeded', message: 'm', lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 1 };
  const status = { observedGeneration: 1, conditions: [cond], artifact: { path: 'p', revision: 'v1@sha256:a', digest: 'sha256:b', size: 1, metadata: { a: 'b' } } };
  // The apiserver answers with sorted keys; ours are in construction order.
  const fromServer = JSON.parse(JSON.stringify(status, Object.keys({ ...status, ...cond, ...status.artifact, a: 1 }).sort())) as unknown;
  assert.ok(sameJSON(status, fromServer));
  assert.ok(sameJSON({ ...status, url: undefined }, status), 'undefined is absent');
  assert.ok(!sameJSON({ ...status, url: 'u' }, status));
  assert.ok(!sameJSON(status, { ...status, url: 'u' }));
  assert.ok(!sameJSON(status, { ...status, conditions: [{ ...cond, message: 'n' }] }));
  assert.ok(!sameJSON(status, { ...status, conditions: [cond, cond] }));
  assert.ok(!sameJSON({ a: [1] }, { a: { 0: 1 } }));
  assert.ok(!sameJSON({ a: null }, {}));
  assert.ok(!sameJSON({ a: 1 }, { a: '1' }));
  assert.ok(sameJSON({}, {}));
});
