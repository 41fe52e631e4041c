// The caches' sizes and hit counts reach /metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics } from '../../../src/controller/metrics.ts';

test('cache sizes and lookups are exported', async () => {
  const m = new Metrics();
  m.eventLoopDelay.disable();
  let hits = 3;
  m.observeCaches({ artifacts: () => ({ bytes: 4096, entries: 2, hits, misses: 1 }), verification: () => ({ entries: 5, bytes: 9000, prepared: 1, hits: 7, misses: 2 }) });
  let text = await m.registry.metrics();
  assert.match(text, /^ocisource_artifact_cache_bytes 4096$/m);
  assert.match(text, /^ocisource_cache_entries\{cache="verification"\} 5$/m);
  assert.match(text, /^ocisource_cache_bytes\{cache="verification"\} 9000$/m);
  assert.match(text, /^ocisource_cache_bytes\{cache="artifact"\} 4096$/m);
  assert.match(text, /^ocisource_trust_material_parses_total 1$/m);
  assert.match(text, /^ocisource_cache_requests_total\{cache="artifact",result="hit"\} 3$/m);
  assert.match(text, /^ocisource_cache_requests_total\{cache="verification",result="miss"\} 2$/m);
  hits = 10;
  text = await m.registry.metrics();
  assert.match(text, /^ocisource_cache_requests_total\{cache="artifact",result="hit"\} 10$/m);
});
