// The complete signed OCI layouts of notation/test/e2e (INDEX §1) through the verifier, at every level
// and with the policies INDEX pairs them with. Expectations come from test/e2e/suite/trustpolicy/*.go.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { E2E as E2E_PATH, E2E_SUBJECT, KEY, LAYOUT as LAYOUT_DIR, policyWith, read, runLayout } from './fixtures.ts';
import type { VerificationOutcome } from '../../../src/verify/types.ts';

const e2eCrt = read(KEY('e2e.crt'));
const newE2eCrt = read(KEY('new_e2e.crt'));
const expiredCrt = read(KEY('expired_e2e.crt'));
const E2E_FP = 'e38aea13f2b051f7183cca64a51ee676f4d4456f41d9fecf15eb367efc7343b9';

function expectVerified(o: VerificationOutcome, ...words: string[]): void {
  assert.equal(o.status, 'verified', o.message);
  for (const w of words) assert.ok(o.message.includes(w) || JSON.stringify(o.details).includes(w) || o.warnings.some((x) => x.includes(w)), `missing "${w}" in ${o.message} / ${o.warnings.join(' | ')}`);
}
function expectFailed(o: VerificationOutcome, code: string, ...words: string[]): void {
  assert.equal(o.status, 'failed', o.message);
  if (o.status === 'failed') assert.equal(o.code, code, o.message);
  for (const w of words) assert.ok(o.message.includes(w), `missing "${w}" in: ${o.message}`);
}

describe('e2e-valid-signature', () => {
  for (const mode of ['api', 'tag'] as const) {
    for (const level of ['strict', 'permissive', 'audit']) {
      test(`${level} with ca:e2e = e2e.crt (${mode} discovery) → verified`, async () => {
        const o = await runLayout('e2e-valid-signature', policyWith(level), { 'ca.e2e.crt': e2eCrt }, { layout: { referrers: mode } });
        expectVerified(o, 'JWS', 'notary.x509', 'CN=e2e,O=Notary,L=Seattle,ST=WA,C=US', E2E_FP, "statement 'e2e'", '2023-06-27T05:30:33.000Z');
        assert.deepEqual(o.warnings, []);
        assert.equal(o.details.signature, 'sha256:90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f');
      });
    }
  }
  test('trustpolicy.json and any_registry_scope_trust_policy.json → verified', async () => {
    for (const p of ['trustpolicy.json', 'any_registry_scope_trust_policy.json']) {
      expectVerified(await runLayout('e2e-valid-signature', p, { 'ca.e2e.crt': e2eCrt }));
    }
  });
  test('store holds new_e2e.crt: strict and permissive fail authenticity', async () => {
    for (const p of ['trustpolicy.json', 'permissive_trustpolicy.json']) {
      const o = await runLayout('e2e-valid-signature', p, { 'ca.e2e.crt': newE2eCrt });
      expectFailed(o, 'authenticity', 'authenticity validation failed', "the signature's certificate chain does not contain any trusted certificate");
    }
  });
  test('store holds new_e2e.crt: audit verifies with the authenticity warning', async () => {
    const o = await runLayout('e2e-valid-signature', 'audit_trustpolicy.json', { 'ca.e2e.crt': newE2eCrt });
    expectVerified(o, 'authenticity NOT established');
    assert.ok(o.warnings.some((w) => w.includes("the signature's certificate chain does not contain any trusted certificate")), o.warnings.join());
  });
  test('override_strict (authenticity=log) with the wrong store → verified with warning', async () => {
    const o = await runLayout('e2e-valid-signature', 'override_strict_trustpolicy.json', { 'ca.e2e.crt': newE2eCrt });
    expectVerified(o);
    assert.ok(o.warnings.some((w) => w.includes('does not contain any trusted certificate')));
  });
  test('override_permissive (authenticity=log) with the wrong store → verified; override_audit (enforce) → failed', async () => {
    expectVerified(await runLayout('e2e-valid-signature', 'override_permissive_trustpolicy.json', { 'ca.e2e.crt': newE2eCrt }));
    expectFailed(await runLayout('e2e-valid-signature', 'override_audit_trustpolicy.json', { 'ca.e2e.crt': newE2eCrt }), 'authenticity');
  });
  test('valid_trusted_identity → verified; invalid_trusted_identity (C=USB) → failed', async () => {
    expectVerified(await runLayout('e2e-valid-signature', 'valid_trusted_identity_trustpolicy.json', { 'ca.e2e.crt': e2eCrt }));
    const o = await runLayout('e2e-valid-signature', 'invalid_trusted_identity_trustpolicy.json', { 'ca.e2e.crt': e2eCrt });
    expectFailed(o, 'trusted-identity', 'signing certificate from the digital signature does not match the X.509 trusted identities');
  });
  test('multiple_trusted_identity → verified (and the expired-cert artifact too, while its cert was valid)', async () => {
    expectVerified(await runLayout('e2e-valid-signature', 'multiple_trusted_identity_trustpolicy.json', { 'ca.e2e.crt': e2eCrt }));
    const o = await runLayout('e2e-with-expired-cert', 'multiple_trusted_identity_trustpolicy.json', { 'ca.e2e.crt': expiredCrt }, { now: new Date('2023-06-26T12:00:00Z') });
    expectVerified(o, 'O=Internet Widgits Pty Ltd,ST=Some-State,C=AU');
  });
  test('multiple_trust_store (ca:e2e, ca:e2e-new) → verified via either store', async () => {
    const o = await runLayout('e2e-valid-signature', 'multiple_trust_store_trustpolicy.json', { 'ca.e2e.crt': newE2eCrt, 'ca.e2e-new.crt': e2eCrt });
    expectVerified(o, E2E_FP);
    assert.equal((o.details.trustedCertificate as { secretKey: string }).secretKey, 'ca.e2e-new.crt');
  });
  test('overlapped_trust_store (ca:e2e twice) → verified (stores de-duplicated)', async () => {
    expectVerified(await runLayout('e2e-valid-signature', 'overlapped_trust_store_trustpolicy.json', { 'ca.e2e.crt': e2eCrt }));
  });
  test('invalid_trust_store (ca:invalid_store) → authenticity fails at verification time', async () => {
    const o = await runLayout('e2e-valid-signature', 'invalid_trust_store_trustpolicy.json', { 'ca.e2e.crt': e2eCrt });
    expectFailed(o, 'authenticity', 'the trust store "invalid_store" of type "ca" does not exist');
  });
  test('a key not named for a store is trusted for every store (and says so)', async () => {
    const o = await runLayout('e2e-valid-signature', 'invalid_trust_store_trustpolicy.json', { 'e2e.crt': e2eCrt });
    expectVerified(o, "key 'e2e.crt'", 'trusted for every trust store');
  });
  test('timestamp_trustpolicy (tsa:e2e, verifyTimestamp always) → no timestamp countersignature', async () => {
    const o = await runLayout('e2e-valid-signature', 'timestamp_trustpolicy.json', { 'ca.e2e.crt': e2eCrt, 'tsa.e2e.crt': read(E2E_PATH('config', 'timestamp', 'globalsignTSARoot.cer')) });
    expectFailed(o, 'authentic-timestamp', 'no timestamp countersignature was found in the signature envelope');
  });
  test('timestamp_after_cert_expiry_trustpolicy → verified (the e2e cert has not expired, so no timestamp needed)', async () => {
    const o = await runLayout('e2e-valid-signature', 'timestamp_after_cert_expiry_trustpolicy.json', { 'ca.e2e.crt': e2eCrt, 'tsa.e2e.crt': read(E2E_PATH('config', 'timestamp', 'DigiCertTSARootSHA384.cer')) });
    expectVerified(o);
  });
  test('the payload must name the resolved descriptor', async () => {
    const o = await runLayout('e2e-valid-signature', 'trustpolicy.json', { 'ca.e2e.crt': e2eCrt }, { target: { ...E2E_SUBJECT, mediaType: 'application/vnd.docker.distribution.manifest.v2+json' } });
    // The subject lookup uses the digest, so the signature is found, but the signed descriptor differs.
    expectFailed(o, 'target-mismatch', 'content descriptor mismatch');
  });
});

describe('registry scopes (registry_scope.go, multi_statements.go)', () => {
  const certs = { 'ca.e2e.crt': e2eCrt };
  test('registry_scope_trustpolicy: exact repository matches, others have no statement', async () => {
    expectVerified(await runLayout('e2e-valid-signature', 'registry_scope_trustpolicy.json', certs, { layout: { repository: 'test-repo' } }));
    const o = await runLayout('e2e-valid-signature', 'registry_scope_trustpolicy.json', certs, { layout: { repository: 'other-repo' } });
    expectFailed(o, 'no-policy', 'artifact "localhost:5000/other-repo@sha256:b8479de3', 'has no applicable oci trust policy statement. Trust policy applicability for a given artifact is determined by registryScopes');
  });
  test('multiple_registry_scope_trustpolicy: both repositories verify', async () => {
    for (const repo of ['test-repo2', 'test-repo3']) {
      expectVerified(await runLayout('e2e-valid-signature', 'multiple_registry_scope_trustpolicy.json', certs, { layout: { repository: repo } }));
    }
  });
  test('invalid_registry_scope_trustpolicy → no applicable statement', async () => {
    const o = await runLayout('e2e-valid-signature', 'invalid_registry_scope_trustpolicy.json', certs, { layout: { repository: 'test-repo' } });
    expectFailed(o, 'no-policy', 'has no applicable oci trust policy statement');
  });
  test('multi_statements_with_wildcard: the exact scope wins over *', async () => {
    const exact = await runLayout('e2e-valid-signature', 'multi_statements_with_wildcard_registry_scope_trustpolicy.json', certs, { layout: { repository: 'test-repo9' } });
    expectVerified(exact);
    assert.equal(exact.details.policyStatement, 'e2e');
    const wild = await runLayout('e2e-valid-signature', 'multi_statements_with_wildcard_registry_scope_trustpolicy.json', certs, { layout: { repository: 'elsewhere' } });
    assert.equal(wild.details.policyStatement, 'e2e2');
  });
});

describe('e2e-expired-signature (expiry 2023-06-27T13:21:21+08:00)', () => {
  const certs = { 'ca.e2e.crt': e2eCrt };
  test('strict → expiry failure', async () => {
    const o = await runLayout('e2e-expired-signature', 'trustpolicy.json', certs);
    expectFailed(o, 'expiry', 'expiry validation failed', 'digital signature has expired on "Tue, 27 Jun 2023 05:21:21 +0000"');
  });
  test('permissive and audit → verified with the expiry logged', async () => {
    for (const p of ['permissive_trustpolicy.json', 'audit_trustpolicy.json']) {
      const o = await runLayout('e2e-expired-signature', p, certs);
      expectVerified(o);
      assert.ok(o.warnings.some((w) => w.startsWith('expiry validation failed') && w.includes('digital signature has expired')), o.warnings.join());
    }
  });
  test('override_strict (expiry=log) → verified; override_permissive / override_audit (expiry=enforce) → failed', async () => {
    expectVerified(await runLayout('e2e-expired-signature', 'override_strict_trustpolicy.json', certs));
    expectFailed(await runLayout('e2e-expired-signature', 'override_permissive_trustpolicy.json', certs), 'expiry');
    expectFailed(await runLayout('e2e-expired-signature', 'override_audit_trustpolicy.json', certs), 'expiry');
  });
  test('before the expiry it verifies at strict', async () => {
    expectVerified(await runLayout('e2e-expired-signature', 'trustpolicy.json', certs, { now: new Date('2023-06-27T05:00:00Z') }));
  });
});

describe('e2e-with-expired-cert (cert valid 2023-06-26T06:10Z..2023-06-27T06:10Z, no timestamp)', () => {
  const certs = { 'ca.e2e.crt': expiredCrt };
  const msg = 'verification time is after certificate "O=Internet Widgits Pty Ltd,ST=Some-State,C=AU" validity period, it was expired at "Tue, 27 Jun 2023 06:10:00 +0000"';
  test('strict → authenticTimestamp failure', async () => {
    const o = await runLayout('e2e-with-expired-cert', 'trustpolicy.json', certs);
    expectFailed(o, 'authentic-timestamp', 'authenticTimestamp validation failed', msg);
  });
  test('permissive and audit → verified with the failure logged', async () => {
    for (const p of ['permissive_trustpolicy.json', 'audit_trustpolicy.json']) {
      const o = await runLayout('e2e-with-expired-cert', p, certs);
      expectVerified(o);
      assert.ok(o.warnings.some((w) => w.includes(msg)), o.warnings.join());
    }
  });
  test('override_strict (authenticTimestamp=log) → verified', async () => {
    expectVerified(await runLayout('e2e-with-expired-cert', 'override_strict_trustpolicy.json', certs));
  });
});

describe('e2e-invalid-signature (layer is a tar, "invalid signature\\n")', () => {
  test('strict, permissive, audit → integrity failure', async () => {
    for (const p of ['trustpolicy.json', 'permissive_trustpolicy.json', 'audit_trustpolicy.json']) {
      const o = await runLayout('e2e-invalid-signature', p, { 'ca.e2e.crt': e2eCrt });
      expectFailed(o, 'envelope-invalid', 'integrity validation failed', 'signature envelope format with media type "application/vnd.oci.image.layer.v1.tar" is not supported');
    }
  });
  test('skip → skipped by the statement, no signature fetched', async () => {
    const o = await runLayout('e2e-invalid-signature', 'skip_trustpolicy.json', {});
    assert.equal(o.status, 'skipped');
    assert.match(o.message, /skipped by trust policy statement 'e2e'/);
    assert.deepEqual(o.attempts, []);
  });
});

describe('e2e-valid-multiple-signatures', () => {
  test('one good signature among two → verified with the e2e one', async () => {
    const o = await runLayout('e2e-valid-multiple-signatures', 'trustpolicy.json', { 'ca.e2e.crt': e2eCrt });
    expectVerified(o, E2E_FP);
    assert.equal(o.details.signature, 'sha256:90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f');
  });
  test('wrong store → every signature listed with its first failed check', async () => {
    const o = await runLayout('e2e-valid-multiple-signatures', 'trustpolicy.json', { 'ca.e2e.crt': newE2eCrt });
    expectFailed(o, 'authenticity', 'none of 2 signatures passed', 'sha256:90ceaff2', 'sha256:c3ebe4a2');
    assert.equal(o.attempts.length, 2);
  });
  test('maxSignatures=1 stops after the first and says so', async () => {
    const o = await runLayout('e2e-valid-multiple-signatures', 'trustpolicy.json', { 'ca.e2e.crt': newE2eCrt }, { limits: { maxSignatures: 1 } });
    expectFailed(o, 'authenticity', 'The configured limit of 1 signatures to verify per artifact exceeded');
    assert.equal(o.attempts.length, 1);
  });
  test('tag-schema discovery lists only the signature in the sha256-<hex> index', async () => {
    const o = await runLayout('e2e-valid-multiple-signatures', 'trustpolicy.json', { 'ca.e2e.crt': newE2eCrt }, { layout: { referrers: 'tag' } });
    expectFailed(o, 'authenticity');
    assert.equal(o.attempts.length, 1);
  });
});

describe('e2e (unsigned)', () => {
  test('no signatures', async () => {
    for (const mode of ['api', 'tag'] as const) {
      const o = await runLayout('e2e', 'trustpolicy.json', { 'ca.e2e.crt': e2eCrt }, { layout: { referrers: mode } });
      expectFailed(o, 'no-signatures', 'no signature is associated with "localhost:5000/e2e@sha256:b8479de3', 'make sure the artifact was signed successfully');
    }
  });
});

// The timestamped layouts sign a different subject, and their testcert7 is not in any vector file: take
// it from the envelope itself (x5c[0]). The Microsoft TSA root is not among the vectors (INDEX §1).
describe('e2e-with-timestamped-signature / e2e-with-invalid-timestamped-signature', () => {
  const subject = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: 'sha256:53b0191218aed9a3c1f7c661736ac40cfc8eb928642348fd843ba3f0483c0c20', size: 582 };
  const invalidSubject = { ...subject, digest: 'sha256:f1da8cd70d6d851fa2313c8d6618f79508cf1e86877edf1c0bfe49a1b0a6467a' };
  const envelopeCert = (layout: string, blob: string) => {
    const env = JSON.parse(read(`${LAYOUT_DIR(layout)}/blobs/sha256/${blob}`).toString()) as { header: { x5c: string[] } };
    return Buffer.from(`-----BEGIN CERTIFICATE-----\n${env.header.x5c[0]}\n-----END CERTIFICATE-----\n`);
  };
  const now = new Date('2025-01-21T10:00:00Z');
  test('without a tsa store the signature verifies while its cert and expiry are valid', async () => {
    const cert = envelopeCert('e2e-with-timestamped-signature', '603ff134e97a79cd7a15560b76137c2c4a10451daab11327a7c6f86dac250fee');
    const o = await runLayout('e2e-with-timestamped-signature', 'trustpolicy.json', { 'ca.e2e.crt': cert }, { target: subject, now });
    expectVerified(o, '1717fa9d18f7e9c0f609499474adfe2b8e44172454f1d6e2183d5d04f79af475', 'CN=testcert7');
    // and today its expiry (2025-01-21T12:39:46Z) has passed
    expectFailed(await runLayout('e2e-with-timestamped-signature', 'trustpolicy.json', { 'ca.e2e.crt': cert }, { target: subject }), 'expiry');
  });
  test('with a tsa store lacking the Microsoft root → timestamp not trusted', async () => {
    const cert = envelopeCert('e2e-with-timestamped-signature', '603ff134e97a79cd7a15560b76137c2c4a10451daab11327a7c6f86dac250fee');
    const tsa = read(E2E_PATH('config', 'timestamp', 'globalsignTSARoot.cer'));
    const o = await runLayout('e2e-with-timestamped-signature', 'timestamp_trustpolicy.json', { 'ca.e2e.crt': cert, 'tsa.e2e.pem': tsa }, { target: subject, now });
    expectFailed(o, 'authentic-timestamp', 'failed to verify the timestamp countersignature', 'certificate signed by unknown authority');
  });
  test('invalid token ("invalid\\n") with a tsa store → parse failure; without one → verified', async () => {
    const cert = envelopeCert('e2e-with-invalid-timestamped-signature', '8d2e70ffc2af68b7f2df6f30dfefcb7bcda1db5f9ac2566fc8c6c2248c8d4c5f');
    const tsa = read(E2E_PATH('config', 'timestamp', 'globalsignTSARoot.cer'));
    const o = await runLayout('e2e-with-invalid-timestamped-signature', 'timestamp_trustpolicy.json', { 'ca.e2e.crt': cert, 'tsa.e2e.pem': tsa }, { target: invalidSubject, now });
    expectFailed(o, 'authentic-timestamp', 'failed to parse timestamp countersignature');
    expectVerified(await runLayout('e2e-with-invalid-timestamped-signature', 'trustpolicy.json', { 'ca.e2e.crt': cert }, { target: invalidSubject, now }));
  });
});
