// Key-based verification with signatures made here (node:crypto): legacy `.sig` layers and
// cosign v3 bundles, for ECDSA P-256/384/521, RSA and Ed25519 keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryError } from '../../../src/oci/errors.ts';
import { MemoryRegistry, pushBundleReferrer, pushSigManifest, sha256, type SigLayer } from '../../helpers/cosign-registry.ts';
import { cosignPayload, generateKey, inTotoStatement, keyBundle, legacyLayer, signBytes, signLegacy, type KeyType } from '../../helpers/cosign-sign.ts';
import { codes, prepareKeys, run } from '../../helpers/cosign-verify.ts';
import type { Descriptor } from '../../../src/oci/types.ts';

function image(reg = new MemoryRegistry(), content = 'app'): { reg: MemoryRegistry; target: Descriptor } {
  const cfg = reg.putBlob(Buffer.from(`{"c":"${content}"}`), 'application/vnd.oci.image.config.v1+json');
  const target = reg.putJSONManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: cfg, layers: [] }, 'v1');
  return { reg, target };
}

function withSig(layers: SigLayer[]): { reg: MemoryRegistry; target: Descriptor } {
  const { reg, target } = image();
  pushSigManifest(reg, target.digest, layers);
  return { reg, target };
}

const TYPES: KeyType[] = ['p256', 'p384', 'p521', 'rsa', 'ed25519'];

for (const type of TYPES) {
  test(`legacy .sig signed with ${type}: PASS with its key, FAIL with another`, async () => {
    const key = generateKey(type);
    const { reg, target } = image();
    pushSigManifest(reg, target.digest, [signLegacy(key, target.digest)]);
    const ok = await run(await prepareKeys({ 'cosign.pub': key.pubPem }), reg, target);
    assert.equal(ok.status, 'verified', JSON.stringify(ok));
    assert.equal((ok.details.key as { algorithm: string }).algorithm.split('-')[0], type === 'rsa' ? 'rsa' : type === 'ed25519' ? 'ed25519' : 'ecdsa');
    const other = generateKey(type);
    const bad = await run(await prepareKeys({ 'cosign.pub': other.pubPem }), reg, target);
    assert.deepEqual(codes(bad), ['signature-invalid']);
  });

  test(`cosign v3 bundle signed with ${type}: PASS with its key, FAIL with another`, async () => {
    const key = generateKey(type);
    const { reg, target } = image();
    pushBundleReferrer(reg, target, keyBundle(key, target.digest));
    const ok = await run(await prepareKeys({ 'cosign.pub': key.pubPem }), reg, target);
    assert.equal(ok.status, 'verified', JSON.stringify(ok));
    assert.equal(ok.details.format, 'bundle');
    assert.match(ok.message, /Sigstore bundle/);
    const bad = await run(await prepareKeys({ 'cosign.pub': generateKey(type).pubPem }), reg, target);
    assert.deepEqual(codes(bad), ['signature-invalid']);
  });
}

test('ECDSA signatures in raw r||s (IEEE P1363) are accepted', async () => {
  const key = generateKey('p256');
  const { reg, target } = image();
  pushSigManifest(reg, target.digest, [signLegacy(key, target.digest, { encoding: 'ieee-p1363' })]);
  const o = await run(await prepareKeys({ 'cosign.pub': key.pubPem }), reg, target);
  assert.equal(o.status, 'verified');
});

test('RSA PUBLIC KEY (PKCS#1) PEM is accepted', async () => {
  const key = generateKey('rsa');
  const pkcs1 = key.publicKey.export({ format: 'pem', type: 'pkcs1' }).toString();
  assert.match(pkcs1, /BEGIN RSA PUBLIC KEY/);
  const { reg, target } = image();
  pushSigManifest(reg, target.digest, [signLegacy(key, target.digest)]);
  const o = await run(await prepareKeys({ 'cosign.pub': pkcs1 }), reg, target);
  assert.equal(o.status, 'verified');
});

test('tampered payload (one byte changed, blob digest consistent) → signature-invalid', async () => {
  const key = generateKey('p256');
  const { reg, target } = image();
  const layer = signLegacy(key, target.digest);
  const tampered = Buffer.from(layer.payload.toString().replace('"optional":null', '"optional":{}'));
  pushSigManifest(reg, target.digest, [{ ...layer, payload: tampered }]);
  const o = await run(await prepareKeys({ 'cosign.pub': key.pubPem }), reg, target);
  assert.deepEqual(codes(o), ['signature-invalid']);
});

test('signature over the payload re-serialised with spaces is not accepted for the original bytes', async () => {
  // Verification is over the exact blob bytes: a signature made over a re-serialised payload fails.
  const key = generateKey('p256');
  const { reg, target } = image();
  const payload = cosignPayload(target.digest);
  const reserialised = Buffer.from(JSON.stringify(JSON.parse(payload.toString()), null, 1));
  pushSigManifest(reg, target.digest, [legacyLayer(payload, signBytes(key.privateKey, reserialised))]);
  const o = await run(await prepareKeys({ 'cosign.pub': key.pubPem }), reg, target);
  assert.deepEqual(codes(o), ['signature-invalid']);
});

test('payload signed for another digest → digest-mismatch; for this digest with different key order → PASS', async () => {
  const key = generateKey('p256');
  const { reg, target } = image();
  const wrong = signLegacy(key, `sha256:${'0'.repeat(64)}`);
  pushSigManifest(reg, target.digest, [wrong]);
  assert.deepEqual(codes(await run(await prepareKeys({ 'cosign.pub': key.pubPem }), reg, target)), ['digest-mismatch']);
  const reordered = Buffer.from(`{"optional":null,"critical":{"type":"cosign container image signature","image":{"docker-manifest-digest":"${target.digest}"},"identity":{"docker-reference":"x"}}}`);
  const w2 = withSig([signLegacy(key, target.digest, { payload: reordered })]);
  // withSig builds a fresh image with the same content, hence the same digest
  assert.equal(w2.target.digest, target.digest);
  assert.equal((await run(await prepareKeys({ 'cosign.pub': key.pubPem }), w2.reg, w2.target)).status, 'verified');
});

test('payload that is not JSON or lacks the digest claim → malformed', async () => {
  const key = generateKey('p256');
  for (const payload of [Buffer.from('not json'), Buffer.from('{"critical":{"image":{}}}')]) {
    const { reg, target } = withSig([legacyLayer(payload, signBytes(key.privateKey, payload))]);
    assert.deepEqual(codes(await run(await prepareKeys({ 'cosign.pub': key.pubPem }), reg, target)), ['malformed']);
  }
});

test('truncated, non-base64, missing and oversized signature annotations → malformed / signature-invalid', async () => {
  const key = generateKey('p256');
  const { target } = image();
  const good = signLegacy(key, target.digest);
  const sig = good.annotations['dev.cosignproject.cosign/signature']!;
  const cases: Array<[string, Record<string, string>, string]> = [
    ['truncated', { 'dev.cosignproject.cosign/signature': sig.slice(0, 40) }, 'signature-invalid'],
    ['bad padding', { 'dev.cosignproject.cosign/signature': sig.slice(0, -1) }, 'malformed'],
    ['url alphabet', { 'dev.cosignproject.cosign/signature': `${sig.slice(0, -4)}-_-_` }, 'malformed'],
    ['missing', {}, 'malformed'],
    ['oversized', { 'dev.cosignproject.cosign/signature': 'A'.repeat(20000) }, 'malformed'],
    ['oversized certificate', { ...good.annotations, 'dev.sigstore.cosign/certificate': 'x'.repeat(40000) }, 'malformed'],
    ['bad Rekor bundle JSON', { ...good.annotations, 'dev.sigstore.cosign/bundle': '{"Payload":' }, 'malformed'],
  ];
  for (const [name, annotations, want] of cases) {
    const { reg, target: t } = withSig([{ ...good, annotations }]);
    assert.deepEqual(codes(await run(await prepareKeys({ 'cosign.pub': key.pubPem }), reg, t)), [want], name);
  }
});

test('base64 signature with embedded newlines is accepted', async () => {
  const key = generateKey('p256');
  const { target } = image();
  const good = signLegacy(key, target.digest);
  const wrapped = good.annotations['dev.cosignproject.cosign/signature']!.replace(/(.{20})/g, '$1\n');
  const { reg, target: t } = withSig([{ ...good, annotations: { 'dev.cosignproject.cosign/signature': wrapped } }]);
  assert.equal((await run(await prepareKeys({ 'cosign.pub': key.pubPem }), reg, t)).status, 'verified');
});

test('a payload layer over the maxEnvelopeSize budget is rejected before fetching', async () => {
  const key = generateKey('p256');
  const { reg, target } = image();
  const payload = Buffer.concat([cosignPayload(target.digest), Buffer.alloc(1024 * 1024 + 1, 0x20)]);
  pushSigManifest(reg, target.digest, [legacyLayer(payload, signBytes(key.privateKey, payload))]);
  const v = await prepareKeys({ 'cosign.pub': key.pubPem });
  const o = await v.verify({ registry: reg, descriptor: target }, { limits: { maxEnvelopeSize: 1024 * 1024 } });
  assert.deepEqual(codes(o), ['limit-exceeded']);
  assert.match(o.message, /is \d+ bytes, more than 1048576 \(limit maxEnvelopeSize\)/);
  assert.ok(!reg.calls.includes(`blob ${sha256(payload)}`), 'payload blob not fetched');
});

test('bundles are tried first, then the .sig tag; either passing is enough', async () => {
  const key = generateKey('p256');
  const other = generateKey('p256');
  const { reg, target } = image();
  pushBundleReferrer(reg, target, keyBundle(other, target.digest));
  pushSigManifest(reg, target.digest, [signLegacy(key, target.digest)]);
  const o = await run(await prepareKeys({ 'cosign.pub': key.pubPem }), reg, target);
  assert.equal(o.status, 'verified');
  assert.equal(o.details.format, 'legacy');
  assert.deepEqual(codes(o), ['signature-invalid', 'ok']);
  assert.ok(reg.calls[0]!.startsWith('referrers '), 'referrers queried first');
});

test('maxSignatures bounds bundles and layers together', async () => {
  const key = generateKey('p256');
  const other = generateKey('p256');
  const { reg, target } = image();
  pushBundleReferrer(reg, target, keyBundle(other, target.digest));
  pushSigManifest(reg, target.digest, [signLegacy(other, target.digest), signLegacy(key, target.digest)]);
  const v = await prepareKeys({ 'cosign.pub': key.pubPem });
  assert.deepEqual(codes(await run(v, reg, target, 2)), ['signature-invalid', 'signature-invalid']);
  assert.deepEqual(codes(await run(v, reg, target, 3)), ['signature-invalid', 'signature-invalid', 'ok']);
});

test('bundle whose in-toto subject is another digest → digest-mismatch', async () => {
  const key = generateKey('p256');
  const { reg, target } = image();
  pushBundleReferrer(reg, target, keyBundle(key, target.digest, inTotoStatement(`sha256:${'1'.repeat(64)}`)));
  const o = await run(await prepareKeys({ 'cosign.pub': key.pubPem }), reg, target);
  assert.deepEqual(codes(o), ['digest-mismatch']);
});

test('referrer manifests with two layers or a non-JSON bundle are rejected', async () => {
  const key = generateKey('p256');
  const { reg, target } = image();
  const extra = reg.putBlob(Buffer.from('x'), 'application/vnd.dev.sigstore.bundle.v0.3+json');
  pushBundleReferrer(reg, target, keyBundle(key, target.digest), { extraLayers: [extra] });
  assert.deepEqual(codes(await run(await prepareKeys({ 'cosign.pub': key.pubPem }), reg, target)), ['malformed']);
  const r2 = image();
  pushBundleReferrer(r2.reg, r2.target, Buffer.from('{not json'));
  assert.deepEqual(codes(await run(await prepareKeys({ 'cosign.pub': key.pubPem }), r2.reg, r2.target)), ['malformed']);
});

test('referrers failure falls back to the .sig tag (warning); with no .sig it is a registry-error outcome', async () => {
  const key = generateKey('p256');
  const { reg, target } = image();
  reg.referrersError = new RegistryError('referrers exploded', 500);
  pushSigManifest(reg, target.digest, [signLegacy(key, target.digest)]);
  const o = await run(await prepareKeys({ 'cosign.pub': key.pubPem }), reg, target);
  assert.equal(o.status, 'verified');
  assert.match(o.warnings.join(), /referrers exploded/);
  const r2 = image();
  r2.reg.referrersError = new RegistryError('referrers exploded', 500);
  const f = await run(await prepareKeys({ 'cosign.pub': key.pubPem }), r2.reg, r2.target);
  assert.equal(f.status === 'failed' && f.code, 'registry-error');
  assert.match(f.message, /cannot read signatures from registry\.test\/org\/app: referrers exploded/);
});

test('failure message lists each signature with its first failed check', async () => {
  const key = generateKey('p256');
  const { reg, target } = image();
  pushSigManifest(reg, target.digest, [signLegacy(generateKey('p256'), target.digest), signLegacy(key, `sha256:${'2'.repeat(64)}`)]);
  const o = await run(await prepareKeys({ 'cosign.pub': key.pubPem }), reg, target);
  assert.equal(o.status, 'failed');
  assert.equal(o.status === 'failed' && o.code, 'all-failed');
  assert.match(o.message, /^no matching signatures were found for 'registry\.test\/org\/app@sha256:[0-9a-f]{64}': /);
  assert.match(o.message, /layer 1: signature-invalid: .*; .*layer 2: digest-mismatch: /);
});
