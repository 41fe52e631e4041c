// Signing helpers for cosign tests: keys of every supported type, cosign's simple-signing payload,
// `.sig` layers, in-toto statements and DSSE Sigstore bundles, all made with node:crypto.
import { createHash, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { dsse } from '@sigstore/core';
import type { SigLayer } from './cosign-registry.ts';
import { SIMPLESIGNING } from './cosign-registry.ts';

export type KeyType = 'p256' | 'p384' | 'p521' | 'rsa' | 'ed25519';

export interface TestKey {
  type: KeyType;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** PEM `PUBLIC KEY` (SPKI), what `cosign generate-key-pair` writes to cosign.pub. */
  pubPem: string;
}

export function generateKey(type: KeyType): TestKey {
  let kp: { privateKey: KeyObject; publicKey: KeyObject };
  switch (type) {
    case 'p256': kp = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }); break;
    case 'p384': kp = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }); break;
    case 'p521': kp = generateKeyPairSync('ec', { namedCurve: 'secp521r1' }); break;
    case 'rsa': kp = generateKeyPairSync('rsa', { modulusLength: 2048 }); break;
    case 'ed25519': kp = generateKeyPairSync('ed25519'); break;
  }
  return { type, ...kp, pubPem: kp.publicKey.export({ format: 'pem', type: 'spki' }).toString() };
}

/** Signs like cosign: SHA-256 (ECDSA DER by default, RSA PKCS#1 v1.5) or pure Ed25519. */
export function signBytes(key: KeyObject, data: Buffer, encoding: 'der' | 'ieee-p1363' = 'der'): Buffer {
  if (key.asymmetricKeyType === 'ed25519') return cryptoSign(null, data, key);
  if (key.asymmetricKeyType === 'ec') return cryptoSign('sha256', data, { key, dsaEncoding: encoding });
  return cryptoSign('sha256', data, key);
}

/** cosign's payload exactly as Go's encoding/json writes it (no spaces, struct order). */
export function cosignPayload(digest: string, ref = 'registry.test/org/app'): Buffer {
  return Buffer.from(
    `{"critical":{"identity":{"docker-reference":"${ref}"},"image":{"docker-manifest-digest":"${digest}"},"type":"cosign container image signature"},"optional":null}`,
  );
}

export function legacyLayer(payload: Buffer, signature: Buffer, extra: Record<string, string> = {}): SigLayer {
  return { mimeType: SIMPLESIGNING, payload, annotations: { 'dev.cosignproject.cosign/signature': signature.toString('base64'), ...extra } };
}

/** A key-signed `.sig` layer for `digest`. */
export function signLegacy(key: TestKey, digest: string, opts: { encoding?: 'der' | 'ieee-p1363'; payload?: Buffer } = {}): SigLayer {
  const payload = opts.payload ?? cosignPayload(digest);
  return legacyLayer(payload, signBytes(key.privateKey, payload, opts.encoding));
}

/** The in-toto statement `cosign sign` puts in a v3 bundle. */
export function inTotoStatement(digest: string, name = 'registry.test/org/app'): Buffer {
  const hex = digest.replace(/^sha256:/, '');
  return Buffer.from(JSON.stringify({
    _type: 'https://in-toto.io/Statement/v1',
    subject: [{ name, digest: { sha256: hex } }],
    predicateType: 'https://sigstore.dev/cosign/sign/v1',
    predicate: {},
  }));
}

export const IN_TOTO = 'application/vnd.in-toto+json';

export function pae(payload: Buffer, payloadType = IN_TOTO): Buffer {
  return dsse.preAuthEncoding(payloadType, payload);
}

export interface TlogEntryJSON {
  logIndex: string;
  logId: { keyId: string };
  kindVersion: { kind: string; version: string };
  integratedTime: string;
  inclusionPromise?: { signedEntryTimestamp: string };
  inclusionProof?: { logIndex: string; rootHash: string; treeSize: string; hashes: string[]; checkpoint: { envelope: string } };
  canonicalizedBody: string;
}

/** A v0.3 bundle around a DSSE envelope, with a public-key hint or a leaf certificate. */
export function dsseBundle(opts: {
  statement: Buffer;
  signature: Buffer;
  certDer?: Buffer;
  tlogEntries?: TlogEntryJSON[];
  mediaType?: string;
}): Buffer {
  const vm: Record<string, unknown> = opts.certDer
    ? { certificate: { rawBytes: opts.certDer.toString('base64') } }
    : { publicKey: { hint: createHash('sha256').update('hint').digest('base64') } };
  vm.tlogEntries = opts.tlogEntries ?? [];
  return Buffer.from(JSON.stringify({
    mediaType: opts.mediaType ?? 'application/vnd.dev.sigstore.bundle.v0.3+json',
    verificationMaterial: vm,
    dsseEnvelope: {
      payload: opts.statement.toString('base64'),
      payloadType: IN_TOTO,
      signatures: [{ sig: opts.signature.toString('base64'), keyid: '' }],
    },
  }));
}

/** A key-signed cosign v3 bundle for `digest` (no tlog entry, as `cosign sign --tlog-upload=false`). */
export function keyBundle(key: TestKey, digest: string, statement = inTotoStatement(digest)): Buffer {
  return dsseBundle({ statement, signature: signBytes(key.privateKey, pae(statement)) });
}
