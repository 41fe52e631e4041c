// Issue #7 item 4: distinguished names are compared by Unicode code point. parseRawDN decoded one UTF-16
// unit at a time, so every character outside the Basic Multilingual Plane became U+FFFD and a policy
// pinning `O=Acme 🔒 Release` accepted a leaf with `O=Acme 👾 Release` from the same trusted CA. The
// certificate side must decode each ASN.1 string type exactly (UTF8String, BMPString = UCS-2 big-endian,
// UniversalString = UTF-32BE; asn1js kept only the low 16 bits of each UniversalString character) so that
// equal names compare equal and different ones never do.
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { issue, pem, pushSignature, signJWS, type Issued } from '../../helpers/notation-sign.ts';
import { OCILayoutReader } from '../../helpers/oci-layout.ts';
import { prepareNotation } from '../../../src/verify/notation/index.ts';
import { offlineFetch } from './fixtures.ts';

const LOCK = 'Acme \u{1F512} Release';
const INVADER = 'Acme \u{1F47E} Release';

function policy(org: string): string {
  return JSON.stringify({
    version: '1.0',
    trustPolicies: [{ name: 'u', registryScopes: ['*'], signatureVerification: { level: 'strict' }, trustStores: ['ca:acme'], trustedIdentities: [`x509.subject:CN=signer,O=${org},ST=WA,C=US`] }],
  });
}

const TAGS = { utf8String: 12, bmpString: 30, universalString: 28 } as const;

/** Content octets of `s` in an ASN.1 string type: UTF-8, UCS-2 (BMP only) or UTF-32, big-endian. */
function encode(s: string, type: keyof typeof TAGS): Buffer {
  if (type === 'utf8String') return Buffer.from(s, 'utf8');
  const cps = [...s].map((c) => c.codePointAt(0)!);
  const width = type === 'bmpString' ? 2 : 4;
  const b = Buffer.alloc(cps.length * width);
  cps.forEach((cp, i) => (width === 2 ? b.writeUInt16BE(cp, 2 * i) : b.writeUInt32BE(cp, 4 * i)));
  return b;
}

/** C=US, ST=WA, O=<org in the given string type>, CN=signer as DER (asn1js writes UniversalString per UTF-16 unit). */
function name(org: string, type: keyof typeof TAGS): ArrayBuffer {
  const atv = (oid: string, tag: number, value: Buffer) =>
    new asn1js.Set({ value: [new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: oid }), new asn1js.Primitive({ idBlock: { tagClass: 1, tagNumber: tag }, valueHex: new Uint8Array(value).buffer })] })] });
  const seq = new asn1js.Sequence({
    value: [atv('2.5.4.6', 19, Buffer.from('US')), atv('2.5.4.8', 12, Buffer.from('WA')), atv('2.5.4.10', TAGS[type], encode(org, type)), atv('2.5.4.3', 12, Buffer.from('signer'))],
  });
  return seq.toBER(false);
}

/**
 * A leaf issued by `issuer` whose subject is exactly `subject` (DER): @peculiar/x509 re-encodes names and
 * truncates UniversalString, so the certificate is issued first and its subject replaced and re-signed here.
 */
async function leafWithSubject(issuer: Issued, subject: ArrayBuffer): Promise<Issued> {
  const leaf = await issue({ subject: 'CN=placeholder', issuer });
  const cert = pkijs.Certificate.fromBER(new Uint8Array(leaf.der));
  cert.subject = pkijs.RelativeDistinguishedNames.fromBER(subject);
  await cert.sign(issuer.keys.privateKey, 'SHA-256');
  const der = Buffer.from(cert.toSchema(true).toBER(false));
  return { ...leaf, der };
}

describe('x509.subject identities outside the Basic Multilingual Plane', () => {
  let root: Issued;
  before(async () => {
    root = await issue({ subject: 'CN=Acme Root,O=Acme,ST=WA,C=US', ca: true });
  });

  async function verify(org: string, subject: ArrayBuffer) {
    const leaf = await leafWithSubject(root, subject);
    const reader = new OCILayoutReader({ schemaVersion: 2, manifests: [] }, new Map());
    const config = reader.put('application/vnd.oci.image.config.v1+json', Buffer.from('{}'));
    const target = reader.putManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [] });
    pushSignature(reader, target, await signJWS({ target, chain: [leaf, root], alg: 'ES256' }), 'application/jose+json');
    const p = prepareNotation({ provider: 'notation', secret: { name: 'ns/s', data: { 'trustpolicy.json': Buffer.from(policy(org)), 'ca.acme.pem': pem(root) } } }, { fetch: offlineFetch });
    return p.verify({ registry: reader, descriptor: target }, { limits: { maxSignatures: 3 } });
  }

  test('a policy pinning O=Acme 🔒 Release rejects a leaf with O=Acme 👾 Release (UTF8String)', async () => {
    const o = await verify(LOCK, name(INVADER, 'utf8String'));
    assert.equal(o.status, 'failed', o.message);
    assert.equal(o.status === 'failed' && o.code, 'trusted-identity', o.message);
    assert.ok(o.message.includes(`O=${INVADER}`), o.message);
  });

  for (const type of ['utf8String', 'universalString'] as const) {
    test(`the same policy accepts O=Acme 🔒 Release encoded as ${type}`, async () => {
      const o = await verify(LOCK, name(LOCK, type));
      assert.equal(o.status, 'verified', o.message);
    });
  }

  test('BMPString (UCS-2) names compare by character with the UTF-8 policy', async () => {
    assert.equal((await verify('Acme Ünïcødé', name('Acme Ünïcødé', 'bmpString'))).status, 'verified');
    const o = await verify('Acme Ünïcødé', name('Acme Unicode', 'bmpString'));
    assert.equal(o.status === 'failed' && o.code, 'trusted-identity', o.message);
  });

  test('a UniversalString 🔒 (U+1F512) does not pass for the private-use U+F512', async () => {
    const o = await verify('Acme \uF512 Release', name(LOCK, 'universalString'));
    assert.equal(o.status === 'failed' && o.code, 'trusted-identity', o.message);
  });
});
