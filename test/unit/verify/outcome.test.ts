// Issue #8: verify() never throws. Whatever happens (spec.timeout firing during discovery or during
// verification, a registry error, a digest algorithm cosign cannot use) ends as a typed outcome with a
// code from the closed list, and passing outcomes say explicitly what authenticity was established.
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryError } from '../../../src/oci/errors.ts';
import type { RegistryReader } from '../../../src/oci/reader.ts';
import type { Descriptor } from '../../../src/oci/types.ts';
import { prepareNotation } from '../../../src/verify/notation/index.ts';
import type { VerificationOutcome } from '../../../src/verify/types.ts';
import { MemoryRegistry, pushSigManifest } from '../../helpers/cosign-registry.ts';
import { generateKey, signLegacy } from '../../helpers/cosign-sign.ts';
import { prepareKeys } from '../../helpers/cosign-verify.ts';
import { issue, pem, pushSignature, signJWS, type Issued } from '../../helpers/notation-sign.ts';
import { OCILayoutReader } from '../../helpers/oci-layout.ts';
import { offlineFetch } from '../notation/fixtures.ts';

type Method = 'referrers' | 'fetchManifest' | 'fetchBlob';

/** Wraps a reader so that `method` never answers until `signal` aborts, then rejects as the registry client does. */
function hanging(inner: RegistryReader, method: Method, signal: AbortSignal): RegistryReader {
  const stall = () =>
    new Promise<never>((_, reject) => {
      const stop = () => reject(new RegistryError(`request to ${inner.registry} stopped: ${(signal.reason as Error).message}`, 0, 'TIMEOUT'));
      if (signal.aborted) stop();
      else signal.addEventListener('abort', stop, { once: true });
    });
  return {
    registry: inner.registry,
    repository: inner.repository,
    referrers: (d, t) => (method === 'referrers' ? stall() : inner.referrers(d, t)),
    fetchManifest: (r, o) => (method === 'fetchManifest' ? stall() : inner.fetchManifest(r, o)),
    fetchBlob: (d, o) => (method === 'fetchBlob' ? stall() : inner.fetchBlob(d, o)),
  };
}

function failed(o: VerificationOutcome, code: string, re: RegExp): void {
  assert.equal(o.status, 'failed', o.message);
  assert.equal(o.status === 'failed' && o.code, code, o.message);
  assert.match(o.message, re);
}

describe('notation outcomes', () => {
  let root: Issued;
  let leaf: Issued;
  let reader: OCILayoutReader;
  let target: Descriptor;
  before(async () => {
    root = await issue({ subject: 'CN=Acme Root,O=Acme,ST=WA,C=US', ca: true });
    leaf = await issue({ subject: 'CN=signer,O=Acme,ST=WA,C=US', issuer: root });
    reader = new OCILayoutReader({ schemaVersion: 2, manifests: [] }, new Map(), { registry: 'registry.test', repository: 'org/app' });
    const config = reader.put('application/vnd.oci.image.config.v1+json', Buffer.from('{}'));
    target = reader.putManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [] });
    pushSignature(reader, target, await signJWS({ target, chain: [leaf, root], alg: 'ES256' }), 'application/jose+json');
  });
  const prepared = (level: string, store?: Issued) =>
    prepareNotation(
      {
        provider: 'notation',
        secret: {
          name: 'ns/s',
          data: {
            'trustpolicy.json': Buffer.from(JSON.stringify({ version: '1.0', trustPolicies: [{ name: 'p', registryScopes: ['*'], signatureVerification: { level }, trustStores: level === 'skip' ? [] : ['ca:acme'], trustedIdentities: level === 'skip' ? [] : ['*'] }] })),
            'ca.acme.pem': pem(store ?? root),
          },
        },
      },
      { fetch: offlineFetch },
    );

  test('authenticity is explicit: established (strict), audited (audit, untrusted chain), skipped (skip)', async () => {
    const strict = await prepared('strict').verify({ registry: reader, descriptor: target }, { limits: { maxSignatures: 3 } });
    assert.equal(strict.status === 'verified' && strict.authenticity, 'established', strict.message);
    const other = await issue({ subject: 'CN=Other Root,O=Other,ST=WA,C=US', ca: true });
    const audited = await prepared('audit', other).verify({ registry: reader, descriptor: target }, { limits: { maxSignatures: 3 } });
    assert.equal(audited.status === 'verified' && audited.authenticity, 'audited', audited.message);
    const skipped = await prepared('skip').verify({ registry: reader, descriptor: target }, { limits: { maxSignatures: 3 } });
    assert.equal(skipped.status === 'skipped' && skipped.authenticity, 'skipped', skipped.message);
  });

  for (const [method, phase] of [['referrers', 'discovery'], ['fetchManifest', 'verification'], ['fetchBlob', 'verification']] as const) {
    test(`spec.timeout firing while ${method} hangs → timeout failure naming ${phase}`, async () => {
      const signal = AbortSignal.timeout(150);
      const o = await prepared('strict').verify({ registry: hanging(reader, method, signal), descriptor: target }, { limits: { maxSignatures: 3 }, signal, deadline: 'spec.timeout 150ms' });
      failed(o, 'timeout', new RegExp(`^signature ${phase} for registry\\.test/org/app@${target.digest} did not finish within spec\\.timeout 150ms`));
    });
  }

  test('a registry error while listing referrers is a registry-error failure, not an exception', async () => {
    const broken: RegistryReader = { ...hanging(reader, 'fetchBlob', new AbortController().signal), referrers: async () => Promise.reject(new RegistryError('referrers: HTTP 500 Internal Server Error', 500)) };
    failed(await prepared('strict').verify({ registry: broken, descriptor: target }, { limits: { maxSignatures: 3 } }), 'registry-error', /cannot read signatures from registry\.test\/org\/app: referrers: HTTP 500/);
  });
});

describe('hostile signature manifests and envelopes end as typed failures, never internal-error', () => {
  const garbage: unknown[] = [null, 1, 'x', [], {}, { layers: [null] }, { layers: [{}] }, { layers: [{ digest: 5, mediaType: [], size: 'big' }] }, { layers: [{ digest: 'sha256:00', mediaType: 'application/jose+json', size: -1 }] }, { config: null, layers: null }, { subject: 'x', layers: [{ mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json', size: 1, digest: 'sha256:ab' }] }];
  const envelopes: Buffer[] = [Buffer.from('{}'), Buffer.from('{"protected":1}'), Buffer.from([0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40]), Buffer.from([0xd2, 0x84, 0x41]), Buffer.from('{"payload":"","protected":"e30","signature":"AA","header":{"x5c":[null]}}'), Buffer.from([0xf9])];
  test('notation: manifests of every shape, envelopes of every shape', async () => {
    const root = await issue({ subject: 'CN=Acme Root,O=Acme,ST=WA,C=US', ca: true });
    const p = prepareNotation({ provider: 'notation', secret: { name: 'ns/s', data: { 'trustpolicy.json': Buffer.from(JSON.stringify({ version: '1.0', trustPolicies: [{ name: 'p', registryScopes: ['*'], signatureVerification: { level: 'strict' }, trustStores: ['ca:acme'], trustedIdentities: ['*'] }] })), 'ca.acme.pem': pem(root) } } }, { fetch: offlineFetch });
    const reader = new OCILayoutReader({ schemaVersion: 2, manifests: [] }, new Map());
    const config = reader.put('application/vnd.cncf.notary.signature', Buffer.from('{}'));
    const target = reader.putManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: reader.put('application/vnd.oci.image.config.v1+json', Buffer.from('{}')), layers: [] });
    const listed: Descriptor[] = [];
    for (const g of garbage) listed.push({ ...reader.put('application/vnd.oci.image.manifest.v1+json', Buffer.from(JSON.stringify(g))), artifactType: 'application/vnd.cncf.notary.signature' });
    for (const [i, e] of envelopes.entries()) {
      const layer = reader.put(i % 2 ? 'application/cose' : 'application/jose+json', e);
      listed.push({ ...reader.putManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [layer], subject: target }), artifactType: 'application/vnd.cncf.notary.signature' });
    }
    reader.referrers = async () => listed;
    const o = await p.verify({ registry: reader, descriptor: target }, { limits: { maxSignatures: 100 } });
    assert.equal(o.status, 'failed');
    assert.ok(o.attempts.length >= envelopes.length, `${o.attempts.length} attempts`);
    for (const a of o.attempts) assert.notEqual(a.failure?.code, 'internal-error', a.failure?.message);
    assert.notEqual(o.status === 'failed' && o.code, 'internal-error', o.message);
  });
  test('cosign: bundle referrers and .sig layers of every shape', async () => {
    const key = generateKey('p256');
    const reg = new MemoryRegistry();
    const cfg = reg.putBlob(Buffer.from('{}'), 'application/vnd.oci.image.config.v1+json');
    const target = reg.putJSONManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: cfg, layers: [] });
    const refs = garbage.map((g) => ({ ...reg.putManifest(Buffer.from(JSON.stringify(g)), 'application/vnd.oci.image.manifest.v1+json'), artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json' }));
    reg.referrers = async () => refs;
    const junk = [null, 1, { mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json' }, { mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', digest: 'sha256:00', size: 3, annotations: 'x' }, { mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', digest: 'sha256:00', size: 3, annotations: { 'dev.cosignproject.cosign/signature': 'AA==' } }];
    reg.putJSONManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: cfg, layers: junk }, `sha256-${target.digest.slice(7)}.sig`);
    const o = await (await prepareKeys({ 'cosign.pub': key.pubPem })).verify({ registry: reg, descriptor: target }, { limits: { maxSignatures: 100 } });
    assert.equal(o.status, 'failed', o.message);
    assert.ok(o.attempts.length >= refs.length, `${o.attempts.length} attempts`);
    for (const a of o.attempts) assert.notEqual(a.failure?.code, 'internal-error', a.failure?.message);
    assert.notEqual(o.status === 'failed' && o.code, 'internal-error', o.message);
  });
});

describe('cosign outcomes', () => {
  const key = generateKey('p256');
  function image(): { reg: MemoryRegistry; target: Descriptor } {
    const reg = new MemoryRegistry();
    const cfg = reg.putBlob(Buffer.from('{}'), 'application/vnd.oci.image.config.v1+json');
    return { reg, target: reg.putJSONManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: cfg, layers: [] }) };
  }

  test('key-signed .sig: verified with authenticity established', async () => {
    const { reg, target } = image();
    pushSigManifest(reg, target.digest, [signLegacy(key, target.digest)]);
    const o = await (await prepareKeys({ 'cosign.pub': key.pubPem })).verify({ registry: reg, descriptor: target }, { limits: { maxSignatures: 3 } });
    assert.equal(o.status === 'verified' && o.authenticity, 'established', o.message);
  });

  test('a sha512 digest is an unsupported failure, not a plain Error', async () => {
    const { reg } = image();
    const target: Descriptor = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha512:${'ab'.repeat(64)}`, size: 2 };
    const o = await (await prepareKeys({ 'cosign.pub': key.pubPem })).verify({ registry: reg, descriptor: target }, { limits: { maxSignatures: 3 } });
    failed(o, 'unsupported', /sha256/);
  });

  for (const [method, phase] of [['referrers', 'discovery'], ['fetchManifest', 'discovery'], ['fetchBlob', 'verification']] as const) {
    test(`spec.timeout firing while ${method} hangs → timeout failure naming ${phase}`, async () => {
      const { reg, target } = image();
      pushSigManifest(reg, target.digest, [signLegacy(key, target.digest)]);
      const signal = AbortSignal.timeout(150);
      const v = await prepareKeys({ 'cosign.pub': key.pubPem });
      const o = await v.verify({ registry: hanging(reg, method, signal), descriptor: target }, { limits: { maxSignatures: 3 }, signal, deadline: 'spec.timeout 150ms' });
      failed(o, 'timeout', new RegExp(`^signature ${phase} for registry\\.test/org/app@${target.digest} did not finish within spec\\.timeout 150ms`));
    });
  }

  test('referrers failing and no .sig tag → registry-error failure', async () => {
    const { reg, target } = image();
    reg.referrersError = new RegistryError('referrers: HTTP 500 Internal Server Error', 500);
    const o = await (await prepareKeys({ 'cosign.pub': key.pubPem })).verify({ registry: reg, descriptor: target }, { limits: { maxSignatures: 3 } });
    failed(o, 'registry-error', /cannot read signatures from registry\.test\/org\/app: referrers: HTTP 500/);
  });
});
