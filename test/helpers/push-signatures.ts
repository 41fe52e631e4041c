// Pushes cosign signatures to a real registry: `.sig` manifests (legacy) and Sigstore bundles
// as OCI 1.1 referrers (with the referrers tag index, since docker-registry has no Referrers API).
import type { RegistryEndpoint } from '../harness/registry.ts';
import { getManifest, pushBlob, pushManifest, sha256Digest } from '../harness/push.ts';
import type { SigLayer } from './cosign-registry.ts';

const OCIManifest = 'application/vnd.oci.image.manifest.v1+json';
const OCIIndex = 'application/vnd.oci.image.index.v1+json';
export const BundleType = 'application/vnd.dev.sigstore.bundle.v0.3+json';

/** Pushes `sha256-<hex>.sig` with one layer per signature, as cosign does. */
export async function pushCosignSig(ep: RegistryEndpoint, repo: string, subjectDigest: string, layers: SigLayer[]): Promise<string> {
  const descs = [];
  for (const l of layers) {
    const digest = await pushBlob(ep, repo, l.payload);
    descs.push({ mediaType: l.mimeType, digest, size: l.payload.length, annotations: l.annotations });
  }
  const config = Buffer.from(JSON.stringify({ architecture: '', os: '', config: {}, rootfs: { type: 'layers', diff_ids: descs.map((d) => d.digest) } }));
  const cfgDigest = await pushBlob(ep, repo, config);
  const manifest = { schemaVersion: 2, mediaType: OCIManifest, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfgDigest, size: config.length }, layers: descs };
  const res = await pushManifest(ep, repo, `${subjectDigest.replace(':', '-')}.sig`, manifest, OCIManifest);
  return res.digest;
}

/**
 * Pushes a referrer manifest (`subject` = the artifact) holding `blob` as its one layer, and adds
 * it to the `sha256-<hex>` referrers tag index (created or extended), as oras and cosign do on
 * registries without the Referrers API.
 */
export async function pushReferrer(ep: RegistryEndpoint, repo: string, subject: { digest: string; size: number; mediaType: string }, artifactType: string, blob: Buffer, layerMediaType: string, opts: { configMediaType?: string; annotations?: Record<string, string> } = {}): Promise<string> {
  const blobDigest = await pushBlob(ep, repo, blob);
  const emptyDigest = await pushBlob(ep, repo, Buffer.from('{}'));
  const manifest = {
    schemaVersion: 2,
    mediaType: OCIManifest,
    artifactType,
    config: { mediaType: opts.configMediaType ?? 'application/vnd.oci.empty.v1+json', digest: emptyDigest, size: 2 },
    layers: [{ mediaType: layerMediaType, digest: blobDigest, size: blob.length }],
    subject,
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
  };
  const pushed = await pushManifest(ep, repo, undefined, manifest, OCIManifest);
  const tag = subject.digest.replace(':', '-');
  const existing = await getManifest(ep, repo, tag, { accept: OCIIndex });
  const index = existing.status === 200 ? (JSON.parse(existing.bytes.toString()) as { manifests: unknown[] }) : { schemaVersion: 2, mediaType: OCIIndex, manifests: [] as unknown[] };
  index.manifests.push({ mediaType: OCIManifest, digest: pushed.digest, size: pushed.bytes.length, artifactType, ...(opts.annotations ? { annotations: opts.annotations } : {}) });
  await pushManifest(ep, repo, tag, index, OCIIndex);
  return pushed.digest;
}

export { sha256Digest };
