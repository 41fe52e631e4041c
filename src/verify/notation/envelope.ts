// Notary Project signature envelopes: the format-neutral content both envelope verifiers produce, the
// signing algorithms, and the checks shared by JWS and COSE (notation-core-go signature/internal/base).
// Problems throw VerificationError: `envelope-invalid` when the envelope cannot be decoded, `integrity`
// for everything else.

import { verify as cryptoVerify, constants as cc } from 'node:crypto';
import { VerificationError } from '../errors.ts';
import { publicKeyOf, type Cert } from '../x509/certs.ts';
import { keyAlgorithm, validateCodeSigningChain } from '../x509/chain.ts';
import { p1363ToDER } from '../x509/der.ts';

export const MEDIA_TYPE_JWS = 'application/jose+json';
export const MEDIA_TYPE_COSE = 'application/cose';
export const PAYLOAD_CONTENT_TYPE = 'application/vnd.cncf.notary.payload.v1+json';
export const SIGNATURE_ARTIFACT_TYPE = 'application/vnd.cncf.notary.signature';

export const H_SIGNING_SCHEME = 'io.cncf.notary.signingScheme';
export const H_SIGNING_TIME = 'io.cncf.notary.signingTime';
export const H_AUTHENTIC_SIGNING_TIME = 'io.cncf.notary.authenticSigningTime';
export const H_EXPIRY = 'io.cncf.notary.expiry';
export const H_PLUGIN = 'io.cncf.notary.verificationPlugin';
export const H_PLUGIN_MIN_VERSION = 'io.cncf.notary.verificationPluginMinVersion';
export const H_TIMESTAMP = 'io.cncf.notary.timestampSignature';
export const H_SIGNING_AGENT = 'io.cncf.notary.signingAgent';

export type SigningScheme = 'notary.x509' | 'notary.x509.signingAuthority';
export type Algorithm = 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512';

export interface ExtendedAttribute {
  key: string | number;
  value: unknown;
  critical: boolean;
}

export interface EnvelopeContent {
  format: 'JWS' | 'COSE';
  payload: Buffer;
  contentType: string;
  signingScheme: SigningScheme;
  signingTime?: Date;
  authenticSigningTime?: Date;
  expiry?: Date;
  certs: Cert[];
  alg: Algorithm;
  /** Raw primitive signature bytes (what an RFC 3161 token imprints). */
  signature: Buffer;
  timestampToken?: Buffer;
  signingAgent?: string;
  verificationPlugin?: string;
  verificationPluginMinVersion?: string;
  extendedAttributes: ExtendedAttribute[];
  /** Labels listed in the protected `crit` header. */
  critical: (string | number)[];
}

const HASH: Record<Algorithm, 'sha256' | 'sha384' | 'sha512'> = {
  PS256: 'sha256',
  PS384: 'sha384',
  PS512: 'sha512',
  ES256: 'sha256',
  ES384: 'sha384',
  ES512: 'sha512',
};
const HASH_LEN = { sha256: 32, sha384: 48, sha512: 64 };

/** The algorithm notation derives from the signing key (exact sizes only). */
export function algorithmForCert(cert: Cert): Algorithm {
  const ka = keyAlgorithm(cert);
  if (!ka) throw new VerificationError('integrity', 'signing certificate has an unsupported public key type');
  if (ka.kind === 'rsa') {
    const m: Record<number, Algorithm> = { 2048: 'PS256', 3072: 'PS384', 4096: 'PS512' };
    const a = m[ka.bits];
    if (!a) throw new VerificationError('integrity', `rsa key size ${ka.bits} bits is not supported`);
    return a;
  }
  const m: Record<number, Algorithm> = { 256: 'ES256', 384: 'ES384', 521: 'ES512' };
  const a = m[ka.bits];
  if (!a) throw new VerificationError('integrity', `ecdsa key size ${ka.bits} bits is not supported`);
  return a;
}

/**
 * Verifies a raw JWS/COSE signature. PS*: RSASSA-PSS with MGF1(same hash); `pssSalt` 'auto' accepts any
 * salt length (golang-jwt, JWS), 'hash' requires salt = hash length (go-cose). ES*: IEEE P1363 r||s.
 */
export function verifyPrimitive(alg: Algorithm, cert: Cert, data: Uint8Array, sig: Uint8Array, pssSalt: 'auto' | 'hash'): boolean {
  const hash = HASH[alg];
  const key = publicKeyOf(cert);
  try {
    if (alg.startsWith('PS')) {
      if (key.asymmetricKeyType !== 'rsa') return false;
      return cryptoVerify(hash, data, { key, padding: cc.RSA_PKCS1_PSS_PADDING, saltLength: pssSalt === 'auto' ? cc.RSA_PSS_SALTLEN_AUTO : HASH_LEN[hash] }, sig);
    }
    if (key.asymmetricKeyType !== 'ec') return false;
    const bits = keyAlgorithm(cert)?.bits ?? 0;
    if (sig.length !== 2 * Math.ceil(bits / 8)) return false;
    // A bare KeyObject, as in cosign/keys.ts: node:crypto checks an options object slowly.
    return cryptoVerify(hash, data, key, p1363ToDER(sig));
  } catch {
    return false;
  }
}


/**
 * Checks shared by both formats once the headers are decoded: content type, signing scheme and its
 * time attributes, expiry after signing time, required critical headers, and the certificate chain.
 */
export function validateCommon(c: EnvelopeContent, critical: (string | number)[], present: (k: string) => boolean): void {
  if (c.contentType !== PAYLOAD_CONTENT_TYPE) {
    throw new VerificationError('integrity', `payload content type "${c.contentType}" not supported`);
  }
  const mustCrit: string[] = [H_SIGNING_SCHEME];
  if (c.signingScheme === 'notary.x509') {
    if (!c.signingTime) throw new VerificationError('integrity', `missing "${H_SIGNING_TIME}" header for signing scheme notary.x509`);
    if (c.authenticSigningTime) throw new VerificationError('integrity', `"${H_AUTHENTIC_SIGNING_TIME}" header is not allowed with signing scheme notary.x509`);
  } else {
    if (!c.authenticSigningTime) throw new VerificationError('integrity', `missing "${H_AUTHENTIC_SIGNING_TIME}" header for signing scheme notary.x509.signingAuthority`);
    mustCrit.push(H_AUTHENTIC_SIGNING_TIME);
  }
  if (c.expiry) {
    mustCrit.push(H_EXPIRY);
    const signed = c.signingTime ?? c.authenticSigningTime;
    if (signed && c.expiry <= signed) throw new VerificationError('integrity', `expiry "${c.expiry.toISOString()}" must be later than the signing time "${signed.toISOString()}"`);
  }
  if (critical.length === 0) throw new VerificationError('integrity', 'missing "crit" header: it must list the critical headers');
  for (const h of mustCrit) {
    if (!critical.includes(h)) throw new VerificationError('integrity', `header "${h}" must be marked critical`);
  }
  for (const h of critical) {
    if (!present(String(h))) throw new VerificationError('integrity', `header "${String(h)}" is marked critical but not present`);
  }
  if (c.certs.length === 0) throw new VerificationError('integrity', 'certificate chain is not present');
  try {
    validateCodeSigningChain(c.certs);
  } catch (e) {
    throw new VerificationError('integrity', `invalid certificate chain: ${(e as Error).message}`);
  }
}

/** Go `time.Time` JSON: RFC 3339 with optional fraction and numeric offset. */
export function parseRFC3339(v: unknown, name: string): Date {
  if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(v)) {
    throw new VerificationError('integrity', `header "${name}" is not an RFC 3339 time: ${JSON.stringify(v)}`);
  }
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw new VerificationError('integrity', `header "${name}" is not a valid time: ${v}`);
  return d;
}

export function isSigningScheme(v: unknown): v is SigningScheme {
  return v === 'notary.x509' || v === 'notary.x509.signingAuthority';
}
