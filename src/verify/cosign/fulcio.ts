import { createHash } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { TrustMaterial } from '@sigstore/verify';
import { LimitError, type Limits } from '../../api/limits.ts';
import { errorText, fail } from '../errors.ts';
import { certExtensions, EKU, parseCertificate, type Cert, publicKeyOf } from '../x509/certs.ts';
import { buildChain, ChainError } from '../x509/chain.ts';
import { embeddedSCTs } from '../x509/sct.ts';
import { pemBlocks } from './encoding.ts';
import type { CertificateAuthority } from './trustroot.ts';

type TLogAuthority = TrustMaterial['tlogs'][number];

/** Every CERTIFICATE PEM block (other block types are malformed), within the certificate budgets. */
export function parsePEMCertificates(pem: string, what: string, limits: Pick<Limits, 'maxCertificates' | 'maxCertificateSize'>): Cert[] {
  const blocks = pemBlocks(pem);
  if (blocks.length > limits.maxCertificates) throw new LimitError('maxCertificates', `${what} holds ${blocks.length} certificates, more than ${limits.maxCertificates}`);
  return blocks.map((b, i) => {
    if (b.type !== 'CERTIFICATE') fail('malformed', `${what}: PEM block ${i + 1} is '${b.type}', not CERTIFICATE`);
    try {
      return parseCertificate(b.der, limits);
    } catch (err) {
      if (err instanceof LimitError) throw err;
      return fail('malformed', `${what}: certificate ${i + 1} does not parse: ${errorText(err)}`);
    }
  });
}

/**
 * The leaf's extended key usage must allow code signing. As in Go's x509.Verify (which cosign
 * uses), a certificate without an EKU extension is valid for any usage, and anyExtendedKeyUsage
 * counts; Fulcio always sets code signing.
 */
export function allowsCodeSigning(cert: Cert): boolean {
  const eku = certExtensions(cert).extKeyUsage;
  return !eku || eku.usages.includes(EKU.codeSigning) || eku.usages.includes(EKU.any);
}

/**
 * Chain validation as cosign does it for Fulcio certificates, at time `at` (the Rekor
 * integratedTime or an RFC 3161 time, never wall clock for expired short-lived certs):
 * - the leaf is valid at `at`, is not a CA and has the code-signing EKU;
 * - a path leads to a certificate of one certificate authority of the trusted root whose
 *   validity window contains `at`, through CA certificates (from that authority or from the
 *   signature's chain annotation) that are valid at `at` and whose signatures verify
 *   (x509/chain.ts, within the chain-building budgets).
 * Returns [leaf, issuer, …] up to the trusted certificate.
 */
export async function verifyCertificateChain(leaf: Cert, untrusted: Cert[], cas: CertificateAuthority[], at: Date, limits: Limits, signal?: AbortSignal): Promise<Cert[]> {
  if (at < leaf.notBefore || at > leaf.notAfter) {
    fail('certificate-time-invalid', `signing time ${at.toISOString()} is outside the certificate validity ${leaf.notBefore.toISOString()}..${leaf.notAfter.toISOString()}`);
  }
  if (certExtensions(leaf).basicConstraints?.ca) fail('chain-invalid', 'the signing certificate is a CA certificate');
  if (!allowsCodeSigning(leaf)) fail('chain-invalid', 'the signing certificate lacks the code-signing extended key usage');
  const live = cas.filter((ca) => ca.validFor.start <= at && at <= ca.validFor.end);
  if (live.length === 0) fail('chain-invalid', `no certificate authority in the trusted root is valid at ${at.toISOString()}`);
  let lastReason = 'no path to a trusted root';
  for (const ca of live) {
    // One chain attempt per authority: let the event loop turn between them.
    await nextTurn();
    signal?.throwIfAborted();
    try {
      return await buildChain(leaf, untrusted, ca.certChain, { at, issuersMustBeCA: true, limits, ...(signal ? { signal } : {}) });
    } catch (err) {
      if (!(err instanceof ChainError)) throw err;
      lastReason = err.message;
    }
  }
  return fail('chain-invalid', `certificate chain does not verify to the trusted root's Fulcio CAs: ${lastReason}`);
}

/**
 * RFC 6962 embedded SCT check: at least one SCT in the leaf verifies with a CT log key of the
 * trusted root (valid at the SCT time), over the precertificate TBS (the leaf TBS without the SCT
 * extension) and the issuer key hash. Returns the verifying log IDs (hex).
 */
export function verifyEmbeddedSCTs(leaf: Cert, issuer: Cert, ctlogs: TLogAuthority[]): string[] {
  let found: ReturnType<typeof embeddedSCTs>;
  try {
    found = embeddedSCTs(leaf);
  } catch (err) {
    return fail('sct-invalid', `embedded SCT list does not parse: ${errorText(err)}`);
  }
  if (!found) fail('sct-missing', 'the signing certificate has no embedded SCT');
  if (found.scts.length === 0) fail('sct-missing', 'the embedded SCT list is empty');
  const issuerKeyHash = createHash('sha256').update(publicKeyOf(issuer).export({ format: 'der', type: 'spki' })).digest();
  const tbs = found.precertTBS;
  const length = Buffer.from([(tbs.length >> 16) & 0xff, (tbs.length >> 8) & 0xff, tbs.length & 0xff]);
  const pre = Buffer.concat([issuerKeyHash, length, tbs]);
  const verified: string[] = [];
  for (const sct of found.scts) {
    const logs = ctlogs.filter((l) => l.logID.equals(sct.logID) && l.validFor.start <= sct.datetime && sct.datetime <= l.validFor.end);
    const ok = logs.some((l) => {
      try {
        return sct.verify(pre, l.publicKey);
      } catch {
        return false;
      }
    });
    if (ok) verified.push(sct.logID.toString('hex'));
  }
  if (verified.length === 0) fail('sct-invalid', 'no embedded SCT verifies with a CT log key of the trusted root');
  return verified;
}
