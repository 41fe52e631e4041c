// Keyless verification against a private Sigstore instance made in the test (Fulcio-like CA, CT
// log, Rekor) and its trusted_root.json: legacy `.sig` layers and cosign v3 bundles. Also the
// containers/image "bring your own PKI" vector.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { vectorPath } from '../../helpers/shared.ts';
import { loadDirImg, MemoryRegistry, pushBundleReferrer, pushSigManifest, type SigLayer } from '../../helpers/cosign-registry.ts';
import { cosignPayload, dsseBundle, inTotoStatement, legacyLayer, pae, signBytes } from '../../helpers/cosign-sign.ts';
import { TestSigstore, type LeafOptions } from '../../helpers/cosign-sigstore.ts';
import { codes, prepareKeyless, run } from '../../helpers/cosign-verify.ts';
import type { Descriptor } from '../../../src/oci/types.ts';

let s: TestSigstore;
let other: TestSigstore;
before(async () => {
  s = await TestSigstore.create('private');
  other = await TestSigstore.create('other');
});

const SIGNED_AT = new Date('2025-03-01T12:00:00Z');
const T = Math.floor(SIGNED_AT.getTime() / 1000) + 60; // integratedTime one minute after issuance
const ID = { issuer: '^https://issuer\\.test$', subject: '^dev@example\\.com$' };

function image(): { reg: MemoryRegistry; target: Descriptor } {
  const reg = new MemoryRegistry();
  const cfg = reg.putBlob(Buffer.from('{}'), 'application/vnd.oci.image.config.v1+json');
  return { reg, target: reg.putJSONManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: cfg, layers: [] }) };
}

interface LegacyOpts {
  leaf?: Partial<LeafOptions>;
  integratedTime?: number;
  rekor?: TestSigstore;
  noBundle?: boolean;
  noChain?: boolean;
  digest?: string;
}

async function legacyKeyless(digest: string, o: LegacyOpts = {}): Promise<SigLayer> {
  const leaf = await s.issueLeaf({ email: 'dev@example.com', notBefore: SIGNED_AT, ...o.leaf });
  const payload = cosignPayload(o.digest ?? digest);
  const sig = signBytes(leaf.privateKey, payload);
  const ann: Record<string, string> = { 'dev.sigstore.cosign/certificate': leaf.pem };
  if (!o.noChain) ann['dev.sigstore.cosign/chain'] = s.chainPem;
  if (!o.noBundle) ann['dev.sigstore.cosign/bundle'] = (o.rekor ?? s).legacyBundleAnnotation(payload, sig, leaf.pem, o.integratedTime ?? T);
  return legacyLayer(payload, sig, ann);
}

/** root: trusted_root.json text, or null for the embedded public-good root. */
async function legacyOutcome(o: LegacyOpts = {}, ids = [ID], root: string | null = s.trustedRoot()) {
  const { reg, target } = image();
  pushSigManifest(reg, target.digest, [await legacyKeyless(target.digest, o)]);
  return run(await prepareKeyless(ids, root ?? undefined), reg, target);
}

test('private Sigstore, legacy: PASS (expired cert by wall clock; integratedTime inside validity)', async () => {
  const o = await legacyOutcome();
  assert.equal(o.status, 'verified', JSON.stringify(o));
  assert.equal((o.details.rekor as { integratedTime: number }).integratedTime, T);
  assert.equal((o.details.rekor as { logIndex: number }).logIndex, 4242);
  assert.match(o.message, /dev@example\.com/);
  assert.match(o.message, /issued by 'https:\/\/issuer\.test'/);
  assert.match(o.message, /Rekor log index 4242/);
});

test('private Sigstore, legacy: issuer from .1.8 only, from .1.1 only', async () => {
  assert.equal((await legacyOutcome({ leaf: { issuerExtensions: 'v2' } })).status, 'verified');
  assert.equal((await legacyOutcome({ leaf: { issuerExtensions: 'v1' } })).status, 'verified');
  assert.deepEqual(codes(await legacyOutcome({ leaf: { issuerExtensions: 'none' } })), ['identity-mismatch']);
});

test('private Sigstore, legacy: URI SAN matched; any of several rules', async () => {
  const o = await legacyOutcome(
    { leaf: { email: undefined, uri: 'https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v1.0.0' } },
    [{ issuer: 'nomatch', subject: '.*' }, { issuer: ID.issuer, subject: '^https://github\\.com/org/repo/\\.github/workflows/release\\.yml@refs/tags/v' }],
  );
  assert.equal(o.status, 'verified', JSON.stringify(o));
});

// Issue #7: only the otherName of type 1.3.6.1.4.1.57264.1.7 (Fulcio's "username" SAN) is an identity;
// an otherName of any other type (here Microsoft's UPN) carrying the same text must not match.
test('private Sigstore, legacy and bundle: otherName SANs count only with type 1.3.6.1.4.1.57264.1.7', async () => {
  const upn = { email: undefined, otherNames: [{ oid: '1.3.6.1.4.1.311.20.2.3', value: 'dev@example.com' }] };
  assert.deepEqual(codes(await legacyOutcome({ leaf: upn })), ['identity-mismatch']);
  assert.deepEqual(codes(await bundleOutcome({ leaf: upn })), ['identity-mismatch']);
  const fulcio = { email: undefined, otherNames: [{ oid: '1.3.6.1.4.1.57264.1.7', value: 'dev@example.com' }] };
  assert.equal((await legacyOutcome({ leaf: fulcio })).status, 'verified');
  assert.equal((await bundleOutcome({ leaf: fulcio })).status, 'verified');
});

test('private Sigstore, legacy: a SAN that is not IA5 (non-ASCII e-mail) is malformed, never matched loosely', async () => {
  const o = await legacyOutcome({ leaf: { email: 'd\u00e9v@example.com' } }, [{ issuer: ID.issuer, subject: '^d.v@example\\.com$' }]);
  assert.deepEqual(codes(o), ['malformed'], JSON.stringify(o));
});

test('private Sigstore, legacy: integratedTime outside the certificate validity → certificate-time-invalid', async () => {
  const o = await legacyOutcome({ integratedTime: T + 3600 });
  assert.deepEqual(codes(o), ['certificate-time-invalid']);
  const early = await legacyOutcome({ integratedTime: T - 3600 });
  assert.deepEqual(codes(early), ['certificate-time-invalid']);
});

test('private Sigstore, legacy: SCT missing / signed by an unknown CT key → sct-missing / sct-invalid', async () => {
  assert.deepEqual(codes(await legacyOutcome({ leaf: { sct: 'none' } })), ['sct-missing']);
  assert.deepEqual(codes(await legacyOutcome({ leaf: { sct: 'bad' } })), ['sct-invalid']);
});

test('private Sigstore, legacy: a root without CT logs does not require SCTs', async () => {
  const o = await legacyOutcome({ leaf: { sct: 'none' } }, [ID], s.trustedRoot({ ctlogs: false }));
  assert.equal(o.status, 'verified');
});

test('private Sigstore: EKU without code signing → chain-invalid (legacy and bundle)', async () => {
  assert.deepEqual(codes(await legacyOutcome({ leaf: { codeSigning: false } })), ['chain-invalid']);
  assert.deepEqual(codes(await bundleOutcome({ leaf: { codeSigning: false } })), ['chain-invalid']);
});

test('private Sigstore, legacy: certificate from another CA → chain-invalid', async () => {
  const o = await legacyOutcome({ leaf: { signer: other.intermediateSigner } });
  assert.deepEqual(codes(o), ['chain-invalid']);
});

test('private Sigstore, legacy: CA validity window in the trusted root excludes the signing time → chain-invalid', async () => {
  const o = await legacyOutcome({}, [ID], s.trustedRoot({ caValidFor: { start: '2020-01-01T00:00:00Z', end: '2024-12-31T00:00:00Z' } }));
  assert.deepEqual(codes(o), ['chain-invalid']);
});

test('private Sigstore, legacy: SET from another Rekor → rekor-set-invalid; no bundle → tlog-missing', async () => {
  assert.deepEqual(codes(await legacyOutcome({ rekor: other })), ['rekor-set-invalid']);
  assert.deepEqual(codes(await legacyOutcome({ noBundle: true })), ['tlog-missing']);
});

test('private Sigstore, legacy: chain annotation optional (intermediate in trusted root)', async () => {
  assert.equal((await legacyOutcome({ noChain: true })).status, 'verified');
});

test('private Sigstore, legacy: Rekor entry for another certificate → key-mismatch', async () => {
  const { reg, target } = image();
  const leaf = await s.issueLeaf({ email: 'dev@example.com', notBefore: SIGNED_AT });
  const impostor = await s.issueLeaf({ email: 'dev@example.com', notBefore: SIGNED_AT });
  const payload = cosignPayload(target.digest);
  const sig = signBytes(leaf.privateKey, payload);
  pushSigManifest(reg, target.digest, [legacyLayer(payload, sig, {
    'dev.sigstore.cosign/certificate': leaf.pem,
    'dev.sigstore.cosign/bundle': s.legacyBundleAnnotation(payload, sig, impostor.pem, T),
  })]);
  assert.deepEqual(codes(await run(await prepareKeyless([ID], s.trustedRoot()), reg, target)), ['key-mismatch']);
});

test('private Sigstore, legacy: signature not made by the certificate key → signature-invalid', async () => {
  const { reg, target } = image();
  const leaf = await s.issueLeaf({ email: 'dev@example.com', notBefore: SIGNED_AT });
  const stranger = await s.issueLeaf({ email: 'x@example.com', notBefore: SIGNED_AT });
  const payload = cosignPayload(target.digest);
  const sig = signBytes(stranger.privateKey, payload);
  pushSigManifest(reg, target.digest, [legacyLayer(payload, sig, {
    'dev.sigstore.cosign/certificate': leaf.pem,
    'dev.sigstore.cosign/bundle': s.legacyBundleAnnotation(payload, sig, leaf.pem, T),
  })]);
  assert.deepEqual(codes(await run(await prepareKeyless([ID], s.trustedRoot()), reg, target)), ['signature-invalid']);
});

test('private Sigstore, legacy: public-good default root does not trust the private CA', async () => {
  const o = await legacyOutcome({}, [ID], null);
  assert.equal(o.status, 'failed');
  assert.deepEqual(codes(o), ['rekor-set-invalid']);
});

async function keylessBundle(digest: string, o: { leaf?: Partial<LeafOptions>; statementDigest?: string; integratedTime?: number; rekor?: TestSigstore } = {}): Promise<Buffer> {
  const leaf = await s.issueLeaf({ email: 'dev@example.com', notBefore: SIGNED_AT, ...o.leaf });
  const statement = inTotoStatement(o.statementDigest ?? digest);
  const sig = signBytes(leaf.privateKey, pae(statement));
  const entry = (o.rekor ?? s).dsseTlogEntry(statement, sig, leaf.pem, o.integratedTime ?? T);
  return dsseBundle({ statement, signature: sig, certDer: leaf.der, tlogEntries: [entry] });
}

async function bundleOutcome(o: Parameters<typeof keylessBundle>[1] = {}, ids = [ID], root = s.trustedRoot()) {
  const { reg, target } = image();
  pushBundleReferrer(reg, target, await keylessBundle(target.digest, o));
  return run(await prepareKeyless(ids, root), reg, target);
}

test('private Sigstore, bundle: PASS', async () => {
  const o = await bundleOutcome();
  assert.equal(o.status, 'verified', JSON.stringify(o));
  assert.equal(o.details.format, 'bundle');
  assert.equal((o.details.identity as { issuer: string }).issuer, 'https://issuer.test');
  assert.equal((o.details.rekor as { integratedTime: number }).integratedTime, T);
});

test('private Sigstore, bundle: several identity rules OR-ed (cosign v3 would refuse >1)', async () => {
  const o = await bundleOutcome({}, [{ issuer: 'x', subject: 'y' }, ID]);
  assert.equal(o.status, 'verified');
});

test('private Sigstore, bundle: identity, time window, SCT, Rekor and digest failures', async () => {
  assert.deepEqual(codes(await bundleOutcome({}, [{ issuer: ID.issuer, subject: '^other@example\\.com$' }])), ['identity-mismatch']);
  assert.deepEqual(codes(await bundleOutcome({ integratedTime: T + 3600 })), ['certificate-time-invalid']);
  assert.deepEqual(codes(await bundleOutcome({ leaf: { sct: 'bad' } })), ['sct-invalid']);
  assert.deepEqual(codes(await bundleOutcome({ leaf: { sct: 'none' } })), ['sct-missing']);
  assert.deepEqual(codes(await bundleOutcome({ rekor: other })), ['rekor-set-invalid']);
  assert.deepEqual(codes(await bundleOutcome({ statementDigest: `sha256:${'3'.repeat(64)}` })), ['digest-mismatch']);
  assert.deepEqual(codes(await bundleOutcome({ leaf: { signer: other.intermediateSigner } })), ['chain-invalid']);
});

test('containers/image dir-img-cosign-pki-valid: PASS with a trusted root of the PKI (no log, no CT)', async () => {
  // c/image verifies this with the PKI roots + intermediates and no Rekor. We express that as a
  // trusted_root.json with one CA (intermediate + root), no tlogs and no ctlogs, so the
  // certificate is checked at the verification time (it is valid until 2052).
  const fx = (f: string): string => vectorPath('cosign/containers/image/signature/fixtures', f);
  const der = (pemText: string): string[] =>
    [...pemText.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map((m) => m[1]!.replace(/\s+/g, ''));
  const root = JSON.stringify({
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [], ctlogs: [], timestampAuthorities: [],
    certificateAuthorities: [{
      subject: { organization: 'IT', commonName: 'Linuxera' },
      certChain: { certificates: [...der(readFileSync(fx('pki_intermediate_crts.pem'), 'utf8')), ...der(readFileSync(fx('pki_root_crts.pem'), 'utf8'))].map((rawBytes) => ({ rawBytes })) },
      validFor: { start: '2024-01-01T00:00:00Z' },
    }],
  });
  const { registry, target } = loadDirImg(fx('dir-img-cosign-pki-valid'));
  const ok = await run(await prepareKeyless([{ issuer: '^$', subject: '^qiwan@redhat\\.com$' }], root), registry, target);
  assert.equal(ok.status, 'verified', JSON.stringify(ok));
  assert.deepEqual((ok.details.identity as { subjects: string[] }).subjects, ['qiwan@redhat.com', 'myhost.example.com']);
  const dns = await run(await prepareKeyless([{ issuer: '^$', subject: '^myhost\\.example\\.com$' }], root), registry, target);
  assert.equal(dns.status, 'verified');
  const wrong = await run(await prepareKeyless([{ issuer: '^$', subject: '^someone@redhat\\.com$' }], root), registry, target);
  assert.deepEqual(codes(wrong), ['identity-mismatch']);
  // Against the public-good root the PKI is untrusted; public-good has a Rekor, so a missing SET is the first failure.
  const pg = await run(await prepareKeyless([{ issuer: '.*', subject: '.*' }]), registry, target);
  assert.deepEqual(codes(pg), ['tlog-missing']);
});
