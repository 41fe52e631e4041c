// Stand-alone envelopes (INDEX §3, §4, §5) and trust-store fixtures (§3e), verified with verifySignature.
//
// Not applicable here (listed for completeness):
// - ca_compatible_pluginver_sig_env_*.json: need the mock verification plugin "io.cncf.notary.plugin.unittest.mock"; we run no plugins, so
//   every signature that requires a plugin (critical io.cncf.notary.verificationPlugin) fails with code plugin-required (asserted below).
// - sig_env_with_metadata.json user-metadata checks: Flux (and this controller) pass no user metadata; the envelope is verified without it.
// - truststore *_SYMLINK* files and trust-store-with-directories/: symlinks and sub-directories cannot exist among Secret keys.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { E2E, NGO, offlineFetch, read } from './fixtures.ts';
import { vectorPath } from '../../helpers/shared.ts';
import { OCILayoutReader } from '../../helpers/oci-layout.ts';
import { loadTrustStores } from '../../../src/verify/notation/truststore.ts';
import { checkTrustedIdentities, verifySignature, type SignatureResult } from '../../../src/verify/notation/verifier.ts';
import { getVerificationLevel, type TrustPolicyStatement } from '../../../src/verify/notation/trustpolicy.ts';
import { decodeCbor, CborTag, verifyCOSEEnvelope } from '../../../src/verify/notation/cose.ts';
import { verifyJWSEnvelope } from '../../../src/verify/notation/jws.ts';
import { DefaultLimits } from '../../../src/api/limits.ts';

const parseJWS = (b: Buffer) => verifyJWSEnvelope(b, DefaultLimits);
const parseCOSE = (b: Buffer) => verifyCOSEEnvelope(b, DefaultLimits);
import { prepareNotation } from '../../../src/verify/notation/index.ts';
import { parseCertificates } from '../../../src/verify/x509/certs.ts';
import { VerifyConfigError } from '../../../src/verify/types.ts';
import type { Descriptor } from '../../../src/oci/types.ts';

const TS = (...p: string[]) => NGO('verifier', 'testdata', 'truststore', 'x509', ...p);
const pemOf = (files: (string | Buffer)[]) => Buffer.concat(files.map((f) => (typeof f === 'string' ? read(f) : f)).map((b) => (b.includes('-----BEGIN') ? b : Buffer.from(`-----BEGIN CERTIFICATE-----\n${b.toString('base64')}\n-----END CERTIFICATE-----\n`))));
const VALID_STORE = ['GlobalSignRootCA.crt', 'NotationTestRoot.pem', 'TestTimestamp.crt', 'TestTimestampNotYetValid.crt', 'wabbit-networks.io.crt'].map((f) => TS('ca', 'valid-trust-store', f));

function stores(extra: Record<string, Buffer> = {}) {
  return loadTrustStores('default/notation', {
    'ca.valid-trust-store.pem': pemOf(VALID_STORE),
    'ca.valid-trust-store.crt': read(TS('ca', 'valid-trust-store', 'GlobalSign.der')), // DER is accepted
    'ca.valid-trust-store-2.pem': read(TS('ca', 'valid-trust-store-2', 'GlobalSignRootCA.crt')),
    'signingAuthority.valid-trust-store.pem': pemOf(['GlobalSignRootCA.crt', 'NotationTestRoot.pem'].map((f) => TS('signingAuthority', 'valid-trust-store', f))),
    'signingAuthority.valid-trust-store-2.pem': read(TS('signingAuthority', 'valid-trust-store-2', 'GlobalSignRootCA.crt')),
    'tsa.test-timestamp.pem': read(TS('tsa', 'test-timestamp', 'globalsignRoot.cer')),
    'tsa.test-mismatch.pem': read(TS('tsa', 'test-mismatch', 'DigiCertTSARootSHA384.cer')),
    ...extra,
  });
}

function statement(p: Partial<TrustPolicyStatement> & { level?: string; override?: Record<string, string>; verifyTimestamp?: string } = {}): TrustPolicyStatement {
  return {
    name: 'test-statement-name',
    registryScopes: ['*'],
    signatureVerification: { level: p.level ?? 'strict', ...(p.override ? { override: p.override } : {}), ...(p.verifyTimestamp ? { verifyTimestamp: p.verifyTimestamp } : {}) },
    trustStores: p.trustStores ?? ['ca:valid-trust-store', 'signingAuthority:valid-trust-store'],
    trustedIdentities: p.trustedIdentities ?? ['x509.subject:CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US'],
  };
}

async function check(envelope: Buffer, mediaType: string, target: Descriptor, st: TrustPolicyStatement, now?: Date, extraStores: Record<string, Buffer> = {}): Promise<SignatureResult> {
  return verifySignature(
    { ctx: { stores: stores(extraStores), fetch: offlineFetch }, target, statement: st, level: getVerificationLevel(st.signatureVerification), now: now ?? new Date(), limits: DefaultLimits },
    mediaType,
    envelope,
  );
}

function ok(r: SignatureResult): void {
  assert.equal(r.failure, undefined, r.failure?.message);
}
function fails(r: SignatureResult, code: string, ...words: string[]): void {
  assert.ok(r.failure, 'expected a failure');
  assert.equal(r.failure.code, code, r.failure.message);
  for (const w of words) assert.ok(r.failure.message.includes(w), `missing "${w}" in ${r.failure.message}`);
}

const JWS = 'application/jose+json';
const COSE = 'application/cose';

describe('notation-go internal/mock envelopes (verifier_test.go)', () => {
  const M = (f: string) => read(NGO('internal', 'mock', 'testdata', f));
  const target: Descriptor = { mediaType: 'application/vnd.docker.distribution.manifest.v2+json', digest: 'sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e', size: 528 };
  for (const prefix of ['ca', 'sa']) {
    for (const level of ['strict', 'permissive', 'audit']) {
      test(`${prefix}_valid_sig_env.json at ${level} → verified`, async () => {
        const r = await check(M(`${prefix}_valid_sig_env.json`), JWS, target, statement({ level }));
        ok(r);
        assert.equal(r.details.signingScheme, prefix === 'ca' ? 'notary.x509' : 'notary.x509.signingAuthority');
        assert.equal((r.details.trustedCertificate as { sha256: string }).sha256.slice(0, 8), '86df8041');
      });
      test(`${prefix}_invalid_sig_env.json at ${level} → integrity`, async () => {
        fails(await check(M(`${prefix}_invalid_sig_env.json`), JWS, target, statement({ level })), 'integrity', 'illegal base64 data at input byte 242');
      });
    }
    test(`${prefix}_expired_sig_env.json: strict fails expiry; permissive/audit log it`, async () => {
      fails(await check(M(`${prefix}_expired_sig_env.json`), JWS, target, statement()), 'expiry', 'digital signature has expired on "Fri, 29 Jul 2022 23:59:00 +0000"');
      for (const level of ['permissive', 'audit']) {
        const r = await check(M(`${prefix}_expired_sig_env.json`), JWS, target, statement({ level }));
        ok(r);
        assert.ok(r.warnings.some((w) => w.code === 'expiry'));
      }
    });
    test(`${prefix}_valid with valid-trust-store-2 → authenticity`, async () => {
      const st = statement({ trustStores: ['ca:valid-trust-store-2', 'signingAuthority:valid-trust-store-2'] });
      fails(await check(M(`${prefix}_valid_sig_env.json`), JWS, target, st), 'authenticity', "the signature's certificate chain does not contain any trusted certificate");
    });
    test(`${prefix}_valid with identity CN=LOL… → trusted-identity; "x509.subject" without colon → missing separator`, async () => {
      const st = statement({ trustedIdentities: ['x509.subject:CN=LOL,O=DummyOrg,L=Hyderabad,ST=TG,C=IN'] });
      fails(await check(M(`${prefix}_valid_sig_env.json`), JWS, target, st), 'trusted-identity', 'does not match the X.509 trusted identities');
      fails(await check(M(`${prefix}_valid_sig_env.json`), JWS, target, statement({ trustedIdentities: ['x509.subject'] })), 'trusted-identity', 'missing separator');
    });
    test(`${prefix}_plugin_sig_env.json → plugin required (no plugins here)`, async () => {
      fails(await check(M(`${prefix}_plugin_sig_env.json`), JWS, target, statement()), 'plugin-required', 'plugin-name');
    });
  }
  test('plugin min-version envelopes all need the plugin', async () => {
    for (const v of ['0.0.9', '1.0.0-alpha.beta', '1.0.0-alpha', '1.0.0']) {
      const r = await check(M(`ca_compatible_pluginver_sig_env_${v}.json`), JWS, target, statement());
      fails(r, 'plugin-required', 'io.cncf.notary.plugin.unittest.mock');
    }
    for (const v of ['1.0.1', '1.0.9', '1.1.0-alpha', '1.2.3']) {
      fails(await check(M(`ca_incompatible_pluginver_sig_env_${v}.json`), JWS, target, statement()), 'plugin-required', `minimum version ${v}`);
    }
  });
  test('sig_env_with_metadata.json: cert valid 2023-01-11..12 → strict fails authenticTimestamp today, verifies then; audit logs it', async () => {
    const env = M('sig_env_with_metadata.json');
    const payload = JSON.parse(Buffer.from((JSON.parse(env.toString()) as { payload: string }).payload, 'base64url').toString()) as { targetArtifact: Descriptor };
    const t = { mediaType: payload.targetArtifact.mediaType, digest: payload.targetArtifact.digest, size: payload.targetArtifact.size };
    // Its signing cert is not among the trust-store fixtures: trust it directly.
    const st = (level: string) => statement({ level, trustStores: ['ca:meta'], trustedIdentities: ['*'] });
    const own = { 'ca.meta.crt': parseJWS(env).certs[0]!.der };
    fails(await check(env, JWS, t, st('strict'), undefined, own), 'authentic-timestamp', 'verification time is after certificate "CN=wabbit-networks.io');
    ok(await check(env, JWS, t, st('strict'), new Date('2023-01-11T20:00:00Z'), own));
    const a = await check(env, JWS, t, st('audit'), undefined, own);
    ok(a);
    assert.ok(a.warnings.some((w) => w.code === 'authentic-timestamp'));
  });
});

describe('notation-go timestamp envelopes (timestamp_test.go)', () => {
  const S = (f: string) => read(NGO('verifier', 'testdata', 'timestamp', 'sigEnv', f));
  const target: Descriptor = { mediaType: 'application/vnd.docker.distribution.manifest.v2+json', digest: 'sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda', size: 528 };
  const st = (p: Partial<Parameters<typeof statement>[0]> = {}) => statement({ trustStores: ['ca:valid-trust-store', 'tsa:test-timestamp'], trustedIdentities: ['*'], verifyTimestamp: 'always', ...p });
  const cases: [string, string, string][] = [
    ['jwsWithTimestamp.sig', JWS, '2024-06-18T06:29:3'],
    ['coseWithTimestamp.sig', COSE, '2024-06-18T06:27:1'],
    ['jwsExpiredWithTimestamp.sig', JWS, '2024-06-18T07:21:4'],
    ['coseExpiredWithTimestamp.sig', COSE, '2024-06-18T07:21:1'],
  ];
  for (const [f, mt, gen] of cases) {
    test(`${f}: timestamp verifies against GlobalSign R6; offline, the TSA chain revocation is unknown → strict fails, logged → verified`, async () => {
      // Upstream reaches GlobalSign's OCSP/CRL; tests are offline, so the level decides (INDEX §3a).
      // The expired testTSA signer is not among the store fixtures: add the envelope's own leaf.
      const own = { 'ca.valid-trust-store.pem': pemOf([...VALID_STORE, ...leafPem(f, mt)]) };
      const strict = await check(S(f), mt, target, st(), undefined, own);
      fails(strict, 'authentic-timestamp', 'timestamping', 'is unknown', 'revocation could not be checked');
      const logged = await check(S(f), mt, target, st({ override: { authenticTimestamp: 'log' } }), undefined, own);
      ok(logged);
      assert.ok(String((logged.details.timestamp as { genTime: string }).genTime).startsWith(gen));
      assert.equal((logged.details.timestamp as { accuracyMs: number }).accuracyMs, 1000);
      assert.equal(logged.details.format, mt === JWS ? 'JWS' : 'COSE');
    });
  }
  test('coseWithTimestamp with afterCertExpiry (cert still valid) → verified without checking the timestamp', async () => {
    ok(await check(S('coseWithTimestamp.sig'), COSE, target, st({ verifyTimestamp: 'afterCertExpiry' })));
  });
  test('coseExpiredWithTimestamp without a tsa store → certificate expired', async () => {
    const r = await check(S('coseExpiredWithTimestamp.sig'), COSE, target, st({ trustStores: ['ca:valid-trust-store'] }), undefined, { 'ca.valid-trust-store.pem': pemOf([...VALID_STORE, ...leafPem('coseExpiredWithTimestamp.sig', COSE)]) });
    fails(r, 'authentic-timestamp', 'verification time is after certificate "CN=testTSA,O=Notary,L=Seattle,ST=WA,C=US" validity period, it was expired at "Tue, 18 Jun 2024 07:30:31 +0000"');
  });
  test('timestampBeforeNotBefore.sig → timestamp before certificate validity', async () => {
    fails(await check(S('timestampBeforeNotBefore.sig'), JWS, target, st()), 'authentic-timestamp', 'timestamp can be before certificate "CN=testTSA,O=Notary,L=Seattle,ST=WA,C=US" validity period, it will be valid from "Fri, 18 Sep 2099 11:54:34 +0000"');
  });
  test('timestampAfterNotAfter.sig → timestamp after certificate validity', async () => {
    const r = await check(S('timestampAfterNotAfter.sig'), COSE, target, st(), undefined, { 'ca.valid-trust-store.pem': pemOf([...VALID_STORE, ...leafPem('timestampAfterNotAfter.sig', COSE)]) });
    fails(r, 'authentic-timestamp', 'timestamp can be after certificate "CN=testTSA,O=Notary,L=Seattle,ST=WA,C=US" validity period, it was expired at "Tue, 18 Sep 2001 11:54:34 +0000"');
  });
  test('withoutTimestamp.sig → no timestamp countersignature', async () => {
    fails(await check(S('withoutTimestamp.sig'), JWS, target, st()), 'authentic-timestamp', 'no timestamp countersignature was found in the signature envelope');
  });
  test('tsa:test-mismatch (DigiCert root) → unknown authority; tsa:does-not-exist → store does not exist', async () => {
    fails(await check(S('jwsWithTimestamp.sig'), JWS, target, st({ trustStores: ['ca:valid-trust-store', 'tsa:test-mismatch'] })), 'authentic-timestamp', 'certificate signed by unknown authority');
    fails(await check(S('jwsWithTimestamp.sig'), JWS, target, st({ trustStores: ['ca:valid-trust-store', 'tsa:does-not-exist'] })), 'authentic-timestamp', 'the trust store "does-not-exist" of type "tsa" does not exist');
  });
});

/** x5c[0] of a timestamp vector envelope (DER), for pemOf. */
function leafPem(f: string, mt: string): Buffer[] {
  const b = read(NGO('verifier', 'testdata', 'timestamp', 'sigEnv', f));
  return [(mt === COSE ? parseCOSE(b) : parseJWS(b)).certs[0]!.der];
}

describe('notation-go internal/testdata: signatures over the alpine OCI layout', () => {
  const T = (f: string) => read(NGO('internal', 'testdata', f));
  const target: Descriptor = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: 'sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0', size: 481 };
  const alpine = () => parseJWS(T('jws_signature.sig')).certs[0]!.der;
  for (const [f, mt] of [['jws_signature.sig', JWS], ['cose_signature.sig', COSE]] as const) {
    test(`${f} verifies with its own cert as the ca anchor`, async () => {
      const st = statement({ trustStores: ['ca:alpine'], trustedIdentities: ['*'] });
      ok(await check(T(f), mt, target, st, undefined, { 'ca.alpine.crt': alpine() }));
    });
  }
  test('the COSE signature pushed into the layout verifies end to end (COSE inside an OCI layout)', async () => {
    const reader = OCILayoutReader.fromDir(NGO('internal', 'testdata', 'oci-layout'), { registry: 'local', repository: 'oci-layout' });
    const cose = T('cose_signature.sig');
    const layer = reader.put(COSE, cose);
    const config = reader.put('application/vnd.cncf.notary.signature', Buffer.from('{}'));
    reader.putManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [layer], subject: target });
    const policy = JSON.stringify({ version: '1.0', trustPolicies: [{ name: 'local', registryScopes: ['local/oci-layout'], signatureVerification: { level: 'strict' }, trustStores: ['ca:alpine'], trustedIdentities: ['x509.subject:CN=alpine,O=Notary,L=Seattle,ST=WA,C=US'] }] });
    const p = prepareNotation({ provider: 'notation', secret: { name: 'ns/s', data: { 'trustpolicy.json': Buffer.from(policy), 'ca.alpine.crt': alpine() } } }, { fetch: offlineFetch });
    const o = await p.verify({ registry: reader, descriptor: target }, { limits: { maxSignatures: 3 } });
    assert.equal(o.status, 'verified', o.message);
    assert.match(o.message, /notation COSE signature \(notary\.x509\) by "CN=alpine/);
    assert.match(o.message, /trust policy statement 'local'/);
  });
});

describe('blob signatures (notation/test/e2e/testdata/signatures)', () => {
  const license = readFileSync(vectorPath('notation', 'notation', 'LICENSE'));
  const target: Descriptor = { mediaType: 'application/octet-stream', digest: 'sha256:' + createHash('sha256').update(license).digest('hex'), size: license.length };
  test('the LICENSE file is the signed blob', () => {
    assert.equal(target.digest, 'sha256:c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4');
    assert.equal(target.size, 11357);
  });
  for (const [f, mt, when] of [['blob.jws.sig', JWS, '2024-12-31T12:00:00Z'], ['blob.cose.sig', COSE, '2025-01-07T12:00:00Z']] as const) {
    test(`${f}: integrity, authenticity (own cert) and target verify while its cert is valid`, async () => {
      const b = read(E2E('signatures', f));
      const leaf = (mt === COSE ? parseCOSE(b) : parseJWS(b)).certs[0]!.der;
      const st = statement({ trustStores: ['ca:blob'], trustedIdentities: ['*'] });
      ok(await check(b, mt, target, st, new Date(when), { 'ca.blob.crt': leaf }));
      fails(await check(b, mt, { ...target, size: 1 }, st, new Date(when), { 'ca.blob.crt': leaf }), 'target-mismatch');
    });
  }
  test('malformed.jws.sig → envelope-invalid', async () => {
    fails(await check(read(E2E('signatures', 'malformed.jws.sig')), JWS, target, statement()), 'envelope-invalid', 'not valid JWS JSON');
  });
});

describe('encoding conformance (notation-core-go)', () => {
  test('COSE conformance envelope: tagged Sign1, PS384, crit, tag-1 times', () => {
    const c = JSON.parse(read(vectorPath('notation', 'notation-core-go', 'signature', 'cose', 'testdata', 'conformance.json')).toString()) as {
      signingTime: number;
      expiry: number;
      protectedHeaders: { cborHex: string };
      output?: { cborHex: string };
    };
    const prot = decodeCbor(Buffer.from(c.protectedHeaders.cborHex, 'hex'), 16) as Map<unknown, unknown>;
    assert.equal(prot.get(1), -38);
    assert.deepEqual(prot.get(2), ['io.cncf.notary.signingScheme', 'io.cncf.notary.expiry', 'signedCritKey1']);
    assert.equal(prot.get(3), 'application/vnd.cncf.notary.payload.v1+json');
    const st = prot.get('io.cncf.notary.signingTime');
    assert.ok(st instanceof CborTag && st.tag === 1 && st.value === c.signingTime);
    if (c.output) {
      const top = decodeCbor(Buffer.from(c.output.cborHex, 'hex'), 16);
      assert.ok(top instanceof CborTag && top.tag === 18);
    }
  });
  test('strict CBOR: duplicate keys and indefinite lengths are rejected', () => {
    assert.throws(() => decodeCbor(Buffer.from('a201010102', 'hex'), 16), /duplicate map key/);
    assert.throws(() => decodeCbor(Buffer.from('9f01ff', 'hex'), 16), /indefinite length/);
    assert.throws(() => parseCOSE(Buffer.from('8440a0f640', 'hex')), /not a tagged COSE_Sign1/);
  });
  test('JWS conformance protected header: keys, crit and RFC 3339 times', () => {
    const c = JSON.parse(read(vectorPath('notation', 'notation-core-go', 'signature', 'jws', 'testdata', 'conformance.json')).toString()) as { protected: string };
    const h = JSON.parse(Buffer.from(c.protected, 'base64url').toString()) as Record<string, unknown>;
    assert.equal(h.alg, 'ES256');
    assert.ok((h.crit as string[]).includes('io.cncf.notary.signingScheme'));
    assert.match(String(h['io.cncf.notary.signingTime']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });
});

describe('trust store fixtures (truststore_test.go) and trusted identities (TestVerifyX509TrustedIdentities)', () => {
  const prep = (data: Record<string, Buffer>) =>
    prepareNotation({ provider: 'notation', secret: { name: 'ns/trust', data: { 'trustpolicy.json': read(E2E('config', 'trustpolicies', 'trustpolicy.json')), ...data } } });
  const rejects = (data: Record<string, Buffer>, ...words: string[]) =>
    assert.throws(
      () => prep(data),
      (e: unknown) => e instanceof VerifyConfigError && e.code === 'invalid-certificate' && words.every((w) => e.message.includes(w)) && e.message.includes('secret ns/trust: key '),
    );
  test('valid stores load (PEM, DER, self-signed minimum cert)', () => {
    prep({ 'ca.e2e.pem': read(TS('ca', 'valid-trust-store', 'GlobalSignRootCA.crt')), 'ca.e2e.crt': read(TS('ca', 'valid-trust-store', 'GlobalSign.der')) });
    prep({ 'ca.e2e.pem': read(TS('ca', 'valid-trust-store-self-signed', 'openssl-minimum-self-signed.pem')) });
    prep({ 'tsa.e2e.pem': read(TS('tsa', 'test-timestamp', 'globalsignRoot.cer')), 'ca.e2e.pem': read(TS('ca', 'valid-trust-store', 'NotationTestRoot.pem')) });
  });
  test('leaf certificates that are neither CA nor self-signed are rejected, naming the key', () => {
    rejects({ 'ca.e2e.crt': read(TS('ca', 'trust-store-with-leaf-certs', 'non-ca.crt')) }, "key 'ca.e2e.crt'", 'is not a CA certificate or self-signed signing certificate');
    rejects({ 'ca.e2e.crt': read(TS('ca', 'trust-store-with-leaf-certs-in-single-file', 'RootAndLeafCerts.crt')) }, 'is not a CA certificate or self-signed signing certificate');
  });
  test('unreadable certificates are rejected', () => {
    rejects({ 'ca.e2e.crt': read(TS('ca', 'trust-store-with-invalid-certs', 'invalid')) }, "key 'ca.e2e.crt'", 'failed to read the trusted certificate');
    rejects({ 'other.pem': read(E2E('config', 'timestamp', 'invalid.crt')) }, "key 'other.pem'", 'failed to read');
    rejects({ 'other.pem': read(E2E('config', 'timestamp', 'Empty.txt')) }, 'failed to read');
  });
  test('tsa stores hold root CAs only', () => {
    rejects({ 'tsa.x.crt': read(TS('tsa', 'test-nonCA', 'wabbit-networks.io.crt')) }, 'is not a root CA certificate', 'parent certificate cannot sign this kind of certificate');
    rejects({ 'tsa.x.crt': read(TS('tsa', 'test-nonSelfIssued', 'nonSelfIssued.crt')) }, 'are not the same');
    rejects({ 'tsa.x.crt': read(E2E('config', 'timestamp', 'notSelfIssued.crt')) }, 'are not the same');
    rejects({ 'tsa.x.pem': read(E2E('config', 'timestamp', 'intermediate.pem')) }, 'not a root');
    prep({ 'tsa.x.cer.pem': read(E2E('config', 'timestamp', 'DigiCertTSARootSHA384.cer')), 'ca.e2e.pem': read(TS('ca', 'valid-trust-store', 'NotationTestRoot.pem')) });
  });
  test('signing-cert.pem / bad-cert.pem identities', () => {
    const leaf = parseCertificates(read(NGO('verifier', 'testdata', 'verifier', 'signing-cert.pem')))[0]!;
    const bad = parseCertificates(read(NGO('verifier', 'testdata', 'verifier', 'bad-cert.pem')))[0]!;
    const st = (ids: string[]) => statement({ trustedIdentities: ids });
    assert.equal(leaf.subject, 'CN=SomeCN,OU=SomeOU,O=SomeOrg,L=Seattle,ST=WA,C=US');
    assert.equal(checkTrustedIdentities(leaf, st(['x509.subject:C=US,O=SomeOrg,ST=WA'])), undefined);
    assert.equal(checkTrustedIdentities(leaf, st(['nonX509Prefix:my-custom-identity', 'x509.subject:C=US,O=SomeOrg,ST=WA'])), undefined);
    assert.match(checkTrustedIdentities(leaf, st(['nonX509Prefix:my-custom-identity']))!, /no x509 trusted identities are configured/);
    assert.match(checkTrustedIdentities(leaf, st(['x509.subject:C=IND,O=SomeOrg,ST=TS']))!, /does not match the X.509 trusted identities/);
    assert.match(checkTrustedIdentities(leaf, st(['x509.subject:C=bad=#identity,O=SomeOrg,ST=TS']))!, /=#/);
    assert.match(checkTrustedIdentities(bad, st(['x509.subject:C=US,O=SomeOrg,ST=WA']))!, /error while parsing the certificate subject/);
    assert.equal(checkTrustedIdentities(bad, st(['*'])), undefined);
  });
});
