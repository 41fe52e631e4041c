// Builds the stored artifact from a resolved manifest: read the manifest by digest, select the
// layer, then extract + re-pack (extract) or store the blob as it is (copy). Shared by the
// reconciler and the `pull` command so both produce identical files.
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { LimitError, limitError, limitsWith, type Limits } from '../api/limits.ts';
import type { OCILayerSelector } from '../api/schema.ts';
import type { RegistrySession } from '../oci/reader.ts';
import { RegistryError } from '../oci/errors.ts';
import { parseImageManifest, selectLayer } from '../oci/resolve.ts';
import type { Descriptor, ImageManifest } from '../oci/types.ts';
import type { Extracted } from './archive.ts';
import type { Storage, StoredFile } from './store.ts';

export interface BuildInput {
  client: RegistrySession;
  manifestDigest: string;
  layerSelector?: OCILayerSelector;
  ignore?: string;
  storage: Storage;
  /** Relative storage path to write. */
  target: string;
  /** Budgets (defaults from DefaultLimits): artifactMaxSize, tar*, maxLayers. */
  limits?: Partial<Limits>;
}

export interface BuildResult {
  file: StoredFile;
  manifest: ImageManifest;
  layer: Descriptor;
  /** Files in the re-packed archive (extract only). */
  files?: number;
  droppedLinks?: string[];
}

/** Where in the pipeline a build failed, so the reconciler can pick the right condition. */
export class BuildError extends Error {
  readonly stage: 'pull' | 'layer' | 'storage';
  constructor(stage: BuildError['stage'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BuildError';
    this.stage = stage;
  }
}

export async function buildArtifact(input: BuildInput): Promise<BuildResult> {
  const { client, manifestDigest, storage } = input;
  const limits = limitsWith(input.limits);
  const fetched = await client.fetchManifest(manifestDigest).catch((err: Error) => {
    throw new BuildError('pull', `failed to pull artifact from '${client.registry}/${client.repository}@${manifestDigest}': ${err.message}`, { cause: err });
  });
  if (!fetched) throw new BuildError('pull', `manifest ${manifestDigest} disappeared from ${client.registry}/${client.repository}`);
  let manifest: ImageManifest;
  let layer: Descriptor;
  try {
    manifest = parseImageManifest(fetched.bytes, manifestDigest, limits);
    layer = selectLayer(manifest, input.layerSelector?.mediaType);
  } catch (err) {
    throw new BuildError('layer', (err as Error).message, { cause: err });
  }
  const op = input.layerSelector?.operation ?? 'extract';
  if (op === 'copy') {
    if (limits.artifactMaxSize > 0 && layer.size > limits.artifactMaxSize) {
      throw wrap(limitError('artifactMaxSize', `layer ${layer.digest} is ${layer.size} bytes, over the maximum artifact size of ${limits.artifactMaxSize} bytes`), 'copy');
    }
    const blob = await client.openBlob(layer).catch((err: Error) => {
      throw new BuildError('pull', `failed to pull layer ${layer.digest}: ${err.message}`, { cause: err });
    });
    try {
      // The file is renamed into place only after the blob's digest checked out.
      const file = await storage.writeStream(input.target, blob.stream, () => blob.verified);
      return { file, manifest, layer };
    } catch (err) {
      throw wrap(err, 'copy');
    }
  }
  // A gzip stream is never much larger than what it inflates to: the compressed size is bounded
  // by the decompressed budget before anything is downloaded.
  if (limits.tarMaxSize > 0 && layer.size > limits.tarMaxSize) {
    throw wrap(limitError('tarMaxSize', `layer ${layer.digest} is ${layer.size} bytes compressed, over the ${limits.tarMaxSize} byte tar budget`), 'extract');
  }
  const work = await storage.workDir().catch((err: Error) => {
    throw new BuildError('storage', `failed to create a work directory: ${(err as Error).message}`, { cause: err });
  });
  let extracted: Extracted | undefined;
  try {
    // The layer is downloaded and checked against its descriptor's digest and size before a
    // single byte reaches the tar reader: a registry that swaps the layer of a signed artifact
    // gets a digest mismatch, and hostile content is never parsed.
    const blobFile = path.join(work, 'layer.tar.gz');
    const pullFailed = (err: Error) => new BuildError('pull', `failed to pull layer ${layer.digest}: ${err.message}`, { cause: err });
    const blob = await client.openBlob(layer).catch((err: Error) => {
      throw pullFailed(err);
    });
    try {
      await pipeline(blob.stream, createWriteStream(blobFile, { mode: 0o600 }));
    } catch (err) {
      // What the verifier saw (a short, long or broken stream) is the registry's fault; a stream
      // we stopped reading ('INCOMPLETE') failed on our side, writing the file.
      const verr = await blob.verified.then(() => undefined, (e: Error) => e);
      if (verr && (verr as RegistryError).code !== 'INCOMPLETE') throw pullFailed(verr);
      throw new BuildError('storage', `failed to write layer ${layer.digest} to the work directory: ${(err as Error).message}`, { cause: err });
    }
    await blob.verified.catch((err: Error) => {
      throw pullFailed(err);
    });
    const { extractTarGz, packReproducible } = await loadArchive();
    try {
      extracted = await extractTarGz(createReadStream(blobFile), work, { limits });
    } catch (err) {
      throw wrap(err, 'extract');
    }
    await rm(blobFile, { force: true });
    const x = extracted;
    try {
      let files = 0;
      const file = await storage.writeAtomic(input.target, async (tmp) => {
        const r = await packReproducible(x, tmp, input.ignore);
        files = r.files;
        return r;
      });
      return { file, manifest, layer, files, droppedLinks: x.droppedLinks };
    } catch (err) {
      throw new BuildError('storage', `unable to archive artifact to storage: ${(err as Error).message}`, { cause: err });
    }
  } finally {
    // Whatever failed above, nothing stays in the work directory.
    await extracted?.cleanup().catch(() => undefined);
    await rm(work, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** The tar stack (node-tar, tar-stream, ignore) loads with the first artifact built, not at start. */
let archive: typeof import('./archive.ts') | undefined;
async function loadArchive(): Promise<typeof import('./archive.ts')> {
  return (archive ??= await import('./archive.ts'));
}

function wrap(err: unknown, op: string): BuildError {
  if (err instanceof BuildError) return err;
  if ((archive && err instanceof archive.ArchiveError) || err instanceof LimitError) return new BuildError('layer', `failed to ${op} layer: ${err.message}`, { cause: err });
  if (err instanceof RegistryError) return new BuildError('pull', `failed to ${op} layer: ${err.message}`, { cause: err });
  return new BuildError('storage', `failed to ${op} layer: ${(err as Error).message}`, { cause: err });
}
