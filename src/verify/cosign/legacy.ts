import type { RegistryReader } from '../../oci/reader.ts';
import type { Descriptor } from '../../oci/types.ts';
import { RegistryError } from '../../oci/errors.ts';
import { X509Certificate as NodeX509 } from 'node:crypto';
import type { CosignContext, SignatureResult, TlogInfo } from './context.ts';
import { Limits } from './context.ts';
import { decodeBase64 } from './encoding.ts';
import { fail, errorText } from './errors.ts';
import { fromKeyObject, verifySignature, type VerificationKey } from './keys.ts';
import { checkDigestClaim, parseSimpleSigning } from './payload.ts';
import { parseRekorBundle, verifyRekorBody, verifySET } from './rekor.ts';
import { parseCertificates, verifyCertificateChain, verifyEmbeddedSCTs } from './fulcio.ts';
import { certIdentity, matchIdentity } from './identity.ts';
import { verifyRFC3161Annotation } from './timestamp.ts';

export const Annotations = {
  signature: 'dev.cosignproject.cosign/signature',
  certificate: 'dev.sigstore.cosign/certificate',
  chain: 'dev.sigstore.cosign/chain',
  bundle: 'dev.sigstore.cosign/bundle',
  rfc3161: 'dev.sigstore.cosign/rfc3161timestamp',
} as const;

function annotation(layer: Descriptor, key: string, max: number, required: true): string;
function annotation(layer: Descriptor, key: string, max: number, required: false): string | undefined;
function annotation(layer: Descriptor, key: string, max: number, required: boolean): string | undefined {
  const v = layer.annotations?.[key];
  if (v === undefined || v === '') {
    if (required) fail('malformed', `layer has no ${key} annotation`);
    return undefined;
  }
  if (typeof v !== 'string') fail('malformed', `annotation ${key} is not a string`);
  if (v.length > max) fail('malformed', `annotation ${key} is ${v.length} bytes, over the ${max}-byte limit`);
  return v;
}

/** Fetches the payload blob; registry failures other than 404 propagate (transient). */
async function fetchPayload(reader: RegistryReader, layer: Descriptor): Promise<Buffer> {
  if (!Number.isSafeInteger(layer.size) || layer.size < 0) fail('malformed', 'payload layer has an invalid size');
  if (layer.size > Limits.payloadBytes) {
    fail('malformed', `payload is ${layer.size} bytes, over the ${Limits.payloadBytes}-byte limit`);
  }
  try {
    return await reader.fetchBlob(layer, { maxBytes: Limits.payloadBytes });
  } catch (err) {
    if (err instanceof RegistryError && !err.isNotFound) throw err;
    return fail('fetch-failed', `payload blob ${layer.digest}: ${errorText(err)}`, err);
  }
}

/**
 * Verifies one `application/vnd.dev.cosign.simplesigning.v1+json` layer of a `.sig` manifest.
 * Order of checks (the first failure is reported): annotations → payload → signature →
 * digest claim → Rekor SET and entry binding → (keyless) chain at the signing time, SCT, identity.
 */
export async function verifyLegacyLayer(
  reader: RegistryReader,
  layer: Descriptor,
  digest: string,
  ctx: CosignContext,
  now: Date,
): Promise<SignatureResult> {
  const sig = decodeBase64(annotation(layer, Annotations.signature, Limits.signatureAnnotation, true), 'signature annotation');
  const certPem = annotation(layer, Annotations.certificate, Limits.certificateAnnotation, false);
  const chainPem = annotation(layer, Annotations.chain, Limits.chainAnnotation, false);
  const bundleText = annotation(layer, Annotations.bundle, Limits.bundleAnnotation, false);
  const tsText = annotation(layer, Annotations.rfc3161, Limits.timestampAnnotation, false);
  const rekor = bundleText === undefined ? undefined : parseRekorBundle(bundleText);

  const payload = await fetchPayload(reader, layer);
  const claims = parseSimpleSigning(payload);

  if (ctx.mode.kind === 'key') {
    const key = ctx.mode.keys.find((k) => verifySignature(k, payload, sig));
    if (!key) {
      fail('signature-invalid', `signature does not verify with any configured key (${ctx.mode.keys.map((k) => k.name).join(', ')})`);
    }
    checkDigestClaim(claims, digest);
    let tlog: TlogInfo | undefined;
    if (rekor) {
      verifySET(rekor, ctx.trust.material.tlogs);
      verifyRekorBody(rekor, { signature: sig, payload, spki: key.spki });
      tlog = { logIndex: rekor.logIndex, integratedTime: rekor.integratedTime, logID: rekor.logID };
    }
    return {
      format: 'legacy',
      key: { name: key.name, fingerprint: key.fingerprint, algorithm: key.algorithm },
      ...(tlog ? { tlog } : {}),
    };
  }

  // Keyless.
  if (certPem === undefined) fail('key-mismatch', 'signature has no certificate; keyless verification needs a Fulcio certificate');
  const certs = parseCertificates(certPem, 'certificate annotation');
  const leaf = certs[0];
  if (!leaf) fail('malformed', 'certificate annotation holds no certificate');
  const chain = chainPem === undefined ? [] : parseCertificates(chainPem, 'chain annotation');
  let leafKey: VerificationKey;
  try {
    leafKey = fromKeyObject('certificate', new NodeX509(leaf.root.toDER()).publicKey);
  } catch (err) {
    return fail('malformed', `certificate public key: ${errorText(err)}`);
  }
  if (!verifySignature(leafKey, payload, sig)) fail('signature-invalid', 'signature does not verify with the certificate key');
  checkDigestClaim(claims, digest);

  const trust = ctx.trust.material;
  let at: Date;
  let tlog: TlogInfo | undefined;
  if (rekor) {
    verifySET(rekor, trust.tlogs);
    verifyRekorBody(rekor, { signature: sig, payload, certDer: leaf.root.toDER() });
    tlog = { logIndex: rekor.logIndex, integratedTime: rekor.integratedTime, logID: rekor.logID };
    at = new Date(rekor.integratedTime * 1000);
  } else if (tsText !== undefined && trust.timestampAuthorities.length > 0) {
    at = verifyRFC3161Annotation(tsText, sig, trust.timestampAuthorities);
  } else if (trust.tlogs.length === 0 && trust.timestampAuthorities.length === 0) {
    // A private PKI without a log or TSA (cosign --insecure-ignore-tlog): only the current time
    // can be checked, so the certificate must still be valid.
    at = now;
  } else {
    fail('tlog-missing', 'signature has no Rekor bundle (or RFC 3161 timestamp) proving when it was made; offline verification needs one');
  }
  const path = verifyCertificateChain(leaf, chain, trust.certificateAuthorities, at);
  if (trust.ctlogs.length > 0) {
    const issuer = path[1];
    if (!issuer) fail('chain-invalid', 'the signing certificate is itself trusted; cannot check its SCT');
    verifyEmbeddedSCTs(leaf, issuer, trust.ctlogs);
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
