// An in-memory repository for unit tests of the reconciler: tags, manifests and blobs, with
// switches to make one kind of request fail. Blobs go through the real verifying stream, so a
// swapped blob fails its digest check exactly as it does against a real registry.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { verifyingStream } from '../../src/oci/client.ts';
import { RegistryError } from '../../src/oci/errors.ts';
import type { RegistrySession } from '../../src/oci/reader.ts';
import type { Descriptor, FetchedManifest } from '../../src/oci/types.ts';

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A .tar.gz of the given files. */
export async function tarGz(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mtime: new Date(0) }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return gzipSync(Buffer.concat(chunks));
}

type Kind = 'head' | 'tags' | 'manifest' | 'blob' | 'referrers';

export class FakeRepository {
  readonly registry = 'registry.test';
  readonly repository = 'org/app';
  manifests = new Map<string, Buffer>();
  tags = new Map<string, string>();
  blobs = new Map<string, Buffer>();
  /** Make every request of a kind fail with this error (or hang until the signal aborts, with 'hang'). */
  fail: Partial<Record<Kind, Error | 'hang'>> = {};
  requests = 0;

  /** Pushes a one-layer artifact and tags it; returns the manifest digest. */
  async push(tag: string, files: Record<string, string>, opts: { layerMediaType?: string; annotations?: Record<string, string> } = {}): Promise<string> {
    const layer = await tarGz(files);
    const config = Buffer.from('{}');
    this.blobs.set(sha256(layer), layer);
    this.blobs.set(sha256(config), config);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.cncf.flux.config.v1+json', digest: sha256(config), size: config.length },
        layers: [{ mediaType: opts.layerMediaType ?? 'application/vnd.cncf.flux.content.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
        ...(opts.annotations ? { annotations: opts.annotations } : {}),
      }),
    );
    const digest = sha256(manifest);
    this.manifests.set(digest, manifest);
    this.tags.set(tag, digest);
    return digest;
  }

  layerOf(manifestDigest: string): Descriptor {
    const m = JSON.parse(this.manifests.get(manifestDigest)!.toString()) as { layers: Descriptor[] };
    return m.layers[0]!;
  }

  session(signal?: AbortSignal): RegistrySession {
    const repo = this;
    const gate = async (kind: Kind) => {
      repo.requests++;
      const f = repo.fail[kind];
      if (f === 'hang') {
        await new Promise((_, reject) => {
          if (!signal) return;
          if (signal.aborted) reject(signal.reason);
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
        });
      } else if (f) throw f;
    };
    const manifestOf = (ref: string): FetchedManifest | null => {
      const digest = ref.startsWith('sha256:') ? ref : repo.tags.get(ref);
      const bytes = digest ? repo.manifests.get(digest) : undefined;
      if (!digest || !bytes) return null;
      return { descriptor: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: bytes.length }, bytes };
    };
    return {
      registry: repo.registry,
      repository: repo.repository,
      get requests() {
        return repo.requests;
      },
      async head(ref) {
        await gate('head');
        return manifestOf(ref)?.descriptor ?? null;
      },
      async listTags() {
        await gate('tags');
        return [...repo.tags.keys()];
      },
      async fetchManifest(ref) {
        await gate('manifest');
        return manifestOf(ref);
      },
      async fetchBlob(desc) {
        await gate('blob');
        const b = repo.blobs.get(desc.digest);
        if (!b) throw new RegistryError(`blob ${desc.digest} not found`, 404, 'BLOB_UNKNOWN');
        return b;
      },
      async openBlob(desc) {
        await gate('blob');
        const b = repo.blobs.get(desc.digest);
        if (!b) throw new RegistryError(`GET blob ${desc.digest}: 404`, 404, 'BLOB_UNKNOWN');
        return verifyingStream(Readable.from([b]), desc);
      },
      async referrers() {
        await gate('referrers');
        return [];
      },
    };
  }
}
