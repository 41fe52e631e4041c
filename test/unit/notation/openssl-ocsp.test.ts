// OCSP revocation against a real `openssl ocsp` responder on 127.0.0.1: good, revoked and unknown, per level.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { issue, opensslOCSP, pem, pushSignature, signJWS, type Issued, type OCSPResponder } from '../../helpers/notation-sign.ts';
import { OCILayoutReader } from '../../helpers/oci-layout.ts';
import { prepareNotation } from '../../../src/verify/notation/index.ts';
import { RevocationCache } from '../../../src/verify/x509/revocation.ts';

const policy = (level: string) =>
  JSON.stringify({ version: '1.0', trustPolicies: [{ name: 'ocsp', registryScopes: ['*'], signatureVerification: { level }, trustStores: ['ca:acme'], trustedIdentities: ['*'] }] });

describe('OCSP with openssl ocsp', () => {
  let root: Issued;
  let responder: OCSPResponder;
  let good: Issued;
  let revoked: Issued;
  let unknown: Issued;
  before(async () => {
    root = await issue({ subject: 'CN=OCSP Root,O=Acme,ST=WA,C=US', ca: true });
    // the responder URL must be known when issuing: reserve it first, then issue, then start with the index
    const placeholder = await opensslOCSP(root, {});
    placeholder.stop();
    const url = placeholder.url;
    good = await issue({ subject: 'CN=good,O=Acme,ST=WA,C=US', issuer: root, ocspUrl: url });
    revoked = await issue({ subject: 'CN=revoked,O=Acme,ST=WA,C=US', issuer: root, ocspUrl: url });
    unknown = await issue({ subject: 'CN=unknown,O=Acme,ST=WA,C=US', issuer: root, ocspUrl: url });
    responder = await opensslOCSP(root, { good: [good], revoked: [revoked] }, Number(new URL(url).port));
  });
  after(() => responder?.stop());

  async function run(leaf: Issued, level = 'strict') {
    const reader = new OCILayoutReader({ schemaVersion: 2, manifests: [] }, new Map());
    const config = reader.put('application/vnd.oci.image.config.v1+json', Buffer.from('{}'));
    const subject = reader.putManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [] });
    pushSignature(reader, subject, await signJWS({ target: subject, chain: [leaf, root], alg: 'ES256' }), 'application/jose+json');
    const p = prepareNotation({ provider: 'notation', secret: { name: 'ns/s', data: { 'trustpolicy.json': Buffer.from(policy(level)), 'ca.acme.pem': pem(root) } } }, { revocationCache: new RevocationCache() });
    return p.verify({ registry: reader, descriptor: subject }, { limits: { maxSignatures: 3 } });
  }
  test('good → verified via OCSP', async () => {
    const o = await run(good);
    assert.equal(o.status, 'verified', o.message);
    assert.deepEqual((o.details.revocation as { method: string; status: string }[])[0], { subject: 'CN=good,O=Acme,ST=WA,C=US', status: 'ok', method: 'ocsp' });
  });
  test('revoked → strict fails, permissive logs', async () => {
    const s = await run(revoked);
    assert.equal(s.status === 'failed' && s.code, 'revocation', s.message);
    assert.match(s.message, /certificate with subject "CN=revoked,O=Acme,ST=WA,C=US" is revoked/);
    const p = await run(revoked, 'permissive');
    assert.equal(p.status, 'verified');
    assert.ok(p.warnings.some((w) => w.includes('is revoked')));
  });
  test('unknown (not in the responder index, no CRL) → strict fails: status unknown', async () => {
    const s = await run(unknown);
    assert.equal(s.status === 'failed' && s.code, 'revocation', s.message);
    assert.match(s.message, /CN=unknown,O=Acme,ST=WA,C=US" is unknown: revocation could not be checked \(OCSP .*does not know the certificate\)/);
    assert.equal((await run(unknown, 'audit')).status, 'verified');
  });
});
