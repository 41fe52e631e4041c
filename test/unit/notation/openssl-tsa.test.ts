// notary.x509 signatures countersigned by a real `openssl ts -reply` TSA (TSA cert made by the test), verified
// against a tsa store, including a leaf that expired after signing (the timestamp proves it was valid).
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { issue, opensslTSA, pem, pushSignature, signCOSE, signJWS, type Issued } from '../../helpers/notation-sign.ts';
import { OCILayoutReader } from '../../helpers/oci-layout.ts';
import { prepareNotation } from '../../../src/verify/notation/index.ts';
import { EKU } from '../../../src/verify/x509/certs.ts';
import { offlineFetch } from './fixtures.ts';

const policy = (stores: string[], extra: Record<string, unknown> = {}) =>
  JSON.stringify({ version: '1.0', trustPolicies: [{ name: 'ts', registryScopes: ['*'], signatureVerification: { level: 'strict', ...extra }, trustStores: stores, trustedIdentities: ['*'] }] });

describe('RFC 3161 countersignatures from openssl ts', () => {
  let caRoot: Issued;
  let tsaRoot: Issued;
  let tsaLeaf: Issued;
  let stamp: (sig: Buffer) => Buffer;
  before(async () => {
    caRoot = await issue({ subject: 'CN=Code Root,O=Acme,ST=WA,C=US', ca: true });
    tsaRoot = await issue({ subject: 'CN=TSA Root,O=Acme,ST=WA,C=US', ca: true });
    tsaLeaf = await issue({ subject: 'CN=Acme TSA,O=Acme,ST=WA,C=US', issuer: tsaRoot, eku: [EKU.timeStamping], ekuCritical: true });
    stamp = await opensslTSA(tsaLeaf, [tsaLeaf, tsaRoot]);
  });
  async function run(fmt: 'JWS' | 'COSE', leaf: Issued, tsaStore: Issued, now?: Date) {
    const reader = new OCILayoutReader({ schemaVersion: 2, manifests: [] }, new Map());
    const config = reader.put('application/vnd.oci.image.config.v1+json', Buffer.from('{}'));
    const subject = reader.putManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [] });
    const env = await (fmt === 'JWS' ? signJWS : signCOSE)({ target: subject, chain: [leaf, caRoot], alg: 'ES256', timestamp: stamp });
    pushSignature(reader, subject, env, fmt === 'JWS' ? 'application/jose+json' : 'application/cose');
    const p = prepareNotation({ provider: 'notation', secret: { name: 'ns/s', data: { 'trustpolicy.json': Buffer.from(policy(['ca:code', 'tsa:acme'])), 'ca.code.pem': pem(caRoot), 'tsa.acme.pem': pem(tsaStore) } } }, { fetch: offlineFetch });
    return p.verify({ registry: reader, descriptor: subject }, { limits: { maxSignatures: 3 }, ...(now ? { now } : {}) });
  }
  for (const fmt of ['JWS', 'COSE'] as const) {
    test(`${fmt}: timestamp verified against the tsa store at strict`, async () => {
      const leaf = await issue({ subject: 'CN=signer,O=Acme,ST=WA,C=US', issuer: caRoot });
      const o = await run(fmt, leaf, tsaRoot);
      assert.equal(o.status, 'verified', o.message);
      assert.match(o.message, /timestamped at \d{4}-/);
      const ts = o.details.timestamp as { tsaSubject: string; accuracyMs: number };
      assert.equal(ts.tsaSubject, 'CN=Acme TSA,O=Acme,ST=WA,C=US');
      assert.equal(ts.accuracyMs, 1000);
    });
  }
  test('leaf expired since signing: the timestamp inside its validity keeps it valid', async () => {
    const leaf = await issue({ subject: 'CN=signer,O=Acme,ST=WA,C=US', issuer: caRoot, notBefore: new Date(Date.now() - 3600_000), notAfter: new Date(Date.now() + 60_000) });
    const o = await run('JWS', leaf, tsaRoot, new Date(Date.now() + 86400_000));
    assert.equal(o.status, 'verified', o.message);
  });
  test('wrong tsa root → authentic-timestamp failure', async () => {
    const leaf = await issue({ subject: 'CN=signer,O=Acme,ST=WA,C=US', issuer: caRoot });
    const other = await issue({ subject: 'CN=Other TSA Root,O=Acme,ST=WA,C=US', ca: true });
    const o = await run('COSE', leaf, other);
    assert.equal(o.status === 'failed' && o.code, 'authentic-timestamp', o.message);
    assert.match(o.message, /certificate signed by unknown authority/);
  });
  test('timestamp after the leaf expired → "timestamp can be after certificate"', async () => {
    const leaf = await issue({ subject: 'CN=signer,O=Acme,ST=WA,C=US', issuer: caRoot, notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) });
    const o = await run('JWS', leaf, tsaRoot);
    assert.equal(o.status === 'failed' && o.code, 'authentic-timestamp', o.message);
    assert.match(o.message, /timestamp can be after certificate "CN=signer,O=Acme,ST=WA,C=US" validity period/);
  });
});
