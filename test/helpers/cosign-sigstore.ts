// A private Sigstore instance for tests: a Fulcio-like CA (root + intermediate), a CT log key and
// a Rekor key. It issues short-lived code-signing certificates with the Fulcio issuer extensions
// and an embedded RFC 6962 SCT, writes Rekor hashedrekord / dsse entries with SETs (and a
// one-leaf inclusion proof with a signed checkpoint for bundles), and its trusted_root.json.
import { createHash, generateKeyPairSync, sign as cryptoSign, webcrypto, KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { X509Certificate as CoreX509, json as sjson } from '@sigstore/core';
import { pae, type TlogEntryJSON } from './cosign-sign.ts';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIG = { name: 'ECDSA', hash: 'SHA-256' } as const;
const OID_SCT = '1.3.6.1.4.1.11129.2.4.2';

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  if (n < 0x100) return Buffer.from([0x81, n]);
  return Buffer.from([0x82, n >> 8, n & 0xff]);
}
function derOctetString(b: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x04]), derLength(b.length), b]);
}
function derUTF8(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([Buffer.from([0x0c]), derLength(b.length), b]);
}
/** DER TLV with a definite length. */
function tlv(tag: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}
/** OBJECT IDENTIFIER content octets for a dotted OID. */
function oidBytes(oid: string): Buffer {
  const [a, b, ...rest] = oid.split('.').map(Number);
  const out = [40 * a! + b!];
  for (const n of rest) {
    const groups = [n & 0x7f];
    for (let v = n >>> 7; v > 0; v >>>= 7) groups.unshift((v & 0x7f) | 0x80);
    out.push(...groups);
  }
  return Buffer.from(out);
}
/** GeneralNames with the email/URI names followed by otherName [0] { type-id, [0] EXPLICIT UTF8String }. */
function sanWithOtherNames(names: x509.JsonGeneralName[], others: { oid: string; value: string }[]): Buffer {
  const parts = names.map((n) => tlv(n.type === 'email' ? 0x81 : 0x86, Buffer.from(n.value)));
  for (const o of others) parts.push(tlv(0xa0, Buffer.concat([tlv(0x06, oidBytes(o.oid)), tlv(0xa0, derUTF8(o.value))])));
  return tlv(0x30, Buffer.concat(parts));
}
function u16(n: number): Buffer { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; }
function u24(n: number): Buffer { return Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]); }
function u64(n: number): Buffer { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; }
const sha256 = (b: Buffer | string): Buffer => createHash('sha256').update(b).digest();
const spki = (k: KeyObject): Buffer => k.export({ format: 'der', type: 'spki' });
const pem = (type: string, der: Buffer): string =>
  `-----BEGIN ${type}-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END ${type}-----\n`;

export interface LeafOptions {
  email?: string;
  uri?: string;
  /** OIDC issuer written to .1.1 (raw) and/or .1.8 (UTF8String). */
  issuer?: string;
  issuerExtensions?: 'v1' | 'v2' | 'both' | 'none';
  notBefore: Date;
  /** Default notBefore + 10 minutes, like Fulcio. */
  notAfter?: Date;
  /** 'valid' (default), 'none', or 'bad' (signed by another key). */
  sct?: 'valid' | 'none' | 'bad';
  /** false: EKU serverAuth instead of codeSigning. */
  codeSigning?: boolean;
  /** otherName SANs (type OID, UTF8String value), after the email and URI ones. */
  otherNames?: { oid: string; value: string }[];
  /** Issue from this CA instead (e.g. another instance): used for untrusted chains. */
  signer?: { cert: x509.X509Certificate; key: CryptoKey };
}

export interface Leaf {
  der: Buffer;
  pem: string;
  privateKey: KeyObject;
}

export class TestSigstore {
  readonly name: string;
  root!: x509.X509Certificate;
  intermediate!: x509.X509Certificate;
  #rootKeys!: CryptoKeyPair;
  #intKeys!: CryptoKeyPair;
  readonly ct = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  readonly rekor = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  readonly validFrom = new Date('2024-01-01T00:00:00Z');

  private constructor(name: string) {
    this.name = name;
  }

  static async create(name = 'test'): Promise<TestSigstore> {
    const s = new TestSigstore(name);
    s.#rootKeys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
    s.#intKeys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
    s.root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01', name: `O=${name}.sigstore.test, CN=${name}-root`, keys: s.#rootKeys, signingAlgorithm: SIG,
      notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2040-01-01T00:00:00Z'),
      extensions: [
        new x509.BasicConstraintsExtension(true, 1, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ],
    });
    s.intermediate = await x509.X509CertificateGenerator.create({
      serialNumber: '02', subject: `O=${name}.sigstore.test, CN=${name}-intermediate`, issuer: s.root.subject,
      publicKey: s.#intKeys.publicKey, signingKey: s.#rootKeys.privateKey, signingAlgorithm: SIG,
      notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2039-01-01T00:00:00Z'),
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        new x509.ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.3']),
      ],
    });
    return s;
  }

  get ctLogID(): Buffer { return sha256(spki(this.ct.publicKey)); }
  get rekorLogID(): Buffer { return sha256(spki(this.rekor.publicKey)); }
  get rekorURL(): string { return `https://rekor.${this.name}.sigstore.test`; }
  /** The intermediate's signer, for issuing certificates this instance's root does not know. */
  get intermediateSigner(): { cert: x509.X509Certificate; key: CryptoKey } {
    return { cert: this.intermediate, key: this.#intKeys.privateKey };
  }
  get chainPem(): string {
    return pem('CERTIFICATE', Buffer.from(this.intermediate.rawData)) + pem('CERTIFICATE', Buffer.from(this.root.rawData));
  }

  trustedRoot(opts: { ctlogs?: boolean; tlogs?: boolean; caValidFor?: { start: string; end?: string } } = {}): string {
    const logKey = (k: KeyObject, url: string, id: Buffer) => ({
      baseUrl: url,
      hashAlgorithm: 'SHA2_256',
      publicKey: { rawBytes: spki(k).toString('base64'), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start: this.validFrom.toISOString() } },
      logId: { keyId: id.toString('base64') },
    });
    return JSON.stringify({
      mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
      tlogs: opts.tlogs === false ? [] : [logKey(this.rekor.publicKey, this.rekorURL, this.rekorLogID)],
      certificateAuthorities: [{
        subject: { organization: `${this.name}.sigstore.test`, commonName: `${this.name}-root` },
        uri: `https://fulcio.${this.name}.sigstore.test`,
        certChain: { certificates: [this.intermediate, this.root].map((c) => ({ rawBytes: Buffer.from(c.rawData).toString('base64') })) },
        validFor: opts.caValidFor ?? { start: this.validFrom.toISOString() },
      }],
      ctlogs: opts.ctlogs === false ? [] : [logKey(this.ct.publicKey, `https://ctfe.${this.name}.sigstore.test`, this.ctLogID)],
      timestampAuthorities: [],
    });
  }

  async issueLeaf(o: LeafOptions): Promise<Leaf> {
    const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
    const signer = o.signer ?? { cert: this.intermediate, key: this.#intKeys.privateKey };
    const issuer = o.issuer ?? 'https://issuer.test';
    const which = o.issuerExtensions ?? 'both';
    const names: x509.JsonGeneralName[] = [];
    if (o.email) names.push({ type: 'email', value: o.email });
    if (o.uri) names.push({ type: 'url', value: o.uri });
    const exts: x509.Extension[] = [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([o.codeSigning === false ? '1.3.6.1.5.5.7.3.1' : '1.3.6.1.5.5.7.3.3']),
      o.otherNames?.length ? new x509.Extension('2.5.29.17', true, sanWithOtherNames(names, o.otherNames)) : new x509.SubjectAlternativeNameExtension(names, true),
    ];
    if (which === 'v1' || which === 'both') exts.push(new x509.Extension('1.3.6.1.4.1.57264.1.1', false, Buffer.from(issuer)));
    if (which === 'v2' || which === 'both') exts.push(new x509.Extension('1.3.6.1.4.1.57264.1.8', false, derUTF8(issuer)));
    const notAfter = o.notAfter ?? new Date(o.notBefore.getTime() + 10 * 60 * 1000);
    const serialNumber = createHash('sha256').update(`${Math.random()}`).digest('hex').slice(0, 16);
    const base = {
      serialNumber, subject: '', issuer: signer.cert.subject, publicKey: keys.publicKey, signingKey: signer.key,
      signingAlgorithm: SIG, notBefore: o.notBefore, notAfter,
    };
    let cert = await x509.X509CertificateGenerator.create({ ...base, extensions: exts });
    if ((o.sct ?? 'valid') !== 'none') {
      // RFC 6962: the SCT signs the TBS without the SCT extension plus the issuer key hash.
      const tbs = CoreX509.parse(Buffer.from(cert.rawData)).tbsCertificate.toDER();
      const issuerKeyHash = sha256(Buffer.from(signer.cert.publicKey.rawData));
      const ts = o.notBefore.getTime();
      const signed = Buffer.concat([Buffer.from([0, 0]), u64(ts), u16(1), issuerKeyHash, u24(tbs.length), tbs, u16(0)]);
      const ctKey = o.sct === 'bad' ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey : this.ct.privateKey;
      const sig = cryptoSign('sha256', signed, ctKey);
      const sct = Buffer.concat([Buffer.from([0]), this.ctLogID, u64(ts), u16(0), Buffer.from([4, 3]), u16(sig.length), sig]);
      const list = Buffer.concat([u16(sct.length + 2), u16(sct.length), sct]);
      cert = await x509.X509CertificateGenerator.create({ ...base, extensions: [...exts, new x509.Extension(OID_SCT, false, derOctetString(list))] });
    }
    const der = Buffer.from(cert.rawData);
    return { der, pem: pem('CERTIFICATE', der), privateKey: KeyObject.from(keys.privateKey) };
  }

  /** SET over the canonical {body, integratedTime, logIndex, logID}. */
  set(body: string, integratedTime: number, logIndex: number): Buffer {
    const payload = sjson.canonicalize({ body, integratedTime, logIndex, logID: this.rekorLogID.toString('hex') });
    return cryptoSign('sha256', Buffer.from(payload), this.rekor.privateKey);
  }

  /** hashedrekord 0.0.1 body (base64 of canonical JSON) for a signature over `payload`. */
  hashedRekordBody(payload: Buffer, signature: Buffer, verifierPem: string): string {
    return Buffer.from(sjson.canonicalize({
      apiVersion: '0.0.1',
      kind: 'hashedrekord',
      spec: {
        data: { hash: { algorithm: 'sha256', value: sha256(payload).toString('hex') } },
        signature: { content: signature.toString('base64'), publicKey: { content: Buffer.from(verifierPem).toString('base64') } },
      },
    })).toString('base64');
  }

  /** The `dev.sigstore.cosign/bundle` annotation for a legacy signature. */
  legacyBundleAnnotation(payload: Buffer, signature: Buffer, verifierPem: string, integratedTime: number, logIndex = 4242): string {
    const body = this.hashedRekordBody(payload, signature, verifierPem);
    return JSON.stringify({
      SignedEntryTimestamp: this.set(body, integratedTime, logIndex).toString('base64'),
      Payload: { body, integratedTime, logIndex, logID: this.rekorLogID.toString('hex') },
    });
  }

  /** A dsse 0.0.1 tlog entry (SET + one-leaf inclusion proof with a signed checkpoint). */
  dsseTlogEntry(statement: Buffer, signature: Buffer, verifierPem: string, integratedTime: number): TlogEntryJSON {
    const envelopeHash = sha256(pae(statement)).toString('hex');
    const bodyBytes = Buffer.from(sjson.canonicalize({
      apiVersion: '0.0.1',
      kind: 'dsse',
      spec: {
        envelopeHash: { algorithm: 'sha256', value: envelopeHash },
        payloadHash: { algorithm: 'sha256', value: sha256(statement).toString('hex') },
        signatures: [{ signature: signature.toString('base64'), verifier: Buffer.from(verifierPem).toString('base64') }],
      },
    }));
    const body = bodyBytes.toString('base64');
    const logIndex = 0;
    const root = sha256(Buffer.concat([Buffer.from([0]), bodyBytes]));
    const origin = `rekor.${this.name}.sigstore.test - 1234`;
    const note = `${origin}\n1\n${root.toString('base64')}\n`;
    const noteSig = cryptoSign('sha256', Buffer.from(note), this.rekor.privateKey);
    const envelope = `${note}\n\u2014 rekor.${this.name}.sigstore.test ${Buffer.concat([this.rekorLogID.subarray(0, 4), noteSig]).toString('base64')}\n`;
    return {
      logIndex: String(logIndex),
      logId: { keyId: this.rekorLogID.toString('base64') },
      kindVersion: { kind: 'dsse', version: '0.0.1' },
      integratedTime: String(integratedTime),
      inclusionPromise: { signedEntryTimestamp: this.set(body, integratedTime, logIndex).toString('base64') },
      inclusionProof: { logIndex: String(logIndex), rootHash: root.toString('base64'), treeSize: '1', hashes: [], checkpoint: { envelope } },
      canonicalizedBody: body,
    };
  }
}

export { pem as toPem };
