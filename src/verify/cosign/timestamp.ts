import { RFC3161Timestamp } from '@sigstore/core';
import type { TrustMaterial } from '@sigstore/verify';
type CertAuthority = TrustMaterial['certificateAuthorities'][number];
// Not re-exported from the package index; @sigstore/verify has no "exports" map, so the
// compiled module is addressable. It checks the TSA chain and the token signature.
import { getTSATimestamp } from '@sigstore/verify/dist/timestamp/index.js';
import { decodeBase64 } from './encoding.ts';
import { fail, errorText } from './errors.ts';

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
  try {
    return getTSATimestamp(ts, signature, tsas).timestamp;
  } catch (err) {
    return fail('timestamp-invalid', `RFC 3161 timestamp does not verify: ${errorText(err)}`);
  }
}
