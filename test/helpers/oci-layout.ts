// An in-memory RegistryReader over an OCI image layout (index.json + blobs/sha256), for tests.
// Referrers are found either through manifests' `subject` (like the OCI 1.1 Referrers API, with the
// descriptor's artifactType = manifest artifactType or config.mediaType) or through the referrers tag
// schema (`sha256-<hex>` ref name in index.json). Digests and sizes are verified like the real client.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { RegistryReader } from '../../src/oci/reader.ts';
import type { Descriptor, FetchedManifest, ImageIndex, ImageManifest } from '../../src/oci/types.ts';

export interface LayoutOptions {
  registry?: string;
  repository?: string;
  /** 'api' (default): scan manifests' subject. 'tag': the `sha256-<hex>` index only. */
  referrers?: 'api' | 'tag';
}

export function sha256(b: Uint8Array): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

/** The `mediaType` of a manifest blob, as the registry client reads it (anything unparsable has none). */
function mediaTypeOf(b: Buffer): string | undefined {
  try {
    const v = (JSON.parse(b.toString('utf8')) as { mediaType?: unknown } | null)?.mediaType;
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

export class OCILayoutReader implements RegistryReader {
  readonly registry: string;
  readonly repository: string;
  readonly blobs: Map<string, Buffer>;
  index: ImageIndex;
  readonly mode: 'api' | 'tag';
  /** Calls made, for assertions. */
  readonly calls: string[] = [];

  constructor(index: ImageIndex, blobs: Map<string, Buffer>, opts: LayoutOptions = {}) {
    this.index = index;
    this.blobs = blobs;
    this.registry = opts.registry ?? 'localhost:5000';
    this.repository = opts.repository ?? 'e2e';
    this.mode = opts.referrers ?? 'api';
  }

  static fromDir(dir: string, opts: LayoutOptions = {}): OCILayoutReader {
    const index = JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8')) as ImageIndex;
    const blobs = new Map<string, Buffer>();
    const bdir = path.join(dir, 'blobs', 'sha256');
    if (existsSync(bdir)) for (const f of readdirSync(bdir)) blobs.set(`sha256:${f}`, readFileSync(path.join(bdir, f)));
    return new OCILayoutReader(index, blobs, opts);
  }

  /** Adds a blob and returns its descriptor. */
  put(mediaType: string, bytes: Buffer, extra: Partial<Descriptor> = {}): Descriptor {
    const digest = sha256(bytes);
    this.blobs.set(digest, bytes);
    return { mediaType, digest, size: bytes.length, ...extra };
  }

  /** Adds a manifest blob and lists it in index.json (optionally with a tag). */
  putManifest(manifest: unknown, opts: { tag?: string; mediaType?: string } = {}): Descriptor {
    const bytes = Buffer.from(JSON.stringify(manifest));
    const mt = opts.mediaType ?? (manifest as { mediaType?: string }).mediaType ?? 'application/vnd.oci.image.manifest.v1+json';
    const d = this.put(mt, bytes);
    this.index.manifests.push({ ...d, ...(opts.tag ? { annotations: { 'org.opencontainers.image.ref.name': opts.tag } } : {}) });
    return d;
  }

  #blob(digest: string): Buffer | undefined {
    const b = this.blobs.get(digest);
    if (b && sha256(b) !== digest) throw new Error(`blob ${digest} does not match its digest`);
    return b;
  }

  async fetchManifest(ref: string, opts: { maxBytes?: number; accept?: string[] } = {}): Promise<FetchedManifest | null> {
    this.calls.push(`manifest ${ref}`);
    let desc: Descriptor | undefined;
    if (ref.startsWith('sha256:')) {
      desc = this.index.manifests.find((m) => m.digest === ref);
      const b = this.#blob(ref);
      if (!b) return null;
      const mt = desc?.mediaType ?? mediaTypeOf(b) ?? 'application/vnd.oci.image.manifest.v1+json';
      desc = { mediaType: mt, digest: ref, size: b.length };
    } else {
      desc = this.index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === ref);
      if (!desc) return null;
    }
    const bytes = this.#blob(desc.digest);
    if (!bytes) return null;
    const max = opts.maxBytes ?? 4 * 1024 * 1024;
    if (bytes.length > max) throw new Error(`manifest ${desc.digest} is larger than ${max} bytes`);
    return { descriptor: { mediaType: desc.mediaType, digest: desc.digest, size: bytes.length }, bytes };
  }

  async fetchBlob(desc: Descriptor, opts: { maxBytes?: number } = {}): Promise<Buffer> {
    this.calls.push(`blob ${desc.digest}`);
    const max = opts.maxBytes ?? 32 * 1024 * 1024;
    if (desc.size > max) throw new Error(`blob ${desc.digest} is larger than ${max} bytes`);
    const b = this.#blob(desc.digest);
    if (!b) throw new Error(`blob ${desc.digest} not found`);
    if (b.length !== desc.size) throw new Error(`blob ${desc.digest} size ${b.length} does not match descriptor size ${desc.size}`);
    return b;
  }

  async referrers(subjectDigest: string, artifactType?: string): Promise<Descriptor[]> {
    this.calls.push(`referrers ${subjectDigest} ${artifactType ?? ''}`);
    let list: Descriptor[] = [];
    if (this.mode === 'tag') {
      const tag = subjectDigest.replace(':', '-');
      const idx = this.index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
      if (idx) {
        const b = this.#blob(idx.digest);
        if (b) list = (JSON.parse(b.toString('utf8')) as ImageIndex).manifests;
      }
    } else {
      const seen = new Set<string>();
      for (const [digest, b] of this.blobs) {
        if (seen.has(digest)) continue;
        let m: ImageManifest;
        try {
          m = JSON.parse(b.toString('utf8')) as ImageManifest;
        } catch {
          continue;
        }
        if (!m || typeof m !== 'object' || m.subject?.digest !== subjectDigest) continue;
        seen.add(digest);
        list.push({
          mediaType: m.mediaType ?? 'application/vnd.oci.image.manifest.v1+json',
          digest,
          size: b.length,
          ...(m.artifactType ?? m.config?.mediaType ? { artifactType: m.artifactType ?? m.config.mediaType } : {}),
          ...(m.annotations ? { annotations: m.annotations } : {}),
        });
      }
    }
    return artifactType ? list.filter((d) => d.artifactType === artifactType) : list;
  }
}
