// Issue #7, Notation items found in review:
// - a verificationPlugin extended attribute that is not marked critical was ignored; notation-go fails
//   verification when the attribute is present at all (not critical: "… is not a critical Extended
//   attribute"; critical: the plugin must be installed, and we run none);
// - at `audit` level the OCSP/CRL URLs of an *untrusted* chain were fetched (a signer could make the
//   controller call any URL); revocation is checked only for chains that reached a trust anchor.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { issue, makeCRL, pem, pushSignature, signCOSE, signJWS, type Issued } from '../../helpers/notation-sign.ts';
import { OCILayoutReader } from '../../helpers/oci-layout.ts';
import { prepareNotation } from '../../../src/verify/notation/index.ts';
import { RevocationCache } from '../../../src/verify/x509/revocation.ts';
import type { Descriptor } from '../../../src/oci/types.ts';
import { offlineFetch } from './fixtures.ts';

const PLUGIN = 'io.cncf.notary.verificationPlugin';

function layout(): { reader: OCILayoutReader; target: Descriptor } {
  const reader = new OCILayoutReader({ schemaVersion: 2, manifests: [] }, new Map());
  const config = reader.put('application/vnd.oci.image.config.v1+json', Buffer.from('{}'));
  return { reader, target: reader.putManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [] }) };
}

const policy = (level: string) =>
  JSON.stringify({ version: '1.0', trustPolicies: [{ name: 'p', registryScopes: ['*'], signatureVerification: { level }, trustStores: ['ca:acme'], trustedIdentities: ['*'] }] });

describe('verificationPlugin attribute', () => {
  let root: Issued;
  let leaf: Issued;
  before(async () => {
    root = await issue({ subject: 'CN=Acme Root,O=Acme,ST=WA,C=US', ca: true });
    leaf = await issue({ subject: 'CN=signer,O=Acme,ST=WA,C=US', issuer: root });
  });
  for (const fmt of ['JWS', 'COSE'] as const) {
    for (const level of ['strict', 'audit']) {
      test(`${fmt}, ${level}: a non-critical verificationPlugin attribute fails verification (notation-go wording)`, async () => {
        const { reader, target } = layout();
        const env = await (fmt === 'JWS' ? signJWS : signCOSE)({ target, chain: [leaf, root], alg: 'ES256', extraHeaders: { [PLUGIN]: 'com.example.plugin' } });
        pushSignature(reader, target, env, fmt === 'JWS' ? 'application/jose+json' : 'application/cose');
        const p = prepareNotation({ provider: 'notation', secret: { name: 'ns/s', data: { 'trustpolicy.json': Buffer.from(policy(level)), 'ca.acme.pem': pem(root) } } }, { fetch: offlineFetch });
        const o = await p.verify({ registry: reader, descriptor: target }, { limits: { maxSignatures: 3 } });
        assert.equal(o.status, 'failed', o.message);
        assert.equal(o.status === 'failed' && o.code, 'plugin-required', o.message);
        assert.match(o.message, /io\.cncf\.notary\.verificationPlugin is not a critical Extended attribute/);
      });
    }
  }
});

describe('revocation at audit level only for chains that reached a trust anchor', () => {
  let server: http.Server;
  let base = '';
  const hits: string[] = [];
  const crls = new Map<string, Buffer>();
  before(async () => {
    server = http.createServer((req, res) => {
      hits.push(req.url ?? '');
      const body = crls.get(req.url ?? '');
      if (!body) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  async function audit(trusted: boolean) {
    const signerRoot = await issue({ subject: 'CN=Signer Root,O=Acme,ST=WA,C=US', ca: true });
    const storeRoot = trusted ? signerRoot : await issue({ subject: 'CN=Other Root,O=Other,ST=WA,C=US', ca: true });
    const tag = Math.random().toString(16).slice(2);
    const leaf = await issue({ subject: 'CN=signer,O=Acme,ST=WA,C=US', issuer: signerRoot, crlUrl: `${base}/${tag}.crl`, ocspUrl: `${base}/ocsp-${tag}` });
    crls.set(`/${tag}.crl`, await makeCRL(signerRoot, []));
    const { reader, target } = layout();
    pushSignature(reader, target, await signJWS({ target, chain: [leaf, signerRoot], alg: 'ES256' }), 'application/jose+json');
    const p = prepareNotation({ provider: 'notation', secret: { name: 'ns/s', data: { 'trustpolicy.json': Buffer.from(policy('audit')), 'ca.acme.pem': pem(storeRoot) } } }, { revocationCache: new RevocationCache() });
    const o = await p.verify({ registry: reader, descriptor: target }, { limits: { maxSignatures: 3 } });
    return { o, fetched: hits.filter((h) => h.includes(tag)) };
  }

  test('untrusted chain: verified as audited, and no OCSP/CRL URL of it is fetched', async () => {
    const { o, fetched } = await audit(false);
    assert.equal(o.status, 'verified', o.message);
    assert.deepEqual(fetched, []);
  });

  test('trusted chain: revocation is checked (control)', async () => {
    const { o, fetched } = await audit(true);
    assert.equal(o.status, 'verified', o.message);
    assert.ok(fetched.length > 0, 'the CRL or OCSP URL of a trusted chain is fetched');
  });
});
