import { RFC3161Timestamp, X509Certificate } from '@sigstore/core';
import type { TrustMaterial } from '@sigstore/verify';
type CertAuthority = TrustMaterial['certificateAuthorities'][number];
// Not re-exported from the package index; @sigstore/verify has no "exports" map, so the
// compiled module is addressable. It checks the TSA chain and the token signature.
import { getTSATimestamp } from '@sigstore/verify/dist/timestamp/index.js';
import { X509Certificate as NodeX509 } from 'node:crypto';
import { decodeBase64 } from './encoding.ts';
import { fail, errorText } from './errors.ts';

const OID_EKU = '2.5.29.37';
const OID_EKU_TIMESTAMPING = '1.3.6.1.5.5.7.3.8';

/**
 * Why a TSA signing certificate may not sign timestamps, or undefined when it may. As
 * sigstore/timestamp-authority's `verifyExtendedKeyUsage` (used by sigstore-go and cosign):
 * exactly one extended key usage, id-kp-timeStamping (RFC 3161 §2.3). RFC 3161 also wants the
 * extension critical, but public-good TSA certificates in circulation do not mark it, and Go
 * does not check it, so neither do we. @sigstore/verify does not check the EKU at all.
 */
export function tsaCertificateProblem(cert: X509Certificate): string | undefined {
  const ext = cert.extension(OID_EKU);
  if (!ext) return 'has no extended key usage (timeStamping is required)';
  const seq = ext.valueObj.subs[0];
  const oids = (seq?.subs ?? []).filter((o) => o.tag.isOID()).map((o) => o.toOID());
  if (oids.length !== 1 || oids[0] !== OID_EKU_TIMESTAMPING) {
    return `has extended key usages [${oids.join(', ')}]; exactly one, timeStamping (${OID_EKU_TIMESTAMPING}), is required`;
  }
  return undefined;
}

function subjectOf(cert: X509Certificate): string {
  try {
    return new NodeX509(cert.root.toDER()).subject.replace(/\n/g, ', ');
  } catch {
    return '(unparsable subject)';
  }
}

/** The trusted root's TSAs whose signing certificate may sign timestamps (see tsaCertificateProblem). */
export function timestampingAuthorities(tsas: CertAuthority[]): CertAuthority[] {
  return tsas.filter((ca) => ca.certChain[0] !== undefined && tsaCertificateProblem(ca.certChain[0]) === undefined);
}

/**
 * The `dev.sigstore.cosign/rfc3161timestamp` annotation: JSON {"SignedRFC3161Timestamp": base64 DER
 * TimeStampResp} over the raw signature bytes. Verified against the trusted root's TSAs; returns
 * the signing time.
 */
export function verifyRFC3161Annotation(text: string, signature: Buffer, tsas: CertAuthority[]): Date {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    fail('malformed', 'RFC 3161 timestamp annotation is not valid JSON');
  }
  const b64 = (v as { SignedRFC3161Timestamp?: unknown } | null)?.SignedRFC3161Timestamp;
  if (typeof b64 !== 'string') fail('malformed', 'RFC 3161 timestamp annotation lacks SignedRFC3161Timestamp');
  const der = decodeBase64(b64, 'RFC 3161 timestamp');
  let ts: RFC3161Timestamp;
  try {
    ts = RFC3161Timestamp.parse(Buffer.from(der));
  } catch (err) {
    return fail('malformed', `RFC 3161 timestamp does not parse: ${errorText(err)}`);
  }
  if (tsas.length === 0) fail('timestamp-invalid', 'the trusted root has no timestamp authorities');
  // The TSA that signed the token is picked by issuer and serial number (as @sigstore/verify does);
  // name its certificate's problem rather than a bare "could not be verified".
  const usable = timestampingAuthorities(tsas);
  const signer = (ca: CertAuthority): boolean =>
    ca.certChain[0] !== undefined && ca.certChain[0].serialNumber.equals(ts.signerSerialNumber) && ca.certChain[0].issuer.equals(ts.signerIssuer);
  if (!usable.some(signer)) {
    const bad = tsas.find(signer);
    if (bad) fail('timestamp-invalid', `RFC 3161 timestamp does not verify: TSA certificate '${subjectOf(bad.certChain[0]!)}' ${tsaCertificateProblem(bad.certChain[0]!)}`);
  }
  try {
    return getTSATimestamp(ts, signature, usable).timestamp;
  } catch (err) {
    return fail('timestamp-invalid', `RFC 3161 timestamp does not verify: ${errorText(err)}`);
  }
}
