// In-memory RegistryReader for the cosign verifier tests, plus loaders that assemble a registry
// from containers/image `dir-img-*` fixtures the way cosign would have pushed them.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { RegistryReader } from '../../src/oci/reader.ts';
import type { Descriptor, FetchedManifest, ImageManifest } from '../../src/oci/types.ts';
import { MediaTypes } from '../../src/oci/types.ts';
import { RegistryError } from '../../src/oci/errors.ts';

export const SIMPLESIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const BUNDLE_V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';

export function sha256(b: Buffer | string): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

export class MemoryRegistry implements RegistryReader {
  readonly registry: string;
  readonly repository: string;
  readonly manifests = new Map<string, { bytes: Buffer; mediaType: string }>();
  readonly tags = new Map<string, string>();
  readonly blobs = new Map<string, Buffer>();
  /** Every call, for assertions about what was fetched. */
  readonly calls: string[] = [];
  /** When set, referrers() rejects with it (e.g. a 500). */
  referrersError: Error | undefined;

  constructor(registry = 'registry.test', repository = 'org/app') {
    this.registry = registry;
    this.repository = repository;
  }

  putBlob(bytes: Buffer, mediaType = 'application/octet-stream'): Descriptor {
    const digest = sha256(bytes);
    this.blobs.set(digest, bytes);
    return { mediaType, digest, size: bytes.length };
  }

  putManifest(bytes: Buffer, mediaType: string, tag?: string): Descriptor {
    const digest = sha256(bytes);
    this.manifests.set(digest, { bytes, mediaType });
    if (tag) this.tags.set(tag, digest);
    return { mediaType, digest, size: bytes.length };
  }

  putJSONManifest(m: object, tag?: string): Descriptor {
    const mt = (m as { mediaType?: string }).mediaType ?? MediaTypes.ociManifest;
    return this.putManifest(Buffer.from(JSON.stringify(m)), mt, tag);
  }

  async fetchManifest(ref: string, opts?: { maxBytes?: number }): Promise<FetchedManifest | null> {
    this.calls.push(`manifest ${ref}`);
    const digest = ref.startsWith('sha256:') ? ref : this.tags.get(ref);
    const m = digest ? this.manifests.get(digest) : undefined;
    if (!digest || !m) return null;
    if (m.bytes.length > (opts?.maxBytes ?? 4 * 1024 * 1024)) throw new RegistryError('manifest too large', 0);
    return { descriptor: { mediaType: m.mediaType, digest, size: m.bytes.length }, bytes: m.bytes };
  }

  async fetchBlob(desc: Descriptor, opts?: { maxBytes?: number }): Promise<Buffer> {
    this.calls.push(`blob ${desc.digest}`);
    const b = this.blobs.get(desc.digest);
    if (!b) throw new RegistryError(`blob ${desc.digest} unknown`, 404, 'BLOB_UNKNOWN');
    if (b.length > (opts?.maxBytes ?? 32 * 1024 * 1024)) throw new RegistryError('blob too large', 0);
    if (b.length !== desc.size) throw new Error(`blob ${desc.digest}: size ${b.length} != descriptor ${desc.size}`);
    return b;
  }

  async referrers(subjectDigest: string, artifactType?: string): Promise<Descriptor[]> {
    this.calls.push(`referrers ${subjectDigest} ${artifactType ?? ''}`);
    if (this.referrersError) throw this.referrersError;
    const out: Descriptor[] = [];
    for (const [digest, m] of this.manifests) {
      let j: Partial<ImageManifest>;
      try {
        j = JSON.parse(m.bytes.toString('utf8')) as Partial<ImageManifest>;
      } catch {
        continue;
      }
      if (j.subject?.digest !== subjectDigest) continue;
      const at = j.artifactType ?? j.config?.mediaType;
      if (artifactType && at !== artifactType) continue;
      out.push({
        mediaType: m.mediaType,
        digest,
        size: m.bytes.length,
        ...(at ? { artifactType: at } : {}),
        ...(j.annotations ? { annotations: j.annotations } : {}),
      });
    }
    return out;
  }
}

/** One cosign `.sig` layer: the payload bytes, its media type and the layer annotations. */
export interface SigLayer {
  mimeType: string;
  payload: Buffer;
  annotations: Record<string, string>;
}

const SIGSTORE_PREFIX = Buffer.from('\x00sigstore-json\n');

/** Reads a c/image `signature-N` file (`\0sigstore-json\n{mimeType,payload,annotations}`). */
export function readCImageSignature(file: string): SigLayer {
  const raw = readFileSync(file);
  if (!raw.subarray(0, SIGSTORE_PREFIX.length).equals(SIGSTORE_PREFIX)) throw new Error(`${file}: not a sigstore-json signature`);
  const j = JSON.parse(raw.subarray(SIGSTORE_PREFIX.length).toString('utf8')) as {
    mimeType: string; payload: string; annotations: Record<string, string>;
  };
  return { mimeType: j.mimeType, payload: Buffer.from(j.payload, 'base64'), annotations: j.annotations };
}

/** Pushes a `sha256-<hex>.sig` manifest holding `layers`, as cosign / c/image write it. */
export function pushSigManifest(reg: MemoryRegistry, subjectDigest: string, layers: SigLayer[]): Descriptor {
  const descs = layers.map((l) => ({ ...reg.putBlob(l.payload, l.mimeType), annotations: l.annotations }));
  const config = Buffer.from(JSON.stringify({
    architecture: '', os: '', config: {}, rootfs: { type: 'layers', diff_ids: descs.map((d) => d.digest) },
  }));
  const cfg = reg.putBlob(config, 'application/vnd.oci.image.config.v1+json');
  const manifest = { schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: cfg, layers: descs };
  return reg.putJSONManifest(manifest, `${subjectDigest.replace(':', '-')}.sig`);
}

/**
 * A registry built from a c/image `dir-img-*` fixture: `manifest.json` as the image (its digest is
 * the target), and a `.sig` manifest from the `signature-N` files (or the ones named).
 */
export function loadDirImg(dir: string, signatureFiles?: string[]): { registry: MemoryRegistry; target: Descriptor } {
  const reg = new MemoryRegistry();
  const manifestBytes = readFileSync(path.join(dir, 'manifest.json'));
  const mt = (JSON.parse(manifestBytes.toString('utf8')) as { mediaType?: string }).mediaType ?? MediaTypes.dockerManifest;
  const target = reg.putManifest(manifestBytes, mt, 'latest');
  const files = signatureFiles ?? readdirSync(dir).filter((f) => /^signature-\d+$/.test(f)).sort();
  const layers = files.map((f) => readCImageSignature(path.isAbsolute(f) ? f : path.join(dir, f)));
  if (layers.length) pushSigManifest(reg, target.digest, layers);
  return { registry: reg, target };
}

export function fixtureExists(p: string): boolean {
  return existsSync(p);
}

/**
 * Attaches `bundle` (JSON bytes) to `subject` as cosign v3 does (`WriteAttestationNewBundleFormat`):
 * an OCI 1.1 manifest with artifactType and one bundle layer, an empty config and `subject`.
 */
export function pushBundleReferrer(
  reg: MemoryRegistry,
  subject: Descriptor,
  bundle: Buffer,
  opts: { artifactType?: string; layerMediaType?: string; extraLayers?: Descriptor[] } = {},
): Descriptor {
  const at = opts.artifactType ?? BUNDLE_V03;
  const empty = reg.putBlob(Buffer.from('{}'), MediaTypes.ociEmptyJSON);
  const layer = reg.putBlob(bundle, opts.layerMediaType ?? at);
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    config: { ...empty, artifactType: at },
    layers: [layer, ...(opts.extraLayers ?? [])],
    annotations: {
      'dev.sigstore.bundle.content': 'dsse-envelope',
      'dev.sigstore.bundle.predicateType': 'https://sigstore.dev/cosign/sign/v1',
    },
    subject: { mediaType: subject.mediaType, size: subject.size, digest: subject.digest },
    artifactType: at,
  };
  return reg.putJSONManifest(manifest);
}
