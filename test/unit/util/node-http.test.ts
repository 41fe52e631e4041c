// The controller's HTTP modules do not load Node's own WebSocket client: an ESM import of
// node:http would (its namespace reads the lazy http.WebSocket getter), for 9 MB of RSS.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { inFreshNode, projectRoot } from '../../helpers/shared.ts';

const loadsBundledUndici = (imports: string[]): boolean =>
  inFreshNode(`
    for (const m of ${JSON.stringify(imports)}) await import(m);
    console.log(process.moduleLoadList.some((m) => m.includes('internal/deps/undici/undici')));
  `);

test('the artifact server, metrics and kube client leave http.WebSocket unread', () => {
  const ours = ['src/storage/server.ts', 'src/controller/metrics.ts', 'src/controller/kube.ts', 'src/controller/manager.ts', 'src/cli/run.ts'].map((f) => path.join(projectRoot, f));
  assert.equal(loadsBundledUndici(ours), false);
  // The probe sees the difference: a plain ESM import of node:http does load it.
  assert.equal(loadsBundledUndici(['node:http']), true);
});

test('the http it hands out is node:http itself', async () => {
  const { http } = await import('../../../src/util/node-http.ts');
  const { createRequire } = await import('node:module');
  assert.equal(http, createRequire(import.meta.url)('node:http'));
});
