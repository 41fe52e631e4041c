// The keyless half of a legacy `.sig` layer (see legacy.ts, which has already checked the
// annotations and fetched and parsed the payload): the Fulcio certificate's key, the Rekor entry or
// RFC 3161 timestamp that dates the signature, the chain at that time, the SCT, the identity.
import { LimitError } from '../../api/limits.ts';
import { errorText, fail } from '../errors.ts';
import { parseJSON } from '../../util/json.ts';
import { publicKeyOf } from '../x509/certs.ts';
import { parseTimestampResponse, tokenSignedBy, tsaEKUProblem, verifyTimestampByAuthority, type TimestampToken } from '../x509/timestamp.ts';
import type { CheckContext, SignatureResult, TlogInfo } from './context.ts';
import { decodeBase64 } from './encoding.ts';
import { parsePEMCertificates, verifyCertificateChain, verifyEmbeddedSCTs } from './fulcio.ts';
import { certIdentity, matchIdentity } from './identity.ts';
import { fromKeyObject, verifySignature, type VerificationKey } from './keys.ts';
import { checkDigestClaim, type SimpleSigningClaims } from './payload.ts';
import { verifyRekorBody, verifySET, type RekorBundle } from './rekor.ts';
import type { CertificateAuthority } from './trustroot.ts';

/** What legacy.ts read from the layer. */
export interface KeylessLayer {
  sig: Buffer;
  certPem: string | undefined;
  chainPem: string | undefined;
  tsText: string | undefined;
  rekor: RekorBundle | undefined;
  payload: Buffer;
  claims: SimpleSigningClaims;
  digest: string;
}

/**
 * The `dev.sigstore.cosign/rfc3161timestamp` annotation: JSON {"SignedRFC3161Timestamp": base64 DER
 * TimeStampResp} over the raw signature bytes, verified against the trusted root's timestamp authorities
 * (x509/timestamp.ts). Returns the signing time.
 */
async function timestampFromAnnotation(text: string, signature: Buffer, tsas: CertificateAuthority[], ctx: Pick<CheckContext, 'limits' | 'signal'>): Promise<Date> {
  let v: unknown;
  try {
    v = parseJSON(text, 'RFC 3161 timestamp annotation', ctx.limits.maxJSONDepth);
  } catch (err) {
    if (err instanceof LimitError) throw err;
    fail('malformed', 'RFC 3161 timestamp annotation is not valid JSON');
  }
  const b64 = (v as { SignedRFC3161Timestamp?: unknown } | null)?.SignedRFC3161Timestamp;
  if (typeof b64 !== 'string') fail('malformed', 'RFC 3161 timestamp annotation lacks SignedRFC3161Timestamp');
  let token: TimestampToken;
  try {
    token = parseTimestampResponse(decodeBase64(b64, 'RFC 3161 timestamp'), ctx.limits);
  } catch (err) {
    if (err instanceof LimitError) throw err;
    return fail('malformed', `RFC 3161 timestamp does not parse: ${errorText(err)}`);
  }
  // TSAs whose certificate may not sign timestamps cannot vouch for a time (sigstore/timestamp-authority);
  // name the problem of the one that signed rather than a bare "could not be verified".
  const usable = tsas.filter((a) => a.certChain[0] !== undefined && tsaEKUProblem(a.certChain[0]) === undefined);
  const signedBy = (a: CertificateAuthority) => a.certChain[0] !== undefined && tokenSignedBy(token, a.certChain[0]);
  if (!usable.some(signedBy)) {
    const bad = tsas.find(signedBy)?.certChain[0];
    if (bad) fail('timestamp-invalid', `RFC 3161 timestamp does not verify: TSA certificate '${bad.node.subject.replace(/\n/g, ', ')}' ${tsaEKUProblem(bad)}`);
  }
  try {
    return await verifyTimestampByAuthority(token, signature, usable, { limits: ctx.limits, ...(ctx.signal ? { signal: ctx.signal } : {}) });
  } catch (err) {
    if (err instanceof LimitError || ctx.signal?.aborted) throw err;
    return fail('timestamp-invalid', `RFC 3161 timestamp does not verify: ${errorText(err)}`);
  }
}

export async function verifyKeylessLayer(layer: KeylessLayer, ctx: CheckContext): Promise<SignatureResult> {
  const { sig, certPem, chainPem, tsText, rekor, payload, claims, digest } = layer;
  if (ctx.mode.kind !== 'keyless') throw new Error('verifyKeylessLayer needs a keyless context');
  if (certPem === undefined) fail('key-mismatch', 'signature has no certificate; keyless verification needs a Fulcio certificate');
  const certs = parsePEMCertificates(certPem, 'certificate annotation', ctx.limits);
  const leaf = certs[0];
  if (!leaf) fail('malformed', 'certificate annotation holds no certificate');
  const chain = chainPem === undefined ? [] : parsePEMCertificates(chainPem, 'chain annotation', ctx.limits);
  let leafKey: VerificationKey;
  try {
    leafKey = fromKeyObject('certificate', publicKeyOf(leaf));
  } catch (err) {
    return fail('malformed', `certificate public key: ${errorText(err)}`);
  }
  if (!verifySignature(leafKey, payload, sig)) fail('signature-invalid', 'signature does not verify with the certificate key');
  checkDigestClaim(claims, digest);

  const trust = ctx.trust;
  const tlogs = trust.material.tlogs;
  let at: Date;
  let tlog: TlogInfo | undefined;
  if (rekor) {
    verifySET(rekor, tlogs);
    verifyRekorBody(rekor, { signature: sig, payload, certDer: leaf.der });
    tlog = { logIndex: rekor.logIndex, integratedTime: rekor.integratedTime, logID: rekor.logID };
    at = new Date(rekor.integratedTime * 1000);
  } else if (tlogs.length > 0) {
    fail('tlog-missing', `signature has no Rekor bundle; the trusted root (${trust.source}) lists a transparency log, so its entry is required${tsText !== undefined ? ' (an RFC 3161 timestamp does not replace it)' : ''}`);
  } else if (tsText !== undefined && trust.timestampAuthorities.length > 0) {
    at = await timestampFromAnnotation(tsText, sig, trust.timestampAuthorities, ctx);
  } else if (trust.timestampAuthorities.length === 0) {
    // A private PKI without a log or TSA (cosign --insecure-ignore-tlog): only the current time
    // can be checked, so the certificate must still be valid.
    at = ctx.now;
  } else {
    fail('tlog-missing', 'signature has no RFC 3161 timestamp proving when it was made; the trusted root lists timestamp authorities and no transparency log');
  }
  const path = await verifyCertificateChain(leaf, chain, trust.certificateAuthorities, at, ctx.limits, ctx.signal);
  if (trust.material.ctlogs.length > 0) {
    const issuer = path[1];
    if (!issuer) fail('chain-invalid', 'the signing certificate is itself trusted; cannot check its SCT');
    verifyEmbeddedSCTs(leaf, issuer, trust.material.ctlogs);
  }
  const id = certIdentity(leaf);
  const rule = matchIdentity(id, ctx.mode.rules);
  return {
    format: 'legacy',
    identity: { issuer: id.issuer, subjects: id.sans, matched: rule.source },
    signingTime: at.toISOString(),
    ...(tlog ? { tlog } : {}),
  };
}
