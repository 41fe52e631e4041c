// Provider-neutral x509 helpers against the notation-core-go / tspclient-go vectors (INDEX §6, §7).
//
// tspclient-go/internal/cms/testdata: every token except TimeStampToken.p7s is rejected here. Upstream's cms
// package tests some of them (…WithSigningTime, …WithSigningTimeBeforeExpected) with its own roots and
// times; through the full RFC 3161 path with the GlobalSign root they do not verify, and we assert rejection.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { vectorPath } from '../../helpers/shared.ts';
import { formatRFC1123Z, isSelfSigned, issuanceError, parseCertificates } from '../../../src/verify/x509/certs.ts';
import { createCA, createServerCert } from '../../harness/pki.ts';
import { makeTempDir } from '../../harness/proc.ts';
import { buildChain, validateCodeSigningChain, validateTimestampingChain } from '../../../src/verify/x509/chain.ts';
import { checkImprint, parseTimestampToken, verifySignedToken, verifyTimestampToken } from '../../../src/verify/x509/timestamp.ts';
import { checkChainRevocation, RevocationCache, type HttpFetcher } from '../../../src/verify/x509/revocation.ts';

const V = (...p: string[]) => readFileSync(vectorPath('notation', ...p));
const TSP = (f: string) => V('tspclient-go', 'testdata', f);
const gsRoot = () => parseCertificates(TSP('GlobalSignRootCA.crt'));

describe('RFC 3161 tokens (tspclient-go token_test.go)', () => {
  test('TimeStampToken.p7s verifies for "notation" with genTime and 1 s accuracy', async () => {
    const r = await verifyTimestampToken(parseTimestampToken(TSP('TimeStampToken.p7s')), Buffer.from('notation'), gsRoot());
    assert.equal(r.genTime.toISOString(), '2021-09-17T14:09:10.000Z');
    assert.equal(r.accuracyMs, 1000);
    assert.equal(r.lower.toISOString(), '2021-09-17T14:09:09.000Z');
    assert.equal(r.signer.subject, 'CN=Globalsign TSA for Advanced - G4,O=GlobalSign nv-sa,C=BE');
    assert.equal(r.chain.length, 4);
  });
  test('mismatched message', async () => {
    await assert.rejects(verifyTimestampToken(parseTimestampToken(TSP('TimeStampToken.p7s')), Buffer.from('mismatch'), gsRoot()), /invalid TSTInfo: mismatched message/);
  });
  test('unknown root (notation-go tsa:test-mismatch case)', async () => {
    const digicert = parseCertificates(V('notation-go', 'verifier', 'testdata', 'truststore', 'x509', 'tsa', 'test-mismatch', 'DigiCertTSARootSHA384.cer'));
    await assert.rejects(verifySignedToken(parseTimestampToken(TSP('TimeStampToken.p7s')), digicert), /certificate signed by unknown authority/);
  });
  const negatives: Record<string, RegExp> = {
    'TimeStampTokenWithValidAndInvalidSignerInfos.p7s': /signerInfo not found/,
    'TimeStampTokenWithInvalidSignature.p7s': /cms verification failure/,
    'TimeStampTokenWithoutSigningCertificate.p7s': /failed to get SigningCertificateV2 from signed attributes: attribute not found/,
    'TimeStampTokenWithSigningCertificateV1.p7s': /failed to get SigningCertificateV2 from signed attributes: attribute not found/,
    'TimeStampTokenWithSigningCertificateV1NoCert.p7s': /attribute not found/,
    'TimeStampTokenWithInvalidSigningCertificateV1.p7s': /attribute not found/,
    'TimeStampTokenWithSHA1CertHash.p7s': /unsupported certificate hash algorithm in SigningCertificateV2 attribute/,
    'TimeStampTokenWithMismatchCertHash.p7s': /signing certificate hash does not match CertHash in signed attribute/,
    'TimeStampTokenWithTSTInfoVersion2.p7s': /timestamp token info version must be 1, but got 2/,
    'SHA1TimeStampToken.p7s': /unrecognized hash algorithm: 1.2.840.113549.1.1.5/,
    'TimeStampTokenWithWrongSigningCertificateV2IssuerChoiceTag.p7s': /issuer name is missing in IssuerSerial/,
    'TimeStampTokenWithSigningCertificateV2NoCert.p7s': /signingCertificateV2 does not contain any certificate/,
    'TimeStampTokenWithInvalidSigningCertificateV2.p7s': /sequence truncated/,
    'TimeStampTokenWithoutCertificate.p7s': /signing certificate not found in the timestamp token/,
    'TimeStampTokenWithInvalidTSTInfo.p7s': /cannot unmarshal TSTInfo/,
    'TimeStampTokenWithInvalideContentType.p7s': /unexpected content type: 1.2.840.113549.1.7.1. Expected to be id-ct-TSTInfo \(1.2.840.113549.1.9.16.1.4\)/,
    'TimeStampTokenNoRoot.p7s': /certificate signed by unknown authority/,
    'TimeStampTokenWithoutSigningCertificateV2IssuerSerial.p7s': /cms verification failure/,
  };
  test('every tspclient-go token is covered', () => {
    const files = readdirSync(vectorPath('notation', 'tspclient-go', 'testdata')).filter((f) => f.endsWith('.p7s'));
    assert.deepEqual(files.sort(), [...Object.keys(negatives), 'TimeStampToken.p7s'].sort());
  });
  for (const [f, re] of Object.entries(negatives)) {
    test(`${f} → ${re.source}`, async () => {
      await assert.rejects(async () => verifySignedToken(parseTimestampToken(TSP(f)), gsRoot()), re);
    });
  }
  test('notation-go countersignature tokens', async () => {
    const C = (f: string) => V('notation-go', 'verifier', 'testdata', 'timestamp', 'countersignature', f);
    const t = parseTimestampToken(C('TimeStampToken.p7s'));
    checkImprint(t, Buffer.from('notation'));
    await assert.rejects(verifySignedToken(parseTimestampToken(C('TimeStampTokenWithoutCertificate.p7s')), gsRoot()), /signing certificate not found in the timestamp token/);
    assert.throws(() => parseTimestampToken(C('TimeStampTokenWithInvalidTSTInfo.p7s')), /cannot unmarshal TSTInfo/);
    assert.throws(() => parseTimestampToken(C('TimeStampTokenWithInvalideContentType.p7s')), /unexpected content type: 1.2.840.113549.1.7.1/);
    assert.throws(() => parseTimestampToken(Buffer.from('invalid\n')), /cms: syntax error/);
  });
  test('notation-core-go TimeStampTokenWithInvalidSignature.p7s against its DigiCert root', async () => {
    const root = parseCertificates(V('notation-core-go', 'internal', 'timestamp', 'testdata', 'tsaRootCert.cer'));
    await assert.rejects(verifySignedToken(parseTimestampToken(V('notation-core-go', 'internal', 'timestamp', 'testdata', 'TimeStampTokenWithInvalidSignature.p7s')), root), /cms verification failure/);
  });
  test('tspclient-go internal/cms tokens: only TimeStampToken.p7s verifies', async () => {
    const dir = vectorPath('notation', 'tspclient-go', 'internal', 'cms', 'testdata');
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.p7s'))) {
      const run = async () => verifySignedToken(parseTimestampToken(readFileSync(`${dir}/${f}`)), gsRoot());
      if (f === 'TimeStampToken.p7s') await run();
      else await assert.rejects(run, Error, f);
    }
  });
});

describe('certificates and chains (notation-core-go x509)', () => {
  const X = (f: string) => V('notation-core-go', 'x509', 'testdata', f);
  test('PEM, multi-PEM, DER, concatenated DER; invalid rejected', () => {
    assert.equal(parseCertificates(X('pem.crt')).length, 1);
    assert.equal(parseCertificates(X('multi-pem.crt')).length > 1, true);
    assert.equal(parseCertificates(X('der.der')).length, 1);
    assert.equal(parseCertificates(X('multi-der.der')).length, parseCertificates(X('multi-pem.crt')).length);
    assert.throws(() => parseCertificates(X('invalid')));
  });
  test('DigiCert TSA chain passes timestamping rules and fails code-signing rules', async () => {
    const chain = ['timestamp_leaf.crt', 'timestamp_intermediate.crt', 'timestamp_root.crt'].flatMap((f) => parseCertificates(X(f)));
    validateTimestampingChain(chain);
    assert.throws(() => validateCodeSigningChain(chain), /TimeStamping|key usage/);
    const built = await buildChain(chain[0]!, [chain[1]!], [chain[2]!], { at: new Date((chain[0]!.notBefore.getTime() + chain[0]!.notAfter.getTime()) / 2) });
    assert.equal(built.length, 3);
    await assert.rejects(buildChain(chain[0]!, [], [chain[2]!]), /unknown authority/);
  });
  test('code-signing chains from the vectors', () => {
    validateCodeSigningChain(parseCertificates(V('notation', 'test', 'e2e', 'testdata', 'config', 'crl', 'certchain_with_crl.pem')));
    validateCodeSigningChain(parseCertificates(V('notation', 'test', 'e2e', 'testdata', 'config', 'localkeys', 'e2e.crt')));
    // a chain missing its root is rejected
    const c = parseCertificates(V('notation', 'test', 'e2e', 'testdata', 'config', 'crl', 'certchain_with_crl.pem'));
    assert.throws(() => validateCodeSigningChain(c.slice(0, 2)), /self-signed|root/);
    // reversed order is rejected
    assert.throws(() => validateCodeSigningChain([...c].reverse()));
  });
  test('RFC1123Z formatting', () => {
    assert.equal(formatRFC1123Z(new Date('2023-06-27T06:10:00Z')), 'Tue, 27 Jun 2023 06:10:00 +0000');
  });
});

describe('revocation with the notation e2e CRL and OCSP fixtures', () => {
  const D = (...p: string[]) => V('notation', 'test', 'e2e', 'testdata', 'config', ...p);
  const chain = parseCertificates(D('crl', 'certchain_with_crl.pem'));
  const serve = (files: Record<string, string>, log: string[] = []): HttpFetcher => async (url) => {
    log.push(url);
    const f = files[url];
    if (!f) throw new Error(`connect ECONNREFUSED (${url})`);
    return D('crl', f);
  };
  const now = new Date('2025-06-01T00:00:00Z');
  test('unrevoked chain → ok (intermediate: OCSP unreachable, falls back to CRL)', async () => {
    const log: string[] = [];
    const r = await checkChainRevocation(chain, { fetch: serve({ 'http://localhost:10086/leaf.crl': 'leaf.crl', 'http://localhost:10086/intermediate.crl': 'intermediate.crl' }, log), now });
    assert.equal(r.status, 'ok', r.message);
    assert.deepEqual(r.certs.map((c) => c.status), ['ok', 'ok', 'nonRevokable']);
    assert.ok(log.some((u) => u.startsWith('http://localhost.test/ocsp/')), 'OCSP GET tried first for the intermediate');
  });
  test('leaf revoked', async () => {
    const r = await checkChainRevocation(chain, { fetch: serve({ 'http://localhost:10086/leaf.crl': 'leaf_revoked.crl', 'http://localhost:10086/intermediate.crl': 'intermediate.crl' }), now });
    assert.equal(r.status, 'revoked');
    assert.match(r.message!, /certificate with subject "CN=LeafCert.*" is revoked/);
  });
  test('intermediate revoked', async () => {
    const r = await checkChainRevocation(chain, { fetch: serve({ 'http://localhost:10086/leaf.crl': 'leaf.crl', 'http://localhost:10086/intermediate.crl': 'intermediate_revoked.crl' }), now });
    assert.equal(r.status, 'revoked');
    assert.match(r.message!, /CN=IntermediateCA/);
  });
  test('leaf_expired.crl (nextUpdate 2023-12-25, from an older IntermediateCA key) → unknown: revocation could not be checked', async () => {
    const r = await checkChainRevocation(chain, { fetch: serve({ 'http://localhost:10086/leaf.crl': 'leaf_expired.crl', 'http://localhost:10086/intermediate.crl': 'intermediate.crl' }), now });
    assert.equal(r.status, 'unknown');
    assert.match(r.message!, /CN=LeafCert.*is unknown: revocation could not be checked/);
  });
  test('air-gapped: everything unreachable → unknown, never hangs', async () => {
    const r = await checkChainRevocation(chain, { fetch: serve({}), now });
    assert.equal(r.status, 'unknown');
  });
  test('a CRL signed by someone else is not accepted', async () => {
    const r = await checkChainRevocation(chain, { fetch: serve({ 'http://localhost:10086/leaf.crl': 'intermediate.crl', 'http://localhost:10086/intermediate.crl': 'intermediate.crl' }), now });
    assert.equal(r.status, 'unknown');
    assert.match(r.message!, /not signed by the certificate issuer/);
  });
  test('the cache serves a CRL until its nextUpdate', async () => {
    const cache = new RevocationCache();
    const log: string[] = [];
    const files = { 'http://localhost:10086/leaf.crl': 'leaf.crl', 'http://localhost:10086/intermediate.crl': 'intermediate.crl' };
    await checkChainRevocation(chain, { fetch: serve(files, log), now, cache });
    const n = log.filter((u) => u.endsWith('.crl')).length;
    await checkChainRevocation(chain, { fetch: serve(files, log), now, cache });
    assert.equal(log.filter((u) => u.endsWith('.crl')).length, n);
  });
  test('the cache is bounded by bytes, oldest evicted first, and never holds an entry larger than its bound', () => {
    const cache = new RevocationCache(1000);
    const later = new Date(Date.now() + 3_600_000);
    cache.putCRL('a', Buffer.alloc(400), later);
    cache.putOCSP('b', Buffer.alloc(400), later);
    cache.putCRL('c', Buffer.alloc(400), later);
    assert.equal(cache.getCRL('a'), undefined);
    assert.equal(cache.getOCSP('b')?.length, 400);
    assert.equal(cache.getCRL('c')?.length, 400);
    assert.equal(cache.bytes, 800);
    cache.putCRL('huge', Buffer.alloc(1001), later);
    assert.equal(cache.getCRL('huge'), undefined);
    assert.equal(cache.bytes, 800);
    cache.putCRL('c', Buffer.alloc(100), later);
    assert.equal(cache.bytes, 500);
  });
  test('OCSP fixture chain: responder unreachable and no CDP → unknown', async () => {
    const ocspChain = parseCertificates(D('ocsp', 'certchain_with_ocsp.pem'));
    const log: string[] = [];
    const r = await checkChainRevocation(ocspChain, { fetch: serve({}, log), now });
    assert.equal(r.status, 'unknown');
    assert.ok(log[0]!.startsWith('http://localhost:10087/'), log.join());
    assert.deepEqual(parseCertificates(D('ocsp', 'leaf.crt'))[0]!.der, ocspChain[0]!.der);
  });
});

test('a certificate seen before is not parsed again (same DER, same immutable Cert); the size budget still applies', () => {
  const der = gsRoot()[0]!.der;
  const a = parseCertificates(der)[0]!;
  const b = parseCertificates(Buffer.from(der))[0]!;
  assert.equal(a, b);
  assert.throws(() => parseCertificates(der, { maxCertificateSize: 16 }), /maxCertificateSize/);
  const tampered = Buffer.from(der);
  tampered[tampered.length - 1]! ^= 1;
  const c = parseCertificates(tampered)[0]!;
  assert.notEqual(c, a);
  assert.notEqual(c.sha256, a.sha256);
});

test('a verified issuance is remembered per pair of parsed certificates, never for another parent of the same name', async () => {
  const dir = makeTempDir('issuance-memo-');
  // Two CAs with one subject and different keys; the leaf is issued by the first.
  const [ca1, ca2] = await Promise.all([createCA(path.join(dir, 'a'), { cn: 'same-name' }), createCA(path.join(dir, 'b'), { cn: 'same-name' })]);
  const leafFiles = await createServerCert(ca1, { cn: 'leaf' });
  const [leaf] = parseCertificates(readFileSync(leafFiles.certFile));
  const [parent] = parseCertificates(readFileSync(ca1.certFile));
  const [impostor] = parseCertificates(readFileSync(ca2.certFile));
  for (let i = 0; i < 3; i++) {
    assert.equal(issuanceError(leaf!, parent!), undefined);
    assert.match(issuanceError(leaf!, impostor!) ?? '', /does not verify with the key/);
  }
  assert.ok(isSelfSigned(parent!) && isSelfSigned(impostor!));
  assert.equal(isSelfSigned(leaf!), false);
  // The impostor asked first for a fresh leaf: still refused, and the real parent still accepted.
  const [leaf2] = parseCertificates(readFileSync((await createServerCert(ca1, { cn: 'leaf-2' })).certFile));
  assert.match(issuanceError(leaf2!, impostor!) ?? '', /does not verify with the key/);
  assert.equal(issuanceError(leaf2!, parent!), undefined);
});
