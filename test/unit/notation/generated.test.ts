// Signatures made by the tests for what the vectors lack: ECDSA leaves under a CA chain (JWS and COSE,
// both manifest forms, inside an OCI layout), RSA sizes, signingAuthority, and CRL revocation served by
// a local node:http server.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { issue, makeCRL, pem, pushSignature, signCOSE, signJWS, type Issued } from '../../helpers/notation-sign.ts';
import { OCILayoutReader } from '../../helpers/oci-layout.ts';
import { prepareNotation } from '../../../src/verify/notation/index.ts';
import { RevocationCache } from '../../../src/verify/x509/revocation.ts';
import { EKU } from '../../../src/verify/x509/certs.ts';
import type { Descriptor } from '../../../src/oci/types.ts';
import { offlineFetch } from './fixtures.ts';

function newLayout(): { reader: OCILayoutReader; subject: Descriptor } {
  const reader = new OCILayoutReader({ schemaVersion: 2, manifests: [] }, new Map(), { registry: 'registry.example', repository: 'org/app' });
  const config = reader.put('application/vnd.oci.image.config.v1+json', Buffer.from('{}'));
  const layer = reader.put('application/vnd.oci.image.layer.v1.tar', Buffer.from('hello'));
  const subject = reader.putManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [layer] }, { tag: 'v1' });
  return { reader, subject };
}

function policy(level = 'strict', stores = ['ca:acme'], extra: Record<string, unknown> = {}, identities = ['x509.subject:CN=signer,O=Acme,ST=WA,C=US']): string {
  return JSON.stringify({ version: '1.0', trustPolicies: [{ name: 'acme', registryScopes: ['registry.example/org/app'], signatureVerification: { level, ...extra }, trustStores: stores, trustedIdentities: identities }] });
}

describe('generated ECDSA / RSA chains', () => {
  let root: Issued;
  let inter: Issued;
  before(async () => {
    root = await issue({ subject: 'CN=Acme Root,O=Acme,ST=WA,C=US', ca: true });
    inter = await issue({ subject: 'CN=Acme Intermediate,O=Acme,ST=WA,C=US', ca: true, pathLength: 0, issuer: root });
  });
  const curves = [
    ['P-256', 'ES256'],
    ['P-384', 'ES384'],
    ['P-521', 'ES512'],
  ] as const;
  for (const [curve, alg] of curves) {
    for (const fmt of ['JWS', 'COSE'] as const) {
      for (const form of ['compat', 'artifactType'] as const) {
        test(`${alg} leaf ← intermediate ← root, ${fmt}, ${form} manifest → verified`, async () => {
          const leaf = await issue({ subject: 'CN=signer,O=Acme,ST=WA,C=US', key: { kind: 'ec', curve }, issuer: inter, eku: [EKU.codeSigning] });
          const { reader, subject } = newLayout();
          const env = await (fmt === 'JWS' ? signJWS : signCOSE)({ target: subject, chain: [leaf, inter, root], alg });
          pushSignature(reader, subject, env, fmt === 'JWS' ? 'application/jose+json' : 'application/cose', form);
          const p = prepareNotation({ provider: 'notation', secret: { name: 'ns/s', data: { 'trustpolicy.json': Buffer.from(policy()), 'ca.acme.pem': pem(root) } } }, { fetch: offlineFetch });
          const o = await p.verify({ registry: reader, descriptor: subject, tag: 'v1' }, { limits: { maxSignatures: 3 } });
          assert.equal(o.status, 'verified', o.message);
          assert.match(o.message, new RegExp(`notation ${fmt} signature \\(notary.x509\\) by "CN=signer,O=Acme,ST=WA,C=US"`));
          assert.equal(o.details.algorithm, alg);
          assert.equal((o.details.trustedCertificate as { sha256: string }).sha256, (await import('node:crypto')).createHash('sha256').update(root.der).digest('hex'));
        });
      }
    }
  }
  test('intermediate as the trust anchor also works; an unrelated root does not', async () => {
    const leaf = await issue({ subject: 'CN=signer,O=Acme,ST=WA,C=US', issuer: inter });
    const other = await issue({ subject: 'CN=Other Root,O=Other,ST=WA,C=US', ca: true });
    const { reader, subject } = newLayout();
    pushSignature(reader, subject, await signJWS({ target: subject, chain: [leaf, inter, root], alg: 'ES256' }), 'application/jose+json');
    const run = async (store: Buffer) =>
      prepareNotation({ provider: 'notation', secret: { name: 'ns/s', data: { 'trustpolicy.json': Buffer.from(policy()), 'ca.acme.pem': store } } }, { fetch: offlineFetch }).verify({ registry: reader, descriptor: subject }, { limits: { maxSignatures: 3 } });
    assert.equal((await run(pem(inter))).status, 'verified');
    const bad = await run(pem(other));
    assert.equal(bad.status, 'failed');
    assert.equal(bad.status === 'failed' && bad.code, 'authenticity');
  });
  test('algorithm must match the key: ES384 header on a P-256 key → integrity', async () => {
    const leaf = await issue({ subject: 'CN=signer,O=Acme,ST=WA,C=US', issuer: inter });
    const { reader, subject } = newLayout();
    pushSignature(reader, subject, await signCOSE({ target: subject, chain: [leaf, inter, root], alg: 'ES384' }), 'application/cose');
    const o = await prepareNotation({ provider: 'notation', secret: { name: 'ns/s', data: { 'trustpolicy.json': Buffer.from(policy()), 'ca.acme.pem': pem(root) } } }, { fetch: offlineFetch }).verify({ registry: reader, descriptor: subject }, { limits: { maxSignatures: 3 } });
    assert.equal(o.status, 'failed');
    assert.match(o.message, /mismatch between signature algorithm derived from signing certificate \(ES256\) and signing algorithm specified \(ES384\)/);
  });
  test('leaf rules: a CA leaf or a serverAuth EKU is an integrity failure', async () => {
    for (const bad of [await issue({ subject: 'CN=signer,O=Acme,ST=WA,C=US', issuer: inter, ca: true, keyUsage: 1 }), await issue({ subject: 'CN=signer,O=Acme,ST=WA,C=US', issuer: inter, eku: [EKU.serverAuth] })]) {
      const { reader, subject } = newLayout();
      pushSignature(reader, subject, await signJWS({ target: subject, chain: [bad, inter, root], alg: 'ES256' }), 'application/jose+json');
      const o = await prepareNotation({ provider: 'notation', secret: { name: 'ns/s', data: { 'trustpolicy.json': Buffer.from(policy()), 'ca.acme.pem': pem(root) } } }, { fetch: offlineFetch }).verify({ registry: reader, descriptor: subject }, { limits: { maxSignatures: 3 } });
      assert.equal(o.status === 'failed' && o.code, 'integrity', o.message);
      assert.match(o.message, /integrity validation failed: invalid certificate chain/);
    }
  });
  test('RSA-3072 PS384 and signingAuthority scheme with its store type', async () => {
    const leaf = await issue({ subject: 'CN=signer,O=Acme,ST=WA,C=US', key: { kind: 'rsa', bits: 3072 }, issuer: inter });
    const { reader, subject } = newLayout();
    pushSignature(reader, subject, await signJWS({ target: subject, chain: [leaf, inter, root], alg: 'PS384', scheme: 'notary.x509.signingAuthority' }), 'application/jose+json');
    const run = (stores: string[], data: Record<string, Buffer>) =>
      prepareNotation({ provider: 'notation', secret: { name: 'ns/s', data: { 'trustpolicy.json': Buffer.from(policy('strict', stores)), ...data } } }, { fetch: offlineFetch }).verify({ registry: reader, descriptor: subject }, { limits: { maxSignatures: 3 } });
    const ok = await run(['signingAuthority:acme'], { 'signingAuthority.acme.pem': pem(root) });
    assert.equal(ok.status, 'verified', ok.message);
    assert.match(ok.message, /notary\.x509\.signingAuthority/);
    // the ca store type does not authenticate a signingAuthority signature
    const wrong = await run(['ca:acme'], { 'ca.acme.pem': pem(root) });
    assert.equal(wrong.status === 'failed' && wrong.code, 'authenticity', wrong.message);
  });
});

describe('CRL revocation served by a local node:http server', () => {
  let server: http.Server;
  let base = '';
  const crls = new Map<string, Buffer>();
  before(async () => {
    server = http.createServer((req, res) => {
      const body = crls.get(req.url ?? '');
      if (!body) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  async function scenario(revokeLeaf: boolean, level = 'strict', override?: Record<string, string>) {
    const root = await issue({ subject: 'CN=CRL Root,O=Acme,ST=WA,C=US', ca: true });
    const tag = Math.random().toString(16).slice(2);
    const leaf = await issue({ subject: 'CN=signer,O=Acme,ST=WA,C=US', issuer: root, crlUrl: `${base}/${tag}.crl` });
    crls.set(`/${tag}.crl`, await makeCRL(root, revokeLeaf ? [leaf.serial] : []));
    const { reader, subject } = newLayout();
    pushSignature(reader, subject, await signJWS({ target: subject, chain: [leaf, root], alg: 'ES256' }), 'application/jose+json');
    const p = prepareNotation(
      { provider: 'notation', secret: { name: 'ns/s', data: { 'trustpolicy.json': Buffer.from(policy(level, ['ca:acme'], override ? { override } : {})), 'ca.acme.pem': pem(root) } } },
      { revocationCache: new RevocationCache() },
    );
    return p.verify({ registry: reader, descriptor: subject }, { limits: { maxSignatures: 3 } });
  }
  test('good → verified', async () => {
    const o = await scenario(false);
    assert.equal(o.status, 'verified', o.message);
    assert.deepEqual((o.details.revocation as { status: string; method: string }[])[0], { subject: 'CN=signer,O=Acme,ST=WA,C=US', status: 'ok', method: 'crl' });
  });
  test('revoked → strict fails; permissive logs; override revocation=skip ignores', async () => {
    const s = await scenario(true);
    assert.equal(s.status === 'failed' && s.code, 'revocation', s.message);
    assert.match(s.message, /revocation validation failed: signing certificate with subject "CN=signer,O=Acme,ST=WA,C=US" is revoked/);
    const p = await scenario(true, 'permissive');
    assert.equal(p.status, 'verified');
    assert.ok(p.warnings.some((w) => w.includes('is revoked')));
    assert.equal((await scenario(true, 'strict', { revocation: 'skip' })).status, 'verified');
  });
  test('CRL server gone → unknown; strict fails saying revocation could not be checked', async () => {
    const root = await issue({ subject: 'CN=CRL Root,O=Acme,ST=WA,C=US', ca: true });
    const leaf = await issue({ subject: 'CN=signer,O=Acme,ST=WA,C=US', issuer: root, crlUrl: `${base}/missing.crl` });
    const { reader, subject } = newLayout();
    pushSignature(reader, subject, await signJWS({ target: subject, chain: [leaf, root], alg: 'ES256' }), 'application/jose+json');
    const o = await prepareNotation({ provider: 'notation', secret: { name: 'ns/s', data: { 'trustpolicy.json': Buffer.from(policy()), 'ca.acme.pem': pem(root) } } }, { revocationCache: new RevocationCache() }).verify({ registry: reader, descriptor: subject }, { limits: { maxSignatures: 3 } });
    assert.equal(o.status === 'failed' && o.code, 'revocation');
    assert.match(o.message, /is unknown: revocation could not be checked \(CRL .*HTTP 404\)/);
  });
});
