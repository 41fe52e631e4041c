// Trust material is parsed once per Secret resourceVersion: runVerification reuses a prepared
// verifier across reconciles and objects until a referenced Secret changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { OCIRepository } from '../../../src/api/schema.ts';
import type { KubeReader, Secret } from '../../../src/controller/secrets.ts';
import { runVerification, VerifyCache } from '../../../src/controller/verification.ts';
import type { RegistryReader } from '../../../src/oci/reader.ts';
import type { Provider, ProviderName, VerifyConfig } from '../../../src/verify/types.ts';

function setup() {
  const prepared: VerifyConfig[] = [];
  const make = (name: ProviderName): Provider => ({
    name,
    async prepare(config) {
      prepared.push(config);
      const key = config.secret?.data['cosign.pub']?.toString() ?? '';
      return { provider: name, fingerprint: `fp-${key}`, notes: [], verify: async () => ({ status: 'verified', provider: name, authenticity: 'established', signature: 'sha256:s', message: `by ${key}`, details: {}, warnings: [], attempts: [] }) };
    },
  });
  const providers = { cosign: make('cosign'), notation: make('notation') };
  const secrets = new Map<string, Secret>();
  const put = (name: string, rv: string, key: string) => secrets.set(`default/${name}`, { metadata: { name, namespace: 'default', resourceVersion: rv }, data: { 'cosign.pub': Buffer.from(key).toString('base64') } });
  const getter: KubeReader = { getSecret: async (ns, name) => secrets.get(`${ns}/${name}`) ?? null, getServiceAccount: async () => null };
  const cache = new VerifyCache();
  const obj = (name: string, secret = 'keys'): OCIRepository =>
    ({ apiVersion: 'source.ocisource.dev/v1', kind: 'OCIRepository', metadata: { name, namespace: 'default', generation: 1 }, spec: { url: `oci://r.test/${name}`, interval: '1m', verify: { provider: 'cosign', secretRef: { name: secret } } } }) as OCIRepository;
  const run = (o: OCIRepository, digest = 'sha256:aa') =>
    runVerification({ obj: o, getter, providers, cache, client: { registry: 'r.test', repository: o.metadata.name } as RegistryReader, descriptor: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 1 }, limits: {} });
  return { prepared, put, secrets, run, obj, cache, providers };
}

test('a prepared verifier is reused across reconciles and objects until the Secret changes', async () => {
  const w = setup();
  w.put('keys', '1', 'key-1');
  await w.run(w.obj('a'));
  await w.run(w.obj('a'), 'sha256:bb');
  await w.run(w.obj('b'));
  assert.equal(w.prepared.length, 1, 'one parse for one resourceVersion');
  // Rotation: a new resourceVersion is parsed again and its fingerprint misses the outcome cache.
  w.put('keys', '2', 'key-2');
  const r = await w.run(w.obj('a'));
  assert.equal(w.prepared.length, 2);
  assert.equal(r.cached, false);
  assert.equal(r.outcome.message, 'by key-2');
  // Another Secret is other trust material.
  w.put('other', '1', 'key-3');
  await w.run(w.obj('c', 'other'));
  assert.equal(w.prepared.length, 3);
});

test('a Secret read anew (the reader hands out a new object) is parsed anew', async () => {
  const w = setup();
  const fresh: KubeReader = { getSecret: async () => ({ metadata: { name: 'keys', namespace: 'default', resourceVersion: '1' }, data: { 'cosign.pub': Buffer.from('k').toString('base64') } }), getServiceAccount: async () => null };
  const o = w.obj('a');
  for (let i = 0; i < 2; i++) await runVerification({ obj: o, getter: fresh, providers: w.providers, cache: w.cache, client: { registry: 'r.test', repository: 'a' } as RegistryReader, descriptor: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: 'sha256:aa', size: 1 }, limits: {} });
  assert.equal(w.prepared.length, 2);
});

test('keyless objects with the same identity rules share one prepared verifier; other rules get their own', async () => {
  const w = setup();
  const keyless = (name: string, subject: string): OCIRepository => ({ ...w.obj(name), spec: { ...w.obj(name).spec, verify: { provider: 'cosign', matchOIDCIdentity: [{ issuer: 'i', subject }] } } }) as OCIRepository;
  await w.run(keyless('a', 's1'));
  await w.run(keyless('b', 's1'));
  await w.run(keyless('c', 's2'));
  assert.equal(w.prepared.length, 2);
  assert.equal(w.cache.stats().prepared, 2);
});
