import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { p1363ToDER } from '../x509/der.ts';
import { pemBlocks, sha256Hex } from './encoding.ts';

/** A verification key: from a Secret `.pub` entry, or a certificate's subject key. */
export interface VerificationKey {
  /** Where it came from, e.g. "cosign.pub". */
  name: string;
  key: KeyObject;
  /** DER SubjectPublicKeyInfo. */
  spki: Buffer;
  /** Hex SHA-256 of the SPKI (what `cosign public-key | openssl … sha256` shows). */
  fingerprint: string;
  /** e.g. "ecdsa-p256", "rsa-2048", "ed25519". */
  algorithm: string;
}

/**
 * Parses a PEM public key the way sigstore's `UnmarshalPEMToPublicKey` does: the first PEM block
 * must be `PUBLIC KEY` (PKIX: ECDSA P-256/384/521, RSA, Ed25519) or `RSA PUBLIC KEY` (PKCS#1).
 * Throws an Error whose message says what is wrong.
 */
export function parsePublicKeyPem(name: string, text: string): VerificationKey {
  const blocks = pemBlocks(text);
  const first = blocks[0];
  if (!first) throw new Error('no PEM block found');
  let key: KeyObject;
  if (first.type === 'PUBLIC KEY') {
    key = createPublicKey({ key: first.der, format: 'der', type: 'spki' });
  } else if (first.type === 'RSA PUBLIC KEY') {
    key = createPublicKey({ key: first.der, format: 'der', type: 'pkcs1' });
  } else {
    throw new Error(`unsupported PEM block type '${first.type}' (want 'PUBLIC KEY' or 'RSA PUBLIC KEY')`);
  }
  return fromKeyObject(name, key);
}

export function fromKeyObject(name: string, key: KeyObject): VerificationKey {
  const algorithm = describeKey(key);
  const spki = key.export({ format: 'der', type: 'spki' });
  return { name, key, spki, fingerprint: sha256Hex(spki), algorithm };
}

function describeKey(key: KeyObject): string {
  const d = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = d.namedCurve;
      if (curve === 'prime256v1') return 'ecdsa-p256';
      if (curve === 'secp384r1') return 'ecdsa-p384';
      if (curve === 'secp521r1') return 'ecdsa-p521';
      throw new Error(`unsupported ECDSA curve ${curve ?? 'unknown'}`);
    }
    case 'rsa': {
      const bits = d.modulusLength ?? 0;
      if (bits < 2048) throw new Error(`RSA key too small (${bits} bits, need at least 2048)`);
      return `rsa-${bits}`;
    }
    case 'ed25519':
      return 'ed25519';
    default:
      throw new Error(`unsupported key type ${key.asymmetricKeyType ?? 'unknown'}`);
  }
}

/**
 * Verifies a cosign signature over `data`.
 * - ECDSA: SHA-256 (cosign's `LoadVerifier(pub, SHA256)`), also the curve's own hash (SHA-384 for
 *   P-384, SHA-512 for P-521, as sigstore-go signs); ASN.1 DER first, then IEEE P1363 r||s.
 * - RSA: PKCS#1 v1.5 with SHA-256.
 * - Ed25519: pure Ed25519 over the message (Ed25519ph is not supported by node:crypto).
 */
export function verifySignature(k: VerificationKey, data: Buffer, signature: Buffer): boolean {
  switch (k.key.asymmetricKeyType) {
    case 'ec': {
      const hashes = ['sha256'];
      if (k.algorithm === 'ecdsa-p384') hashes.push('sha384');
      if (k.algorithm === 'ecdsa-p521') hashes.push('sha512');
      for (const h of hashes) {
        if (tryVerify(h, data, k.key, signature, 'der')) return true;
        if (p1363Length(k.algorithm) === signature.length && tryVerify(h, data, k.key, signature, 'ieee-p1363')) return true;
      }
      return false;
    }
    case 'rsa':
      return tryVerify('sha256', data, k.key, signature);
    case 'ed25519':
      return tryVerify(null, data, k.key, signature);
    default:
      return false;
  }
}

function tryVerify(
  hash: string | null,
  data: Buffer,
  key: KeyObject,
  signature: Buffer,
  dsaEncoding: 'der' | 'ieee-p1363' = 'der',
): boolean {
  try {
    // A bare KeyObject, never an options object: node:crypto's checks of one cost about a third
    // of the ECDSA check itself. DER is its default; r || s is converted to DER.
    return cryptoVerify(hash, data, key, dsaEncoding === 'ieee-p1363' ? p1363ToDER(signature) : signature);
  } catch {
    // Malformed DER makes OpenSSL throw instead of returning false.
    return false;
  }
}

function p1363Length(alg: string): number {
  if (alg === 'ecdsa-p256') return 64;
  if (alg === 'ecdsa-p384') return 96;
  if (alg === 'ecdsa-p521') return 132;
  return -1;
}
