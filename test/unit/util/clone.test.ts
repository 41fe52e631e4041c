import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cloneJSON } from '../../../src/util/json.ts';

test('cloneJSON: a deep, independent copy of JSON data, "__proto__" kept as data', () => {
  const src = JSON.parse('{"conditions":[{"type":"Ready","status":"True","observedGeneration":2}],"artifact":{"size":10,"metadata":{"a":"b","__proto__":{"polluted":true}}},"url":null,"ok":false}');
  const copy = cloneJSON(src);
  assert.deepEqual(copy, src);
  assert.equal(JSON.stringify(copy), JSON.stringify(src));
  copy.conditions[0].status = 'False';
  copy.artifact.metadata.a = 'changed';
  assert.equal(src.conditions[0].status, 'True');
  assert.equal(src.artifact.metadata.a, 'b');
  assert.notEqual(copy.artifact, src.artifact);
  assert.equal(Object.getPrototypeOf(copy.artifact.metadata), Object.prototype, 'the prototype is not replaced');
  assert.deepEqual(Object.keys(copy.artifact.metadata), ['a', '__proto__']);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});
