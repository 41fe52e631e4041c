import { X509Certificate, crypto as scrypto, EXTENSION_OID_SCT, X509SCTExtension, ByteStream } from '@sigstore/core';
import type { TrustMaterial } from '@sigstore/verify';
type CertAuthority = TrustMaterial['certificateAuthorities'][number];
type TLogAuthority = TrustMaterial['tlogs'][number];
import { pemBlocks } from './encoding.ts';
import { fail, errorText } from './errors.ts';

const OID_EKU = '2.5.29.37';
const OID_EKU_CODE_SIGNING = '1.3.6.1.5.5.7.3.3';
const OID_EKU_ANY = '2.5.29.37.0';
const MAX_DEPTH = 8;

/** Parses every CERTIFICATE PEM block; other block types are malformed. */
export function parseCertificates(pem: string, what: string): X509Certificate[] {
  const blocks = pemBlocks(pem);
  return blocks.map((b, i) => {
    if (b.type !== 'CERTIFICATE') fail('malformed', `${what}: PEM block ${i + 1} is '${b.type}', not CERTIFICATE`);
    try {
      return X509Certificate.parse(Buffer.from(b.der));
    } catch (err) {
      return fail('malformed', `${what}: certificate ${i + 1} does not parse: ${errorText(err)}`);
    }
  });
}

/**
 * The leaf's extended key usage must allow code signing. As in Go's x509.Verify (which cosign
 * uses), a certificate without an EKU extension is valid for any usage, and anyExtendedKeyUsage
 * counts; Fulcio always sets code signing.
 */
export function allowsCodeSigning(cert: X509Certificate): boolean {
  const ext = cert.extension(OID_EKU);
  if (!ext) return true;
  // extnValue OCTET STRING → SEQUENCE OF KeyPurposeId
  const seq = ext.valueObj.subs[0];
  if (!seq) return false;
  return seq.subs.some((o) => o.tag.isOID() && (o.toOID() === OID_EKU_CODE_SIGNING || o.toOID() === OID_EKU_ANY));
}

/**
 * Chain validation as cosign does it for Fulcio certificates, at time `at` (the Rekor
 * integratedTime or an RFC 3161 time, never wall clock for expired short-lived certs):
 * - the leaf is valid at `at`, is not a CA and has the code-signing EKU;
 * - a path leads to a certificate of one certificate authority of the trusted root whose
 *   validity window contains `at`, through CA certificates (from that authority or from the
 *   signature's chain annotation) that are valid at `at` and whose signatures verify.
 * Returns [leaf, issuer, …] up to the trusted certificate.
 */
export function verifyCertificateChain(
  leaf: X509Certificate,
  untrusted: X509Certificate[],
  cas: CertAuthority[],
  at: Date,
): X509Certificate[] {
  if (!leaf.validForDate(at)) {
    fail(
      'certificate-time-invalid',
      `signing time ${at.toISOString()} is outside the certificate validity ${leaf.notBefore.toISOString()}..${leaf.notAfter.toISOString()}`,
    );
  }
  if (leaf.isCA) fail('chain-invalid', 'the signing certificate is a CA certificate');
  if (!allowsCodeSigning(leaf)) fail('chain-invalid', 'the signing certificate lacks the code-signing extended key usage');
  const live = cas.filter((ca) => ca.validFor.start <= at && at <= ca.validFor.end);
  if (live.length === 0) fail('chain-invalid', `no certificate authority in the trusted root is valid at ${at.toISOString()}`);
  let lastReason = 'no path to a trusted root';
  for (const ca of live) {
    const trusted = ca.certChain;
    const pool = [...trusted, ...untrusted];
    const path = [leaf];
    let cur = leaf;
    for (let depth = 0; depth < MAX_DEPTH; depth++) {
      if (trusted.some((t) => t.equals(cur))) return path;
      const issuer = pool.find((c) => !path.some((p) => p.equals(c)) && safeVerify(cur, c));
      if (!issuer) {
        lastReason = `no trusted issuer found for ${depth === 0 ? 'the signing certificate' : 'an intermediate'}`;
        break;
      }
      if (!issuer.isCA) {
        lastReason = 'an issuing certificate is not a CA';
        break;
      }
      const ku = issuer.extKeyUsage;
      if (ku && !ku.keyCertSign) {
        lastReason = 'an issuing certificate may not sign certificates';
        break;
      }
      if (!issuer.validForDate(at)) {
        lastReason = `an issuing certificate is not valid at ${at.toISOString()}`;
        break;
      }
      path.push(issuer);
      cur = issuer;
    }
  }
  return fail('chain-invalid', `certificate chain does not verify to the trusted root's Fulcio CAs: ${lastReason}`);
}

function safeVerify(cert: X509Certificate, issuer: X509Certificate): boolean {
  if (!cert.issuer.equals(issuer.subject)) return false;
  try {
    return cert.verify(issuer);
  } catch {
    return false;
  }
}

/**
 * RFC 6962 embedded SCT check: at least one SCT in the leaf verifies with a CT log key of the
 * trusted root (valid at the SCT time), over the precertificate TBS (the leaf TBS without the SCT
 * extension) and the issuer key hash. Returns the verifying log IDs (hex).
 */
export function verifyEmbeddedSCTs(leaf: X509Certificate, issuer: X509Certificate, ctlogs: TLogAuthority[]): string[] {
  const clone = leaf.clone();
  const idx = clone.extensions.findIndex((e) => e.subs[0]?.toOID() === EXTENSION_OID_SCT);
  if (idx < 0) fail('sct-missing', 'the signing certificate has no embedded SCT');
  const extObj = clone.extensions[idx]!;
  let scts;
  try {
    scts = new X509SCTExtension(extObj).signedCertificateTimestamps;
  } catch (err) {
    return fail('sct-invalid', `embedded SCT list does not parse: ${errorText(err)}`);
  }
  if (scts.length === 0) fail('sct-missing', 'the embedded SCT list is empty');
  clone.extensions.splice(idx, 1);
  const tbs = clone.tbsCertificate.toDER();
  const pre = new ByteStream();
  pre.appendView(scrypto.digest('sha256', issuer.publicKey));
  pre.appendUint24(tbs.length);
  pre.appendView(tbs);
  const verified: string[] = [];
  for (const sct of scts) {
    const logs = ctlogs.filter(
      (l) => l.logID.equals(sct.logID) && l.validFor.start <= sct.datetime && sct.datetime <= l.validFor.end,
    );
    const ok = logs.some((l) => {
      try {
        return sct.verify(pre.buffer, l.publicKey);
      } catch {
        return false;
      }
    });
    if (ok) verified.push(sct.logID.toString('hex'));
  }
  if (verified.length === 0) fail('sct-invalid', 'no embedded SCT verifies with a CT log key of the trusted root');
  return verified;
}
