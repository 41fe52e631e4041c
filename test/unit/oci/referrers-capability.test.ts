// A repository whose registry lacks the Referrers API (404) is asked through the tag schema for
// the next ten minutes without asking the API first, per repository, as ORAS remembers it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { RegistryClient } from '../../../src/oci/client.ts';
import { Transport } from '../../../src/oci/transport.ts';

const subject = `sha256:${'a'.repeat(64)}`;
const sig = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'b'.repeat(64)}`, size: 100, artifactType: 'application/vnd.cncf.notary.signature' };

test('a 404 from the Referrers API sends later lookups of that repository straight to the tag schema', async () => {
  const seen: string[] = [];
  const srv = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (req.url!.includes('/referrers/')) return void res.writeHead(404).end();
    if (req.url!.endsWith(`/manifests/${subject.replace(':', '-')}`)) {
      return void res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json' }).end(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [sig] }));
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const host = `127.0.0.1:${(srv.address() as AddressInfo).port}`;
  const transport = new Transport();
  const client = (repository: string) => new RegistryClient({ registry: host, apiHost: host, repository }, { transport, insecure: true });
  try {
    assert.deepEqual(await client('team/app').referrers(subject), [sig]);
    assert.deepEqual(seen.map((s) => s.split(' ')[1]!.split('/')[4]), ['referrers', 'manifests']);
    seen.length = 0;
    // A new client (the next reconcile) of the same repository: the tag schema only.
    assert.deepEqual(await client('team/app').referrers(subject), [sig]);
    assert.deepEqual(seen.map((s) => s.split(' ')[1]!.split('/')[4]), ['manifests']);
    seen.length = 0;
    // Another repository on the same registry is asked through the API first.
    assert.deepEqual(await client('other/app').referrers(subject), [sig]);
    assert.deepEqual(seen.map((s) => s.split(' ')[1]!.split('/')[4]), ['referrers', 'manifests']);
  } finally {
    await transport.close();
    srv.closeAllConnections();
    srv.close();
  }
});

test('the missing API is remembered for ten minutes, then asked again', () => {
  const transport = new Transport({ maxNoReferrersAPI: 2 });
  const t0 = 1_000_000;
  transport.learnNoReferrersAPI('r/a', t0);
  assert.equal(transport.lacksReferrersAPI('r/a', t0 + 9 * 60_000), true);
  assert.equal(transport.lacksReferrersAPI('r/a', t0 + 10 * 60_000), false);
  assert.equal(transport.lacksReferrersAPI('r/a', t0 + 9 * 60_000), false, 'expired entries are forgotten');
  // Bounded: the oldest repository goes first.
  transport.learnNoReferrersAPI('r/a', t0);
  transport.learnNoReferrersAPI('r/b', t0);
  transport.learnNoReferrersAPI('r/c', t0);
  assert.equal(transport.lacksReferrersAPI('r/a', t0), false);
  assert.equal(transport.lacksReferrersAPI('r/b', t0), true);
  assert.equal(transport.lacksReferrersAPI('r/c', t0), true);
});
