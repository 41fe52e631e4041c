// Test-only Notation signing: CA chains made with @peculiar/x509 over WebCrypto (RSA-PSS or ECDSA keys),
// JWS and COSE envelopes (COSE encoded with cborg), CRLs, and signature manifests for OCILayoutReader.
import { webcrypto, createPrivateKey, sign as cryptoSign, constants as cc, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { encode as cborEncode, Token, Type } from 'cborg';
import * as pkijs from 'pkijs';
import * as asn1js from 'asn1js';
import type { Descriptor } from '../../src/oci/types.ts';
import type { OCILayoutReader } from './oci-layout.ts';
import { makeTempDir, removeTempDir } from '../harness/proc.ts';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKeyPair = webcrypto.CryptoKeyPair;

export type KeySpec = { kind: 'ec'; curve: 'P-256' | 'P-384' | 'P-521' } | { kind: 'rsa'; bits: 2048 | 3072 | 4096 };

export interface Issued {
  cert: x509.X509Certificate;
  der: Buffer;
  keys: CryptoKeyPair;
  /** node KeyObject of the private key, for envelope signing. */
  privateKey: KeyObject;
  serial: string;
}

const HASH_FOR: Record<string, string> = { 'P-256': 'SHA-256', 'P-384': 'SHA-384', 'P-521': 'SHA-512', 2048: 'SHA-256', 3072: 'SHA-384', 4096: 'SHA-512' };

async function genKeys(spec: KeySpec): Promise<CryptoKeyPair> {
  if (spec.kind === 'ec') return (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: spec.curve }, true, ['sign', 'verify'])) as CryptoKeyPair;
  return (await webcrypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: spec.bits, publicExponent: new Uint8Array([1, 0, 1]), hash: HASH_FOR[spec.bits]! }, true, ['sign', 'verify'])) as CryptoKeyPair;
}

function sigAlg(keys: CryptoKeyPair): { name: string; hash: string } {
  const a = keys.privateKey.algorithm as { name: string; namedCurve?: string };
  return a.name === 'ECDSA' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
}

let serialCounter = 0x1000;

export interface IssueOptions {
  /** A DN string, or @peculiar/x509 JSON to choose the ASN.1 string types (BMPString, UniversalString…). */
  subject: x509.X509CertificateCreateParamsName;
  key?: KeySpec;
  issuer?: Issued;
  ca?: boolean;
  pathLength?: number;
  notBefore?: Date;
  notAfter?: Date;
  /** Extended key usages (OIDs); `critical` EKU when ekuCritical. */
  eku?: string[];
  ekuCritical?: boolean;
  keyUsage?: number;
  ocspUrl?: string;
  crlUrl?: string;
}

export async function issue(o: IssueOptions): Promise<Issued> {
  const keys = await genKeys(o.key ?? { kind: 'ec', curve: 'P-256' });
  const serial = (serialCounter++).toString(16);
  const exts: x509.Extension[] = [];
  if (o.ca) exts.push(new x509.BasicConstraintsExtension(true, o.pathLength, true));
  exts.push(new x509.KeyUsagesExtension(o.keyUsage ?? (o.ca ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign : x509.KeyUsageFlags.digitalSignature), true));
  if (o.eku) exts.push(new x509.ExtendedKeyUsageExtension(o.eku, o.ekuCritical ?? false));
  if (o.ocspUrl) exts.push(new x509.AuthorityInfoAccessExtension({ ocsp: [new x509.GeneralName('url', o.ocspUrl)] }));
  if (o.crlUrl) exts.push(new x509.CRLDistributionPointsExtension([o.crlUrl]));
  exts.push(await x509.SubjectKeyIdentifierExtension.create(keys.publicKey));
  const common = {
    serialNumber: serial,
    notBefore: o.notBefore ?? new Date(Date.now() - 3600_000),
    notAfter: o.notAfter ?? new Date(Date.now() + 365 * 86400_000),
    extensions: exts,
  };
  const cert = o.issuer
    ? await x509.X509CertificateGenerator.create({ ...common, subject: o.subject, issuer: o.issuer.cert.subject, publicKey: keys.publicKey, signingKey: o.issuer.keys.privateKey, signingAlgorithm: sigAlg(o.issuer.keys) })
    : await x509.X509CertificateGenerator.createSelfSigned({ ...common, name: o.subject, keys, signingAlgorithm: sigAlg(keys) });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { cert, der: Buffer.from(cert.rawData), keys, privateKey: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }), serial };
}

/**
 * `k` self-issued CA certificates with one subject and one key pair (distinct serials): each "issues"
 * every other, the shape that made unbounded path building try every ordering (#7 item 2).
 */
export async function sameKeyCertificates(k: number, subject: string): Promise<Issued[]> {
  const first = await issue({ subject, ca: true });
  const out = [first];
  for (let i = 1; i < k; i++) {
    const serialNumber = (0x7000 + i).toString(16);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber,
      name: subject,
      keys: first.keys,
      signingAlgorithm: sigAlg(first.keys),
      notBefore: new Date(Date.now() - 3600_000),
      notAfter: new Date(Date.now() + 86400_000),
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
    });
    out.push({ ...first, cert, der: Buffer.from(cert.rawData), serial: serialNumber });
  }
  return out;
}

export function pem(...certs: Issued[]): Buffer {
  return Buffer.from(certs.map((c) => c.cert.toString('pem')).join('\n') + '\n');
}

/** A CRL issued by `issuer`, revoking `revoked` serials (built with pkijs: @peculiar/x509 writes an empty,
 * invalid crlEntryExtensions for entries without extensions). */
export async function makeCRL(issuer: Issued, revoked: string[], nextUpdate = new Date(Date.now() + 86400_000)): Promise<Buffer> {
  const issuerCert = pkijs.Certificate.fromBER(new Uint8Array(issuer.der));
  const crl = new pkijs.CertificateRevocationList({
    version: 1,
    issuer: issuerCert.subject,
    thisUpdate: new pkijs.Time({ type: 0, value: new Date(Date.now() - 60_000) }),
    nextUpdate: new pkijs.Time({ type: 0, value: nextUpdate }),
  });
  if (revoked.length > 0) {
    crl.revokedCertificates = revoked.map(
      (serial) =>
        new pkijs.RevokedCertificate({
          userCertificate: new asn1js.Integer({ valueHex: new Uint8Array(Buffer.from(serial.length % 2 ? '0' + serial : serial, 'hex')).buffer }),
          revocationDate: new pkijs.Time({ type: 0, value: new Date(Date.now() - 30_000) }),
        }),
    );
  }
  await crl.sign(issuer.keys.privateKey, 'SHA-256');
  return Buffer.from(crl.toSchema(true).toBER(false));
}

export type Alg = 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512';
const ALG_HASH: Record<Alg, string> = { PS256: 'sha256', PS384: 'sha384', PS512: 'sha512', ES256: 'sha256', ES384: 'sha384', ES512: 'sha512' };
const COSE_ALG: Record<Alg, number> = { PS256: -37, PS384: -38, PS512: -39, ES256: -7, ES384: -35, ES512: -36 };

function rawSign(alg: Alg, key: KeyObject, data: Buffer): Buffer {
  const hash = ALG_HASH[alg];
  if (alg.startsWith('PS')) return cryptoSign(hash, data, { key, padding: cc.RSA_PKCS1_PSS_PADDING, saltLength: cc.RSA_PSS_SALTLEN_DIGEST });
  return cryptoSign(hash, data, { key, dsaEncoding: 'ieee-p1363' });
}

export interface SignOptions {
  target: Descriptor;
  chain: Issued[];
  alg: Alg;
  scheme?: 'notary.x509' | 'notary.x509.signingAuthority';
  signingTime?: Date;
  expiry?: Date;
  /** Called with the raw signature; returns an RFC 3161 token to embed. */
  timestamp?: (signature: Buffer) => Buffer | Promise<Buffer>;
  /** Extra protected headers (extended attributes), and which of them to list in `crit`. */
  extraHeaders?: Record<string, string>;
  extraCritical?: string[];
}

function payloadOf(t: Descriptor): Buffer {
  return Buffer.from(JSON.stringify({ targetArtifact: { digest: t.digest, mediaType: t.mediaType, size: t.size } }));
}

export async function signJWS(o: SignOptions): Promise<Buffer> {
  const scheme = o.scheme ?? 'notary.x509';
  const time = (o.signingTime ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const crit = ['io.cncf.notary.signingScheme', ...(scheme === 'notary.x509.signingAuthority' ? ['io.cncf.notary.authenticSigningTime'] : []), ...(o.expiry ? ['io.cncf.notary.expiry'] : []), ...(o.extraCritical ?? [])];
  const hdr: Record<string, unknown> = {
    ...o.extraHeaders,
    alg: o.alg,
    crit,
    cty: 'application/vnd.cncf.notary.payload.v1+json',
    ...(o.expiry ? { 'io.cncf.notary.expiry': o.expiry.toISOString().replace(/\.\d{3}Z$/, 'Z') } : {}),
    'io.cncf.notary.signingScheme': scheme,
    [scheme === 'notary.x509' ? 'io.cncf.notary.signingTime' : 'io.cncf.notary.authenticSigningTime']: time,
  };
  const p = Buffer.from(JSON.stringify(hdr)).toString('base64url');
  const pl = payloadOf(o.target).toString('base64url');
  const sig = rawSign(o.alg, o.chain[0]!.privateKey, Buffer.from(`${p}.${pl}`));
  const header: Record<string, unknown> = { x5c: o.chain.map((c) => c.der.toString('base64')), 'io.cncf.notary.signingAgent': 'osc-test' };
  if (o.timestamp) header['io.cncf.notary.timestampSignature'] = (await o.timestamp(sig)).toString('base64');
  return Buffer.from(JSON.stringify({ payload: pl, protected: p, header, signature: sig.toString('base64url') }));
}

/** A time as CBOR tag 1 (epoch seconds), as notation-core-go writes COSE times. */
class EpochTime {
  readonly secs: number;
  constructor(secs: number) {
    this.secs = secs;
  }
}
const cborOptions = {
  typeEncoders: {
    Object: (obj: unknown) => (obj instanceof EpochTime ? [new Token(Type.tag, 1), new Token(Type.uint, obj.secs)] : null),
  },
};
const enc = { encode: (v: unknown) => cborEncode(v, cborOptions) };
/** COSE_Sign1 is tag 18: one initial byte (major type 6, value 18) before the array. */
const tag18 = (body: Uint8Array) => Buffer.concat([Buffer.from([0xd2]), body]);

export async function signCOSE(o: SignOptions): Promise<Buffer> {
  const scheme = o.scheme ?? 'notary.x509';
  const secs = (d: Date) => new EpochTime(Math.floor(d.getTime() / 1000));
  const crit: string[] = ['io.cncf.notary.signingScheme', ...(scheme === 'notary.x509.signingAuthority' ? ['io.cncf.notary.authenticSigningTime'] : []), ...(o.expiry ? ['io.cncf.notary.expiry'] : []), ...(o.extraCritical ?? [])];
  const prot = new Map<unknown, unknown>([
    [1, COSE_ALG[o.alg]],
    [2, crit],
    [3, 'application/vnd.cncf.notary.payload.v1+json'],
    ['io.cncf.notary.signingScheme', scheme],
    [scheme === 'notary.x509' ? 'io.cncf.notary.signingTime' : 'io.cncf.notary.authenticSigningTime', secs(o.signingTime ?? new Date())],
    ...(o.expiry ? [['io.cncf.notary.expiry', secs(o.expiry)] as [unknown, unknown]] : []),
    ...Object.entries(o.extraHeaders ?? {}),
  ]);
  const protBytes = Buffer.from(enc.encode(prot));
  const payload = payloadOf(o.target);
  const tbs = Buffer.from(enc.encode(['Signature1', protBytes, Buffer.alloc(0), payload]));
  const sig = rawSign(o.alg, o.chain[0]!.privateKey, tbs);
  const unprot = new Map<unknown, unknown>([[33, o.chain.map((c) => c.der)], ['io.cncf.notary.signingAgent', 'osc-test']]);
  if (o.timestamp) unprot.set('io.cncf.notary.timestampSignature', await o.timestamp(sig));
  return tag18(enc.encode([protBytes, unprot, payload, sig]));
}

/** Pushes an envelope as a signature manifest (compat or artifactType form) referring to `subject`. */
export function pushSignature(reader: OCILayoutReader, subject: Descriptor, envelope: Buffer, mediaType: 'application/jose+json' | 'application/cose', form: 'compat' | 'artifactType' = 'compat'): Descriptor {
  const layer = reader.put(mediaType, envelope);
  const config =
    form === 'compat'
      ? reader.put('application/vnd.cncf.notary.signature', Buffer.from('{}'))
      : reader.put('application/vnd.oci.empty.v1+json', Buffer.from('{}'));
  return reader.putManifest({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    ...(form === 'artifactType' ? { artifactType: 'application/vnd.cncf.notary.signature' } : {}),
    config,
    layers: [layer],
    subject,
  });
}

/**
 * A real RFC 3161 TSA: `openssl ts -reply` signing with `tsa` (cert chain `chain`, leaf first). Returns a
 * function that timestamps a signature (SHA-256 imprint), for SignOptions.timestamp.
 */
export async function opensslTSA(tsa: Issued, chain: Issued[], opts: { accuracySecs?: number } = {}): Promise<(sig: Buffer) => Buffer> {
  const { writeFileSync, readFileSync } = await import('node:fs');
  const { execFileSync } = await import('node:child_process');
  const { createHash } = await import('node:crypto');
  const path = await import('node:path');
  // Removed at exit: it holds the TSA's key.
  const dir = makeTempDir('osc-tsa-');
  writeFileSync(path.join(dir, 'tsa.crt'), pem(tsa));
  writeFileSync(path.join(dir, 'chain.pem'), pem(...chain));
  writeFileSync(path.join(dir, 'tsa.key'), tsa.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(path.join(dir, 'serial'), '01\n');
  writeFileSync(
    path.join(dir, 'ts.cnf'),
    [
      '[ tsa ]',
      'default_tsa = tsa_config',
      '[ tsa_config ]',
      `dir = ${dir}`,
      'serial = $dir/serial',
      'signer_cert = $dir/tsa.crt',
      'certs = $dir/chain.pem',
      'signer_key = $dir/tsa.key',
      'signer_digest = sha256',
      'default_policy = 1.2.3.4.1',
      'digests = sha256, sha384, sha512',
      `accuracy = secs:${opts.accuracySecs ?? 1}`,
      'ordering = no',
      'tsa_name = no',
      'ess_cert_id_chain = no',
      'ess_cert_id_alg = sha256',
      '',
    ].join('\n'),
  );
  return (sig: Buffer) => {
    const q = path.join(dir, 'q.tsq');
    const t = path.join(dir, 't.der');
    execFileSync('openssl', ['ts', '-query', '-digest', createHash('sha256').update(sig).digest('hex'), '-sha256', '-cert', '-no_nonce', '-out', q], { stdio: 'pipe' });
    execFileSync('openssl', ['ts', '-reply', '-config', path.join(dir, 'ts.cnf'), '-queryfile', q, '-token_out', '-out', t], { stdio: 'pipe' });
    return readFileSync(t);
  };
}

export interface OCSPResponder {
  url: string;
  stop(): void;
}

/**
 * A real `openssl ocsp` responder on 127.0.0.1 (free port) for certificates issued by `ca`, signing its
 * answers with the CA key. `good` / `revoked` serials are listed in its index; any other serial is "unknown".
 */
export async function opensslOCSP(ca: Issued, entries: { good?: Issued[]; revoked?: Issued[] }, fixedPort?: number): Promise<OCSPResponder> {
  const { writeFileSync } = await import('node:fs');
  const { spawn } = await import('node:child_process');
  const net = await import('node:net');
  const path = await import('node:path');
  // Removed by stop() or at exit: it holds the CA's key.
  const dir = makeTempDir('osc-ocsp-');
  const ymd = (d: Date) => d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
  const dn = (c: Issued) => '/' + c.cert.subject.split(', ').reverse().join('/');
  const line = (c: Issued, revoked: boolean) =>
    [revoked ? 'R' : 'V', ymd(c.cert.notAfter), revoked ? ymd(new Date(Date.now() - 60_000)) : '', c.serial.toUpperCase().padStart(c.serial.length + (c.serial.length % 2), '0'), 'unknown', dn(c)].join('\t');
  const lines = [...(entries.good ?? []).map((c) => line(c, false)), ...(entries.revoked ?? []).map((c) => line(c, true))];
  writeFileSync(path.join(dir, 'index.txt'), lines.length ? lines.join('\n') + '\n' : '');
  writeFileSync(path.join(dir, 'ca.crt'), pem(ca));
  writeFileSync(path.join(dir, 'ca.key'), ca.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const port = fixedPort ?? await new Promise<number>((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const child = spawn('openssl', ['ocsp', '-index', path.join(dir, 'index.txt'), '-port', String(port), '-rsigner', path.join(dir, 'ca.crt'), '-rkey', path.join(dir, 'ca.key'), '-CA', path.join(dir, 'ca.crt'), '-nmin', '5', '-ignore_err'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  // Ready when it says so (a TCP probe would occupy the single-threaded responder).
  await new Promise<void>((resolve, reject) => {
    let err = '';
    const t = setTimeout(() => reject(new Error(`openssl ocsp did not start: ${err}`)), 5000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('waiting for OCSP client connections')) {
        clearTimeout(t);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`openssl ocsp exited with ${code}: ${err}`));
    });
  });
  child.stderr!.resume();
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () => {
      child.kill();
      removeTempDir(dir);
    },
  };
}
