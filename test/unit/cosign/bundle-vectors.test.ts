// cosign v3 OCI bundle vector (INDEX.md §2), sigstore-go (§4) and sigstore-js (§5) bundles.
//
// Not applicable:
// - sigstore-go public-key-validity.sigstore.json: tests a validity window attached to a managed
//   key in the trusted root; our keys come from a Secret and carry no validity window.
// - sigstore-go othername.sigstore.json as a signature: a messageSignature over an artifact we only
//   have the digest of (@sigstore/verify needs the bytes); its certificate is used below for the
//   OtherName SAN and issuer extraction instead.
// - sigstore-js tests/bundles/*: signed by sigstore-js's mock instance whose trusted root is not in
//   the vectors; used for parsing and version gating only.
// - kyverno and Flux e2e files: need ghcr.io (network) and Secrets not in the repo.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { vectorPath } from '../../helpers/shared.ts';
import { MemoryRegistry, pushBundleReferrer } from '../../helpers/cosign-registry.ts';
import { codes, prepareKeyless, readText, run } from '../../helpers/cosign-verify.ts';
import { isV03OrLater, parseBundle, verifyOciBundle, verifySigstoreBundle } from '../../../src/verify/cosign/bundle.ts';
import { VerificationError } from '../../../src/verify/errors.ts';
import { DefaultLimits } from '../../../src/api/limits.ts';
import { parseCertificate } from '../../../src/verify/x509/certs.ts';
import { certIdentity, compileRules } from '../../../src/verify/cosign/identity.ts';
import { parseTrustedRoot } from '../../../src/verify/cosign/trustroot.ts';
import type { Descriptor } from '../../../src/oci/types.ts';

const cosignData = (f: string): string => vectorPath('cosign/sigstore/cosign/pkg/cosign/testdata', f);
const SUBJECT = 'sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4';
const CODY = { issuer: '^https://github\\.com/login/oauth$', subject: '^cody@soyland\\.com$' };

/** The verifier never fetches the target manifest: a descriptor with the signed digest suffices. */
function target(digest = SUBJECT): Descriptor {
  return { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 1234 };
}

function ociAttestationRegistry(subject: Descriptor = target()): MemoryRegistry {
  const reg = new MemoryRegistry();
  pushBundleReferrer(reg, subject, readFileSync(cosignData('oci-attestation.sigstore.json')));
  return reg;
}

test('cosign oci-attestation.sigstore.json: PASS as an OCI referrer with trusted_root_pgi.json', async () => {
  const v = await prepareKeyless([CODY], readText(cosignData('trusted_root_pgi.json')));
  const o = await run(v, ociAttestationRegistry(), target());
  assert.equal(o.status, 'verified', JSON.stringify(o));
  assert.equal(o.details.format, 'bundle');
  assert.equal(o.details.predicateType, 'https://cosign.sigstore.dev/attestation/v1');
  const id = o.details.identity as { issuer: string; subjects: string[] };
  assert.equal(id.issuer, 'https://github.com/login/oauth');
  assert.deepEqual(id.subjects, ['cody@soyland.com']);
  assert.match(o.message, /Sigstore bundle/);
  assert.match(o.message, /Rekor log index \d+/);
});

test('cosign oci-attestation.sigstore.json: PASS with the embedded public-good root too', async () => {
  const o = await run(await prepareKeyless([CODY]), ociAttestationRegistry(), target());
  assert.equal(o.status, 'verified', JSON.stringify(o));
});

test('cosign oci-attestation.sigstore.json: wrong subject regexp → identity-mismatch', async () => {
  const v = await prepareKeyless([{ issuer: CODY.issuer, subject: '^someone@else\\.com$' }], readText(cosignData('trusted_root_pgi.json')));
  const o = await run(v, ociAttestationRegistry(), target());
  assert.equal(o.status, 'failed');
  assert.deepEqual(codes(o), ['identity-mismatch']);
});

test('cosign oci-attestation.sigstore.json: attached to another image digest → digest-mismatch', async () => {
  const other = target(`sha256:${'ab'.repeat(32)}`);
  const v = await prepareKeyless([CODY], readText(cosignData('trusted_root_pgi.json')));
  const o = await run(v, ociAttestationRegistry(other), other);
  assert.equal(o.status, 'failed');
  assert.deepEqual(codes(o), ['digest-mismatch']);
});

test('cosign oci-attestation.sigstore.json: a referrer whose subject is another digest is rejected', async () => {
  // A referrers tag index can list a manifest whose subject is another image.
  const reg = new MemoryRegistry();
  const ref = pushBundleReferrer(reg, target(`sha256:${'cd'.repeat(32)}`), readFileSync(cosignData('oci-attestation.sigstore.json')));
  reg.referrers = async () => [{ ...ref, artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json' }];
  const o = await run(await prepareKeyless([CODY]), reg, target());
  assert.deepEqual(codes(o), ['digest-mismatch']);
});

test('sigstore-go dsse-2sigs.sigstore.json: FAIL (two DSSE signatures)', () => {
  const b = vectorPath('cosign/sigstore/sigstore-go/pkg/testing/data/bundles/dsse-2sigs.sigstore.json');
  const root = parseTrustedRoot(readFileSync(vectorPath('cosign/sigstore/sigstore-go/pkg/testing/data/trusted-roots/public-good.json')), 'pg');
  assert.throws(
    () => verifySigstoreBundle(parseBundle(readFileSync(b), DefaultLimits), { trust: root, mode: { kind: 'keyless', rules: compileRules([{ issuer: '.*', subject: '.*' }]) }, limits: DefaultLimits }),
    (e: unknown) => e instanceof VerificationError && e.code === 'malformed',
  );
});

const GHA = { issuer: '^https://token\\.actions\\.githubusercontent\\.com$', subject: '^https://github\\.com/' };
for (const [f, rule] of [
  ['pkg/testing/data/bundles/dsse.sigstore.json', { issuer: '^https://github\\.com/login/oauth$', subject: '^brian@dehamer\\.com$' }],
  ['pkg/testing/data/bundles/sigstore.js@2.0.0-provenance.sigstore.json', GHA],
  ['examples/bundle-provenance.json', GHA],
] as const) {
  test(`sigstore-go ${f}: PASS with public-good.json`, () => {
    const root = parseTrustedRoot(readFileSync(vectorPath('cosign/sigstore/sigstore-go/pkg/testing/data/trusted-roots/public-good.json')), 'pg');
    const bundle = parseBundle(readFileSync(vectorPath('cosign/sigstore/sigstore-go', f)), DefaultLimits);
    const res = verifySigstoreBundle(bundle, {
      trust: root,
      mode: { kind: 'keyless', rules: compileRules([rule]) },
      limits: DefaultLimits,
    });
    assert.equal(res.format, 'bundle');
    assert.ok(res.tlog && res.tlog.logIndex > 0);
    // These are npm provenance bundles (v0.1/v0.2): not acceptable as cosign OCI bundles.
    assert.equal(isV03OrLater(bundle), false);
    assert.throws(() => verifyOciBundle(readFileSync(vectorPath('cosign/sigstore/sigstore-go', f)), SUBJECT, { trust: root, mode: { kind: 'keyless', rules: [] }, limits: DefaultLimits, now: new Date() }),
      (e: unknown) => e instanceof VerificationError && e.code === 'unsupported');
  });
}

test('sigstore-go othername.sigstore.json: OtherName SAN and .1.8 issuer are extracted', () => {
  const j = JSON.parse(readFileSync(vectorPath('cosign/sigstore/sigstore-go/pkg/testing/data/bundles/othername.sigstore.json'), 'utf8')) as {
    verificationMaterial: { certificate: { rawBytes: string } };
  };
  const cert = parseCertificate(Buffer.from(j.verificationMaterial.certificate.rawBytes, 'base64'));
  const id = certIdentity(cert);
  assert.deepEqual(id.sans, ['foo!oidc.local']);
  assert.equal(id.issuer, 'http://oidc.local:8080');
});

test('sigstore-js bundles parse; only v0.3 ones qualify for OCI', () => {
  const dir = (f: string): string => vectorPath('cosign/sigstore/sigstore-js/tests/bundles', f);
  assert.equal(isV03OrLater(parseBundle(readFileSync(dir('bundleV03-dsse.sigstore')), DefaultLimits)), true);
  assert.equal(isV03OrLater(parseBundle(readFileSync(dir('bundleV03-intoto.sigstore')), DefaultLimits)), true);
  assert.equal(isV03OrLater(parseBundle(readFileSync(dir('bundleV02-dsse.sigstore')), DefaultLimits)), false);
  assert.equal(isV03OrLater(parseBundle(readFileSync(dir('bundleV01-dsse-with-proof.sigstore')), DefaultLimits)), false);
});
