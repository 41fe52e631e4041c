import type { RegistryReader } from '../../oci/reader.ts';
import type { Descriptor, ImageManifest } from '../../oci/types.ts';
import { LimitError, type Limits } from '../../api/limits.ts';
import { RegistryError } from '../../oci/errors.ts';
import { errorText, fail } from '../errors.ts';
import { parseJSON } from '../../util/json.ts';
import { AnnotationLimits, BUNDLE_MEDIA_TYPE_PREFIX } from './context.ts';
import { SIMPLESIGNING_MEDIA_TYPE } from './payload.ts';

export const BUNDLE_ARTIFACT_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';

/** `sha256:<hex>` → `sha256-<hex>.sig` (cosign `SignatureTag`). */
export function signatureTag(digest: string): string {
  const m = /^([a-z0-9]+):([a-f0-9]+)$/.exec(digest);
  if (!m) fail('unsupported', `not a digest: ${digest}`);
  return `${m[1]}-${m[2]}.sig`;
}

function parseManifest(bytes: Buffer, what: string, limits: Pick<Limits, 'maxJSONDepth'>): ImageManifest {
  let v: unknown;
  try {
    v = parseJSON(bytes, what, limits.maxJSONDepth);
  } catch (err) {
    if (err instanceof LimitError) throw err;
    fail('malformed', `${what} is not valid JSON`);
  }
  const m = v as Partial<ImageManifest> | null;
  if (!m || typeof m !== 'object' || !Array.isArray(m.layers)) fail('malformed', `${what} is not an image manifest`);
  return m as ImageManifest;
}

/**
 * OCI 1.1 referrers of `digest` with the cosign v3 bundle artifactType. Returns their descriptors
 * (the registry client falls back to the referrers tag when the API is missing).
 */
export async function discoverBundles(reader: RegistryReader, digest: string): Promise<Descriptor[]> {
  const refs = await reader.referrers(digest, BUNDLE_ARTIFACT_TYPE);
  return refs.filter((d) => (d.artifactType ?? BUNDLE_ARTIFACT_TYPE).startsWith(BUNDLE_MEDIA_TYPE_PREFIX));
}

/**
 * Loads a referrer manifest and its single bundle layer (cosign `ociremote.Bundle`): exactly one
 * layer whose mediaType starts with application/vnd.dev.sigstore.bundle, and a subject equal to
 * the signed digest.
 */
export async function loadBundle(reader: RegistryReader, ref: Descriptor, digest: string, limits: Limits): Promise<Buffer> {
  const fetched = await fetchOrFail(() => reader.fetchManifest(ref.digest), `referrer manifest ${ref.digest}`);
  if (!fetched) fail('fetch-failed', `referrer manifest ${ref.digest} not found`);
  const m = parseManifest(fetched.bytes, `referrer manifest ${ref.digest}`, limits);
  if (m.subject && m.subject.digest !== digest) {
    fail('digest-mismatch', `referrer manifest subject is ${m.subject.digest}, not ${digest}`);
  }
  const layers = m.layers.filter((l) => typeof l?.mediaType === 'string' && l.mediaType.startsWith(BUNDLE_MEDIA_TYPE_PREFIX));
  if (m.layers.length !== 1 || layers.length !== 1) {
    fail('malformed', `referrer manifest must have exactly one bundle layer (has ${m.layers.length} layers)`);
  }
  const layer = layers[0]!;
  const max = limits.maxEnvelopeSize;
  if (!Number.isSafeInteger(layer.size) || layer.size < 0) fail('malformed', `bundle layer size ${layer.size} is invalid`);
  if (layer.size > max) throw new LimitError('maxEnvelopeSize', `Sigstore bundle ${layer.digest} is ${layer.size} bytes, more than ${max}`);
  return fetchOrFail(() => reader.fetchBlob(layer, { maxBytes: max }), `bundle blob ${layer.digest}`);
}

/** The `.sig` manifest's simple-signing layers, or null when the tag does not exist. */
export async function discoverLegacy(
  reader: RegistryReader,
  digest: string,
  limits: Pick<Limits, 'maxJSONDepth'>,
): Promise<{ manifestDigest: string; layers: Descriptor[]; ignored: number } | null> {
  const fetched = await reader.fetchManifest(signatureTag(digest));
  if (!fetched) return null;
  const m = parseManifest(fetched.bytes, `signature manifest ${signatureTag(digest)}`, limits);
  if (m.layers.length > AnnotationLimits.maxLayers) {
    fail('malformed', `signature manifest has ${m.layers.length} layers, over the ${AnnotationLimits.maxLayers} limit`);
  }
  const layers = m.layers.filter((l) => l?.mediaType === SIMPLESIGNING_MEDIA_TYPE);
  return { manifestDigest: fetched.descriptor.digest, layers, ignored: m.layers.length - layers.length };
}

/** Registry 404s become a per-signature failure; other registry errors propagate. */
async function fetchOrFail<T>(f: () => Promise<T>, what: string): Promise<T> {
  try {
    return await f();
  } catch (err) {
    if (err instanceof RegistryError && !err.isNotFound) throw err;
    return fail('fetch-failed', `${what}: ${errorText(err)}`, err);
  }
}
