// Issue #7 budgets on the verify side (src/api/limits.ts): each one, when hit, is a typed failure
// (`limit-exceeded`) whose message names the budget. Small budgets are passed through VerifyOptions so the
// inputs stay small; the hostile shapes (deep nesting, certificate loops) are exercised at full size too.
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { DefaultLimits, LimitError, type Limits } from '../../../src/api/limits.ts';
import type { Descriptor } from '../../../src/oci/types.ts';
import { prepareNotation } from '../../../src/verify/notation/index.ts';
import { decodeCbor } from '../../../src/verify/notation/cose.ts';
import { parseJSON } from '../../../src/util/json.ts';
import { EKU, parseCertificate } from '../../../src/verify/x509/certs.ts';
import { buildChain } from '../../../src/verify/x509/chain.ts';
import type { VerificationOutcome } from '../../../src/verify/types.ts';
import { issue, opensslTSA, pem, pushSignature, sameKeyCertificates, signCOSE, signJWS, type Issued } from '../../helpers/notation-sign.ts';
import { OCILayoutReader } from '../../helpers/oci-layout.ts';
import { MemoryRegistry, pushSigManifest } from '../../helpers/cosign-registry.ts';
import { cosignPayload, legacyLayer, signBytes } from '../../helpers/cosign-sign.ts';
import { TestSigstore } from '../../helpers/cosign-sigstore.ts';
import { prepareKeyless } from '../../helpers/cosign-verify.ts';
import { offlineFetch } from '../notation/fixtures.ts';

function limitHit(o: VerificationOutcome, budget: keyof Limits): void {
  const code = o.status === 'failed' ? (o.attempts.length === 1 ? o.attempts[0]!.failure!.code : o.code) : o.status;
  assert.equal(code, 'limit-exceeded', o.message);
  assert.ok(o.message.includes(`(limit ${budget})`), `the message names ${budget}: ${o.message}`);
}

describe('notation budgets', () => {
  let root: Issued;
  let leaf: Issued;
  before(async () => {
    root = await issue({ subject: 'CN=Acme Root,O=Acme,ST=WA,C=US', ca: true });
    leaf = await issue({ subject: 'CN=signer,O=Acme,ST=WA,C=US', issuer: root });
  });
  const policy = (stores = ['ca:acme']) =>
    JSON.stringify({ version: '1.0', trustPolicies: [{ name: 'p', registryScopes: ['*'], signatureVerification: { level: 'strict' }, trustStores: stores, trustedIdentities: ['*'] }] });
  function layout(): { reader: OCILayoutReader; target: Descriptor } {
    const reader = new OCILayoutReader({ schemaVersion: 2, manifests: [] }, new Map());
    const config = reader.put('application/vnd.oci.image.config.v1+json', Buffer.from('{}'));
    return { reader, target: reader.putManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [] }) };
  }
  async function verify(fmt: 'JWS' | 'COSE', limits: Partial<Limits>, chain?: Issued[], data: Record<string, Buffer> = {}, stores?: string[]) {
    const { reader, target } = layout();
    const env = await (fmt === 'JWS' ? signJWS : signCOSE)({ target, chain: chain ?? [leaf, root], alg: 'ES256' });
    pushSignature(reader, target, env, fmt === 'JWS' ? 'application/jose+json' : 'application/cose');
    const p = prepareNotation({ provider: 'notation', secret: { name: 'ns/s', data: { 'trustpolicy.json': Buffer.from(policy(stores)), 'ca.acme.pem': pem(root), ...data } } }, { fetch: offlineFetch });
    return p.verify({ registry: reader, descriptor: target }, { limits });
  }

  test('control: the same envelopes pass with the default budgets', async () => {
    assert.equal((await verify('JWS', {})).status, 'verified');
    assert.equal((await verify('COSE', {})).status, 'verified');
  });
  test('maxEnvelopeSize', async () => limitHit(await verify('JWS', { maxEnvelopeSize: 512 }), 'maxEnvelopeSize'));
  test('maxCertificates (JWS x5c, COSE x5chain)', async () => {
    limitHit(await verify('JWS', { maxCertificates: 1 }), 'maxCertificates');
    limitHit(await verify('COSE', { maxCertificates: 1 }), 'maxCertificates');
  });
  test('maxCertificateSize', async () => limitHit(await verify('COSE', { maxCertificateSize: 200 }), 'maxCertificateSize'));
  test('maxJSONDepth (JWS envelope) and maxCBORDepth (COSE envelope)', async () => {
    limitHit(await verify('JWS', { maxJSONDepth: 2 }), 'maxJSONDepth');
    limitHit(await verify('COSE', { maxCBORDepth: 1 }), 'maxCBORDepth');
  });
  test('maxSignatureReferrers: referrers that are not signatures are opened only up to the budget', async () => {
    const { reader, target } = layout();
    const listed: Descriptor[] = [];
    for (let i = 0; i < 3; i++) {
      const config = reader.put('application/vnd.example.sbom', Buffer.from(`{"n":${i}}`));
      listed.push(reader.putManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [], subject: target }));
    }
    // A referrers tag index whose entries carry no artifactType: each manifest must be opened to see what it is.
    reader.referrers = async () => listed;
    const p = prepareNotation({ provider: 'notation', secret: { name: 'ns/s', data: { 'trustpolicy.json': Buffer.from(policy()), 'ca.acme.pem': pem(root) } } }, { fetch: offlineFetch });
    const o = await p.verify({ registry: reader, descriptor: target }, { limits: { maxSignatureReferrers: 2, maxSignatures: 1 } });
    assert.equal(o.status === 'failed' && o.code, 'limit-exceeded', o.message);
    assert.match(o.message, /after opening 2 referrers \(limit maxSignatureReferrers\)/);
  });
  test('maxChainCandidates: a timestamp token with 12 certificates sharing one name and key', async () => {
    const loop = await sameKeyCertificates(12, 'CN=Loop CA,O=Loop,ST=WA,C=US');
    const tsaLeaf = await issue({ subject: 'CN=Loop TSA,O=Loop,ST=WA,C=US', issuer: loop[0]!, eku: [EKU.timeStamping], ekuCritical: true });
    const stamp = await opensslTSA(tsaLeaf, [tsaLeaf, ...loop]);
    const tsaRoot = await issue({ subject: 'CN=TSA Root,O=Acme,ST=WA,C=US', ca: true });
    const { reader, target } = layout();
    pushSignature(reader, target, await signJWS({ target, chain: [leaf, root], alg: 'ES256', timestamp: stamp }), 'application/jose+json');
    const p = prepareNotation({ provider: 'notation', secret: { name: 'ns/s', data: { 'trustpolicy.json': Buffer.from(policy(['ca:acme', 'tsa:t'])), 'ca.acme.pem': pem(root), 'tsa.t.pem': pem(tsaRoot) } } }, { fetch: offlineFetch });
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    await new Promise((r) => setTimeout(r, 30)); // the histogram records only after its first tick
    const o = await p.verify({ registry: reader, descriptor: target }, {});
    await new Promise((r) => setTimeout(r, 50)); // a blocked loop is recorded once the histogram's timer runs
    delay.disable();
    limitHit(o, 'maxChainCandidates');
    assert.match(o.message, /authenticTimestamp validation failed: .*12 certificates are named "CN=Loop CA,O=Loop,ST=WA,C=US", more than 8/);
    assert.ok(delay.max / 1e6 < 5000, `event loop blocked for ${(delay.max / 1e6).toFixed(0)} ms`);
  });
  test('maxCertificates: a timestamp token with over 16 certificates is refused before any of them is parsed', async () => {
    const loop = await sameKeyCertificates(19, 'CN=Loop CA,O=Loop,ST=WA,C=US');
    const tsaLeaf = await issue({ subject: 'CN=Loop TSA,O=Loop,ST=WA,C=US', issuer: loop[0]!, eku: [EKU.timeStamping], ekuCritical: true });
    const stamp = await opensslTSA(tsaLeaf, [tsaLeaf, ...loop]);
    const { reader, target } = layout();
    pushSignature(reader, target, await signJWS({ target, chain: [leaf, root], alg: 'ES256', timestamp: stamp }), 'application/jose+json');
    const p = prepareNotation({ provider: 'notation', secret: { name: 'ns/s', data: { 'trustpolicy.json': Buffer.from(policy(['ca:acme', 'tsa:t'])), 'ca.acme.pem': pem(root), 'tsa.t.pem': pem(root) } } }, { fetch: offlineFetch });
    const o = await p.verify({ registry: reader, descriptor: target }, {});
    limitHit(o, 'maxCertificates');
    assert.match(o.message, /the RFC 3161 timestamp token carries 2\d certificates, more than 16/);
  });
});

describe('x509 chain budgets', () => {
  test('maxChainDepth: a path longer than the budget is not followed, and the error says so', async () => {
    const root = await issue({ subject: 'CN=Root,O=A,ST=WA,C=US', ca: true });
    let parent = root;
    const inters: Issued[] = [];
    for (let i = 0; i < 4; i++) inters.push((parent = await issue({ subject: `CN=I${i},O=A,ST=WA,C=US`, ca: true, issuer: parent })));
    const leaf = await issue({ subject: 'CN=leaf,O=A,ST=WA,C=US', issuer: parent });
    const c = (i: Issued) => parseCertificate(i.der);
    const ok = await buildChain(c(leaf), inters.map(c), [c(root)]);
    assert.equal(ok.length, 6);
    await assert.rejects(buildChain(c(leaf), inters.map(c), [c(root)], { limits: { ...DefaultLimits, maxChainDepth: 4 } }), (e: unknown) => e instanceof LimitError && e.limit === 'maxChainDepth');
  });
});

describe('hostile nesting at full size is refused quickly', () => {
  test('JSON: 1,000,000 nested arrays', () => {
    assert.throws(() => parseJSON('['.repeat(1_000_000) + ']'.repeat(1_000_000), 'test document', DefaultLimits.maxJSONDepth), (e: unknown) => e instanceof LimitError && e.limit === 'maxJSONDepth');
  });
  test('JSON: brackets inside strings do not count', () => {
    assert.deepEqual(parseJSON(JSON.stringify({ a: '[[[[[[[[[[[[[[[[' }), 'doc', 2), { a: '[[[[[[[[[[[[[[[[' });
  });
  test('CBOR: 1,000,000 nested one-element arrays', () => {
    assert.throws(() => decodeCbor(Buffer.concat([Buffer.alloc(1_000_000, 0x81), Buffer.from([0x00])]), DefaultLimits.maxCBORDepth), (e: unknown) => e instanceof LimitError && e.limit === 'maxCBORDepth');
  });
});

describe('cosign budgets', () => {
  test('maxCertificates on the chain annotation, maxJSONDepth on the payload', async () => {
    const s = await TestSigstore.create('budget');
    const reg = new MemoryRegistry();
    const cfg = reg.putBlob(Buffer.from('{}'), 'application/vnd.oci.image.config.v1+json');
    const target = reg.putJSONManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: cfg, layers: [] });
    const leaf = await s.issueLeaf({ email: 'dev@example.com', notBefore: new Date('2025-03-01T12:00:00Z') });
    const payload = cosignPayload(target.digest);
    const sig = signBytes(leaf.privateKey, payload);
    const T = Math.floor(new Date('2025-03-01T12:01:00Z').getTime() / 1000);
    pushSigManifest(reg, target.digest, [legacyLayer(payload, sig, {
      'dev.sigstore.cosign/certificate': leaf.pem,
      'dev.sigstore.cosign/chain': s.chainPem,
      'dev.sigstore.cosign/bundle': s.legacyBundleAnnotation(payload, sig, leaf.pem, T),
    })]);
    const v = await prepareKeyless([{ issuer: '^https://issuer\\.test$', subject: '^dev@example\\.com$' }], s.trustedRoot());
    assert.equal((await v.verify({ registry: reg, descriptor: target }, {})).status, 'verified');
    limitHit(await v.verify({ registry: reg, descriptor: target }, { limits: { maxCertificates: 1 } }), 'maxCertificates');
    limitHit(await v.verify({ registry: reg, descriptor: target }, { limits: { maxJSONDepth: 2 } }), 'maxJSONDepth');
  });
});
