// Builds the stored artifact from a resolved manifest: read the manifest by digest, select the
// layer, then extract + re-pack (extract) or store the blob as it is (copy). Shared by the
// reconciler and the `pull` command so both produce identical files.
import type { OCILayerSelector } from '../api/schema.ts';
import type { RegistrySession } from '../oci/reader.ts';
import { RegistryError } from '../oci/errors.ts';
import { parseImageManifest, selectLayer } from '../oci/resolve.ts';
import type { Descriptor, ImageManifest } from '../oci/types.ts';
import { ArchiveError, extractTarGz, packReproducible } from './archive.ts';
import { rm } from 'node:fs/promises';
import type { Storage, StoredFile } from './store.ts';

export interface BuildInput {
  client: RegistrySession;
  manifestDigest: string;
  layerSelector?: OCILayerSelector;
  ignore?: string;
  storage: Storage;
  /** Relative storage path to write. */
  target: string;
  maxBytes: number;
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
  const fetched = await client.fetchManifest(manifestDigest).catch((err: Error) => {
    throw new BuildError('pull', `failed to pull artifact from '${client.registry}/${client.repository}@${manifestDigest}': ${err.message}`, { cause: err });
  });
  if (!fetched) throw new BuildError('pull', `manifest ${manifestDigest} disappeared from ${client.registry}/${client.repository}`);
  let manifest: ImageManifest;
  let layer: Descriptor;
  try {
    manifest = parseImageManifest(fetched.bytes, manifestDigest);
    layer = selectLayer(manifest, input.layerSelector?.mediaType);
  } catch (err) {
    throw new BuildError('layer', (err as Error).message, { cause: err });
  }
  const op = input.layerSelector?.operation ?? 'extract';
  if (op === 'copy') {
    if (input.maxBytes > 0 && layer.size > input.maxBytes) {
      throw new BuildError('layer', `layer ${layer.digest} is ${layer.size} bytes, over the maximum artifact size of ${input.maxBytes} bytes`);
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
  const work = await storage.workDir().catch((err: Error) => {
    throw new BuildError('storage', `failed to create a work directory: ${err.message}`);
  });
  const blob = await client.openBlob(layer).catch((err: Error) => {
    throw new BuildError('pull', `failed to pull layer ${layer.digest}: ${err.message}`, { cause: err });
  });
  let extracted;
  try {
    extracted = await extractTarGz(blob.stream, work, { maxBytes: input.maxBytes });
  } catch (err) {
    // A digest or size mismatch explains a broken archive better than the archive error does.
    await blob.verified.catch((verr: Error) => {
      if ((verr as RegistryError).code !== 'INCOMPLETE') throw wrap(verr, 'pull');
    });
    await rm(work, { recursive: true, force: true });
    throw wrap(err, 'extract');
  }
  try {
    await blob.verified;
  } catch (err) {
    await extracted.cleanup();
    await rm(work, { recursive: true, force: true });
    throw wrap(err, 'extract');
  }
  try {
    let files = 0;
    const file = await storage.writeAtomic(input.target, async (tmp) => {
      const r = await packReproducible(extracted, tmp, input.ignore);
      files = r.files;
      return r;
    });
    return { file, manifest, layer, files, droppedLinks: extracted.droppedLinks };
  } catch (err) {
    throw new BuildError('storage', `unable to archive artifact to storage: ${(err as Error).message}`, { cause: err });
  } finally {
    await extracted.cleanup();
    await rm(work, { recursive: true, force: true });
  }
}

function wrap(err: unknown, op: string): BuildError {
  if (err instanceof BuildError) return err;
  if (err instanceof ArchiveError) return new BuildError('layer', `failed to ${op} layer: ${err.message}`, { cause: err });
  if (err instanceof RegistryError) return new BuildError('pull', `failed to ${op} layer: ${err.message}`, { cause: err });
  return new BuildError('storage', `failed to ${op} layer: ${(err as Error).message}`, { cause: err });
}
