// Trust stores from Secret keys.
//
// `<type>.<store>.pem|crt` (type = ca | signingAuthority | tsa) belongs to that named store only.
// Any other `*.pem` / `*.crt` key is "global": trusted for every store the policy names (as Flux does).
// Certificates are checked as notation-go's file store does: ca/signingAuthority certs must be a CA or
// self-signed; tsa certs must be self-signed roots (self-issued). Global certs are checked against the
// ca rule at load time and only their roots are used for tsa stores.

import { DefaultLimits, LimitError } from '../../api/limits.ts';
import { VerifyConfigError } from '../types.ts';
import { certExtensions, isCA, isSelfIssued, isSelfSigned, issuanceError, KeyUsage, parseCertificates, type Cert } from '../x509/certs.ts';
import type { TrustStoreType } from './trustpolicy.ts';

export interface StoreCert {
  cert: Cert;
  /** Secret key the certificate came from. */
  key: string;
  /** True when the key is not named `<type>.<store>.*` (trusted for every store). */
  global: boolean;
}

export interface TrustStores {
  /** `${type}:${name}` → certificates from keys named for that store. */
  named: Map<string, StoreCert[]>;
  global: StoreCert[];
  /** Every certificate key with its DER certs, sorted by key (for the fingerprint). */
  keys: { key: string; certs: Cert[] }[];
}

const NAMED_KEY_RE = /^(ca|signingAuthority|tsa)\.(.+)\.(pem|crt)$/;
const CERT_KEY_RE = /\.(pem|crt)$/;

export function loadTrustStores(secretName: string, data: Record<string, Buffer>): TrustStores {
  const named = new Map<string, StoreCert[]>();
  const global: StoreCert[] = [];
  const keys: { key: string; certs: Cert[] }[] = [];
  const max = DefaultLimits.maxTrustedCertificates;
  let total = 0;
  for (const key of Object.keys(data).sort()) {
    if (!CERT_KEY_RE.test(key)) continue;
    let certs: Cert[];
    try {
      certs = parseCertificates(data[key]!, undefined, max - total);
    } catch (e) {
      if (e instanceof LimitError) throw new LimitError('maxTrustedCertificates', `secret ${secretName}: the trust stores hold more than ${max} certificates (key '${key}')`);
      throw new VerifyConfigError('invalid-certificate', `secret ${secretName}: key '${key}': failed to read the trusted certificate: ${(e as Error).message}`);
    }
    const m = NAMED_KEY_RE.exec(key);
    const type = m?.[1] as TrustStoreType | undefined;
    for (const cert of certs) {
      if (type === 'tsa') {
        const err = rootCAError(cert);
        if (err) throw new VerifyConfigError('invalid-certificate', `secret ${secretName}: key '${key}': failed to validate the trusted certificate "${cert.subject}": ${err}`);
      } else if (!isCA(cert) && !isSelfSigned(cert)) {
        throw new VerifyConfigError(
          'invalid-certificate',
          `secret ${secretName}: key '${key}': failed to validate the trusted certificate "${cert.subject}": certificate with subject "${cert.subject}" is not a CA certificate or self-signed signing certificate`,
        );
      }
    }
    total += certs.length;
    keys.push({ key, certs });
    if (m && type) {
      const id = `${type}:${m[2]}`;
      const list = named.get(id) ?? [];
      list.push(...certs.map((cert) => ({ cert, key, global: false })));
      named.set(id, list);
    } else {
      global.push(...certs.map((cert) => ({ cert, key, global: true })));
    }
  }
  return { named, global, keys };
}

/** Why `cert` is not a root CA (self-issued, CA, signature verifies with its own key), or undefined. */
export function rootCAError(cert: Cert): string | undefined {
  if (!isSelfIssued(cert)) return `certificate with subject "${cert.subject}" is not a root certificate: issuer (${cert.issuer}) and subject (${cert.subject}) are not the same`;
  const err = issuanceError(cert, cert);
  if (err) return `certificate with subject "${cert.subject}" is not a root CA certificate: ${err}`;
  const ext = certExtensions(cert);
  if (cert.pkijs.version >= 2 && !ext.basicConstraints?.ca) {
    return `certificate with subject "${cert.subject}" is not a root CA certificate: x509: invalid signature: parent certificate cannot sign this kind of certificate`;
  }
  if (ext.keyUsage && (ext.keyUsage.usages & KeyUsage.keyCertSign) === 0) {
    return `certificate with subject "${cert.subject}" is not a root CA certificate: its key usage lacks keyCertSign`;
  }
  return undefined;
}

export class TrustStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrustStoreError';
  }
}

/**
 * Certificates of the statement's stores of `type` (de-duplicated), as notation-go `loadX509TrustStores`:
 * a referenced store with no certificate is an error.
 */
export function certificatesFor(stores: TrustStores, trustStoreRefs: string[], type: TrustStoreType): StoreCert[] {
  const out: StoreCert[] = [];
  const seen = new Set<string>();
  for (const ref of new Set(trustStoreRefs)) {
    const i = ref.indexOf(':');
    if (i < 0) throw new TrustStoreError(`error while loading the trust store, trust policy statement is missing separator in trust store value "${ref}". The required format <TrustStoreType>:<TrustStoreName>`);
    if (ref.slice(0, i) !== type) continue;
    const name = ref.slice(i + 1);
    let certs = [...(stores.named.get(ref) ?? []), ...stores.global];
    if (type === 'tsa') certs = certs.filter((c) => !c.global || rootCAError(c.cert) === undefined);
    if (certs.length === 0) throw new TrustStoreError(`the trust store "${name}" of type "${type}" does not exist`);
    for (const c of certs) {
      if (seen.has(c.cert.sha256)) continue;
      seen.add(c.cert.sha256);
      out.push(c);
    }
  }
  return out;
}
