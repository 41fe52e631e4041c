/**
 * Certificate chain validation (provider-neutral), following notation-core-go `x509` rules.
 *
 * Exported API:
 * - `validateCodeSigningChain(chain: Cert[]): void` — chain is leaf first, each cert issued by the
 *   next, ending in a self-signed root (a single self-signed, self-issued leaf is allowed); leaf
 *   code-signing rules and CA rules. Time is NOT checked. Throws `ChainError`.
 * - `validateTimestampingChain(chain: Cert[]): void` — same structure with the RFC 3161 TSA leaf rules
 *   (keyUsage present with digitalSignature, EKU exactly id-kp-timeStamping and critical).
 * - `buildChain(leaf, intermediates, roots, { at?, issuersMustBeCA?, limits?, signal? }): Promise<Cert[]>` —
 *   path building from `leaf` through `intermediates` to one of `roots` (a root may be cross-signed, i.e.
 *   not self-signed); every cert must be valid at `at` when given. Returns the chain leaf first, ending with
 *   the root found. Throws `ChainError` ("certificate signed by unknown authority"), or a LimitError when a
 *   budget stops the search: certificates sharing one issuer name (`maxChainCandidates`), signature checks
 *   (`maxChainSignatureChecks`), path length (`maxChainDepth`). It yields to the event loop as it goes.
 * - `keyAlgorithm(cert): { kind: 'rsa' | 'ec'; bits: number; curve?: string } | undefined`.
 * - `ChainError` (Error subclass).
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { DefaultLimits, LimitError, type Limits } from '../../api/limits.ts';
import { certExtensions, EKU, isSelfIssued, isSelfSigned, issuanceError, KeyUsage, type Cert, publicKeyOf } from './certs.ts';

export class ChainError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChainError';
  }
}

type LeafKind = 'codeSigning' | 'timestamping';

export function validateCodeSigningChain(chain: Cert[]): void {
  validateChain(chain, 'codeSigning');
}

export function validateTimestampingChain(chain: Cert[]): void {
  validateChain(chain, 'timestamping');
}

function validateChain(chain: Cert[], kind: LeafKind): void {
  if (chain.length === 0) throw new ChainError('certificate chain must contain at least one certificate');
  const leaf = chain[0]!;
  if (chain.length === 1) {
    if (!isSelfIssued(leaf) || !isSelfSigned(leaf)) {
      throw new ChainError(`invalid self-signed certificate. subject: "${leaf.subject}". Error: the certificate is not self-signed and self-issued; a chain of one certificate must be a self-signed certificate`);
    }
    validateLeaf(leaf, kind);
    return;
  }
  for (let i = 0; i < chain.length; i++) {
    const cert = chain[i]!;
    if (i === chain.length - 1) {
      const err = issuanceError(cert, cert);
      if (err) throw new ChainError(`invalid self-signed certificate. subject: "${cert.subject}". Error: the root certificate must be self-signed: ${err}`);
      const ext = certExtensions(cert);
      if (!ext.basicConstraints?.ca) throw new ChainError(`invalid self-signed certificate. subject: "${cert.subject}". Error: the root certificate is not a CA (basicConstraints cA must be true)`);
      if (ext.keyUsage && (ext.keyUsage.usages & KeyUsage.keyCertSign) === 0) {
        throw new ChainError(`invalid self-signed certificate. subject: "${cert.subject}". Error: the root certificate's key usage lacks keyCertSign`);
      }
    } else {
      // The name comparison first: a failed signature check is not remembered, so checking a
      // leaf's signature against its own key would cost a verification every time.
      if (isSelfIssued(cert) && isSelfSigned(cert)) {
        throw new ChainError(`invalid certificates or certificate with subject "${cert.subject}" is self-signed. Certificate chain must not contain self-signed intermediate or leaf certificates`);
      }
      const parent = chain[i + 1]!;
      const err = issuanceError(cert, parent);
      if (err) throw new ChainError(`invalid certificate chain: certificate with subject "${cert.subject}" is not issued by "${parent.subject}": ${err}`);
    }
    if (i === 0) validateLeaf(cert, kind);
    else validateCA(cert, i);
  }
}

function validateCA(cert: Cert, index: number): void {
  const ext = certExtensions(cert);
  if (!ext.basicConstraints?.ca) {
    throw new ChainError(`certificate with subject "${cert.subject}": ca field in basic constraints must be present, critical, and set to true`);
  }
  if (ext.basicConstraints.pathLen !== undefined && ext.basicConstraints.pathLen < index - 1) {
    throw new ChainError(`certificate with subject "${cert.subject}": expected path length of ${index - 1} but certificate has path length ${ext.basicConstraints.pathLen} instead`);
  }
  if (!ext.keyUsage || !ext.keyUsage.critical) {
    throw new ChainError(`certificate with subject "${cert.subject}": key usage extension must be present and marked critical`);
  }
  if ((ext.keyUsage.usages & KeyUsage.keyCertSign) === 0) {
    throw new ChainError(`certificate with subject "${cert.subject}": key usage must have the bit positions for key cert sign set`);
  }
}

const FORBIDDEN_LEAF_KU: [number, string][] = [
  [KeyUsage.keyEncipherment, 'KeyEncipherment'],
  [KeyUsage.dataEncipherment, 'DataEncipherment'],
  [KeyUsage.keyAgreement, 'KeyAgreement'],
  [KeyUsage.keyCertSign, 'CertSign'],
  [KeyUsage.cRLSign, 'CRLSign'],
  [KeyUsage.encipherOnly, 'EncipherOnly'],
  [KeyUsage.decipherOnly, 'DecipherOnly'],
];

const FORBIDDEN_CODESIGNING_EKU: Record<string, string> = {
  [EKU.serverAuth]: 'ServerAuth',
  [EKU.clientAuth]: 'ClientAuth',
  [EKU.emailProtection]: 'EmailProtection',
  [EKU.timeStamping]: 'TimeStamping',
  [EKU.ocspSigning]: 'OCSPSigning',
};

function validateLeaf(cert: Cert, kind: LeafKind): void {
  const ext = certExtensions(cert);
  if (ext.basicConstraints?.ca) {
    throw new ChainError(`the ${kind === 'codeSigning' ? 'signing' : 'timestamping'} certificate of the certificate chain with subject "${cert.subject}" is invalid: if the basic constraints extension is present, the ca field must be set to false`);
  }
  if (kind === 'codeSigning') {
    if (!ext.keyUsage || !ext.keyUsage.critical) {
      throw new ChainError(`the signing certificate with subject "${cert.subject}" is invalid: key usage extension must be present and marked critical`);
    }
    if ((ext.keyUsage.usages & KeyUsage.digitalSignature) === 0) {
      throw new ChainError(`the signing certificate with subject "${cert.subject}" is invalid: the certificate's key usage must have the digitalSignature bit set`);
    }
    for (const [bit, name] of FORBIDDEN_LEAF_KU) {
      if (ext.keyUsage.usages & bit) {
        throw new ChainError(`the signing certificate with subject "${cert.subject}" is invalid: the certificate's key usage must not have ${name} set`);
      }
    }
    for (const u of ext.extKeyUsage?.usages ?? []) {
      const name = FORBIDDEN_CODESIGNING_EKU[u];
      if (name) throw new ChainError(`the signing certificate with subject "${cert.subject}" is invalid: extended key usage must not contain ${name} eku`);
    }
  } else {
    if (!ext.keyUsage) {
      throw new ChainError(`the timestamping certificate with subject "${cert.subject}" is invalid: key usage extension must be present`);
    }
    if ((ext.keyUsage.usages & KeyUsage.digitalSignature) === 0) {
      throw new ChainError(`the timestamping certificate with subject "${cert.subject}" is invalid: the certificate's key usage must have the digitalSignature bit set`);
    }
    const eku = ext.extKeyUsage;
    if (!eku || eku.usages.length !== 1 || eku.usages[0] !== EKU.timeStamping || !eku.critical) {
      throw new ChainError(`the timestamping certificate with subject "${cert.subject}" is invalid: extended key usage must be present, marked critical, and contain only id-kp-timeStamping`);
    }
  }
  const ka = keyAlgorithm(cert);
  if (!ka) throw new ChainError(`the certificate with subject "${cert.subject}" has an unsupported public key type`);
  if (kind === 'codeSigning') {
    const ok = ka.kind === 'rsa' ? [2048, 3072, 4096].includes(ka.bits) : [256, 384, 521].includes(ka.bits);
    if (!ok) throw new ChainError(`certificate with subject "${cert.subject}": ${ka.kind === 'rsa' ? 'rsa' : 'ecdsa'} key size ${ka.bits} bits is not supported`);
  }
  if (ka.kind === 'rsa' && ka.bits < 2048) throw new ChainError(`certificate with subject "${cert.subject}": rsa key size ${ka.bits} bits is not supported`);
  if (ka.kind === 'ec' && ka.bits < 256) throw new ChainError(`certificate with subject "${cert.subject}": ecdsa key size ${ka.bits} bits is not supported`);
}

const CURVE_BITS: Record<string, number> = { prime256v1: 256, secp384r1: 384, secp521r1: 521 };

export type KeyAlgorithm = { kind: 'rsa' | 'ec'; bits: number; curve?: string } | undefined;

// asymmetricKeyDetails builds a new object from OpenSSL on every read; a certificate's never changes.
const keyAlgorithms = new WeakMap<Cert, KeyAlgorithm>();

export function keyAlgorithm(cert: Cert): KeyAlgorithm {
  if (keyAlgorithms.has(cert)) return keyAlgorithms.get(cert);
  const ka = readKeyAlgorithm(cert);
  keyAlgorithms.set(cert, ka);
  return ka;
}

function readKeyAlgorithm(cert: Cert): KeyAlgorithm {
  const pk = publicKeyOf(cert);
  const d = pk.asymmetricKeyDetails;
  if (pk.asymmetricKeyType === 'rsa') return { kind: 'rsa', bits: d?.modulusLength ?? 0 };
  if (pk.asymmetricKeyType === 'ec' && d?.namedCurve) {
    return { kind: 'ec', bits: CURVE_BITS[d.namedCurve] ?? 0, curve: d.namedCurve };
  }
  return undefined;
}

export interface BuildOptions {
  /** Every cert of the chain must be valid at this time (Go `CurrentTime`). */
  at?: Date;
  /** Issuers must be CA certificates allowed to sign certificates (basicConstraints cA, keyCertSign). */
  issuersMustBeCA?: boolean;
  limits?: Pick<Limits, 'maxChainCandidates' | 'maxChainSignatureChecks' | 'maxChainDepth'>;
  signal?: AbortSignal;
}

/** Signature checks between two turns of the event loop. */
const CHECKS_PER_TURN = 16;

function mayIssue(c: Cert): boolean {
  const ext = certExtensions(c);
  return ext.basicConstraints?.ca === true && (!ext.keyUsage || (ext.keyUsage.usages & KeyUsage.keyCertSign) !== 0);
}

/**
 * Builds a path from `leaf` to a certificate in `roots`, depth first. Certificates are matched by name
 * and signature; roots are identified by DER equality. The work is bounded (see the module comment):
 * K certificates sharing one name and key would otherwise make every ordering of them a candidate path.
 */
export async function buildChain(leaf: Cert, intermediates: Cert[], roots: Cert[], opts: BuildOptions = {}): Promise<Cert[]> {
  const limits = opts.limits ?? DefaultLimits;
  const validAt = (c: Cert) => !opts.at || (opts.at >= c.notBefore && opts.at <= c.notAfter);
  const rootSet = new Set(roots.map((r) => r.sha256));
  const pool: Cert[] = [];
  for (const c of [...roots, ...intermediates]) if (!pool.some((p) => p.sha256 === c.sha256)) pool.push(c);
  const what = `chain building for "${leaf.subject}"`;
  let checks = 0;
  let expiredSeen: Cert | undefined;
  let depthHit = false;
  const visit = async (path: Cert[]): Promise<Cert[] | undefined> => {
    const cur = path[path.length - 1]!;
    if (!validAt(cur)) {
      expiredSeen ??= cur;
      return undefined;
    }
    if (rootSet.has(cur.sha256)) return path;
    if (path.length >= limits.maxChainDepth) {
      depthHit = true;
      return undefined;
    }
    const named = pool.filter((c) => c.rawSubject.equals(cur.rawIssuer));
    if (named.length > limits.maxChainCandidates) {
      throw new LimitError('maxChainCandidates', `${what}: ${named.length} certificates are named "${cur.issuer}", more than ${limits.maxChainCandidates}`);
    }
    for (const cand of named) {
      if (path.some((p) => p.sha256 === cand.sha256)) continue;
      if (opts.issuersMustBeCA && !mayIssue(cand)) continue;
      if (++checks > limits.maxChainSignatureChecks) {
        throw new LimitError('maxChainSignatureChecks', `${what} stopped after ${limits.maxChainSignatureChecks} certificate signature checks`);
      }
      if (checks % CHECKS_PER_TURN === 0) {
        await nextTurn();
        opts.signal?.throwIfAborted();
      }
      if (issuanceError(cur, cand) !== undefined) continue;
      const r = await visit([...path, cand]);
      if (r) return r;
    }
    return undefined;
  };
  const chain = await visit([leaf]);
  if (!chain) {
    if (depthHit) throw new LimitError('maxChainDepth', `${what} found no trusted path of at most ${limits.maxChainDepth} certificates`);
    if (expiredSeen && opts.at) {
      throw new ChainError(`x509: certificate has expired or is not yet valid: certificate "${expiredSeen.subject}" is not valid at ${opts.at.toISOString()}`);
    }
    throw new ChainError('x509: certificate signed by unknown authority');
  }
  return chain;
}
