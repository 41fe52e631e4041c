import { LimitError } from '../../api/limits.ts';
import type { RegistryReader } from '../../oci/reader.ts';
import type { Descriptor } from '../../oci/types.ts';
import { RegistryError } from '../../oci/errors.ts';
import { errorText, fail } from '../errors.ts';
import type { LegacyContext, SignatureResult, TlogInfo } from './context.ts';
import { AnnotationLimits } from './context.ts';
import { decodeBase64 } from './encoding.ts';
import { verifySignature } from './keys.ts';
import { checkDigestClaim, parseSimpleSigning } from './payload.ts';

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
async function fetchPayload(reader: RegistryReader, layer: Descriptor, max: number): Promise<Buffer> {
  if (!Number.isSafeInteger(layer.size) || layer.size < 0) fail('malformed', 'payload layer has an invalid size');
  if (layer.size > max) throw new LimitError('maxEnvelopeSize', `signed payload ${layer.digest} is ${layer.size} bytes, more than ${max}`);
  try {
    return await reader.fetchBlob(layer, { maxBytes: max });
  } catch (err) {
    if (err instanceof RegistryError && !err.isNotFound) throw err;
    return fail('fetch-failed', `payload blob ${layer.digest}: ${errorText(err)}`, err);
  }
}

/**
 * Verifies one `application/vnd.dev.cosign.simplesigning.v1+json` layer of a `.sig` manifest.
 * Order of checks (the first failure is reported): annotations → payload → signature →
 * digest claim → Rekor SET and entry binding → (keyless) chain at the signing time, SCT, identity.
 * Keyless signatures need the Rekor entry whenever the trusted root lists a transparency log (cosign
 * without --insecure-ignore-tlog, and our bundle path); an RFC 3161 timestamp dates a signature only
 * for a trusted root without a log.
 */
export async function verifyLegacyLayer(reader: RegistryReader, layer: Descriptor, digest: string, ctx: LegacyContext): Promise<SignatureResult> {
  const sig = decodeBase64(annotation(layer, Annotations.signature, AnnotationLimits.signatureAnnotation, true), 'signature annotation');
  const certPem = annotation(layer, Annotations.certificate, AnnotationLimits.certificateAnnotation, false);
  const chainPem = annotation(layer, Annotations.chain, AnnotationLimits.chainAnnotation, false);
  const bundleText = annotation(layer, Annotations.bundle, AnnotationLimits.bundleAnnotation, false);
  const tsText = annotation(layer, Annotations.rfc3161, AnnotationLimits.timestampAnnotation, false);
  // The Rekor code (Sigstore's and ours, X.509 included) loads only for a layer that has an entry.
  const rekorCode = bundleText === undefined ? undefined : await import('./rekor.ts');
  const rekor = rekorCode?.parseRekorBundle(bundleText!);

  const payload = await fetchPayload(reader, layer, ctx.limits.maxEnvelopeSize);
  const claims = parseSimpleSigning(payload, ctx.limits);

  if (ctx.mode.kind === 'key') {
    const key = ctx.mode.keys.find((k) => verifySignature(k, payload, sig));
    if (!key) {
      fail('signature-invalid', `signature does not verify with any configured key (${ctx.mode.keys.map((k) => k.name).join(', ')})`);
    }
    checkDigestClaim(claims, digest);
    let tlog: TlogInfo | undefined;
    if (rekor && rekorCode) {
      rekorCode.verifySET(rekor, (await ctx.trust()).material.tlogs);
      rekorCode.verifyRekorBody(rekor, { signature: sig, payload, spki: key.spki });
      tlog = { logIndex: rekor.logIndex, integratedTime: rekor.integratedTime, logID: rekor.logID };
    }
    return {
      format: 'legacy',
      key: { name: key.name, fingerprint: key.fingerprint, algorithm: key.algorithm },
      ...(tlog ? { tlog } : {}),
    };
  }

  // Keyless: certificates, chains, SCTs, timestamps and identities, loaded with its first use.
  const { verifyKeylessLayer } = await import('./legacy-keyless.ts');
  return verifyKeylessLayer({ sig, certPem, chainPem, tsText, rekor, payload, claims, digest }, { ...ctx, trust: await ctx.trust() });
}
