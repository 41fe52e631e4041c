// Turns spec.ref into a digest (one HEAD, or a tag list for semver), and reads the manifest the
// digest names. Everything after resolution uses the digest, never the tag.
import { DefaultLimits, exceeded, LimitError, type Limits } from '../api/limits.ts';
import type { OCIRepositorySpec } from '../api/schema.ts';
import type { RegistrySession } from './reader.ts';
import { RegistryError } from './errors.ts';
import { isDigest, isValidTag } from './reference.ts';
import { MediaTypes, type Descriptor, type ImageManifest } from './types.ts';
import { parseJSON } from '../util/json.ts';

export interface Resolved {
  /** Tag the digest came from (undefined for a digest ref). */
  tag?: string;
  descriptor: Descriptor;
  /** Flux revision: "<tag>@sha256:<hex>" or "sha256:<hex>". */
  revision: string;
}

/** A resolution failure that needs a user's change (bad tag, no semver match, bad filter). */
export class ResolveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ResolveError';
  }
}

type Ref = OCIRepositorySpec['ref'];

export async function resolveRef(client: RegistrySession, ref: Ref, layerMediaType?: string): Promise<Resolved> {
  const where = `${client.registry}/${client.repository}`;
  if (ref?.digest) {
    if (!isDigest(ref.digest)) throw new ResolveError(`invalid digest '${ref.digest}': expected sha256:<64 hex>`);
    const d = await client.head(ref.digest);
    if (!d) throw new ResolveError(`digest ${ref.digest} not found in ${where}`);
    return { descriptor: d, revision: d.digest };
  }
  let tag: string;
  if (ref?.semver) {
    const tags = await client.listTags();
    let pick;
    try {
      // semver (18 of its modules) and node:vm for the filter load only for a semver ref; a tag
      // or digest ref, the CLI's usual case, never needs them.
      const { pickSemverTag } = await import('./semver.ts');
      pick = await pickSemverTag(tags, ref.semver, ref.semverFilter, layerMediaType, client.limits ?? DefaultLimits);
    } catch (err) {
      if (err instanceof LimitError) throw err;
      throw new ResolveError((err as Error).message);
    }
    if (!pick) {
      throw new ResolveError(`no tag in ${where} matches semver '${ref.semver}'${ref.semverFilter ? ` with filter '${ref.semverFilter}'` : ''}; tags: ${summariseTags(tags)}`);
    }
    tag = pick.tag;
  } else {
    tag = ref?.tag ?? 'latest';
  }
  if (!isValidTag(tag)) throw new ResolveError(`invalid tag '${tag}'`);
  const d = await client.head(tag);
  if (!d) {
    let tags: string[] = [];
    try {
      tags = await client.listTags();
    } catch {
      // Listing is only for the message.
    }
    throw new ResolveError(`tag ${tag} not found in ${where}; tags: ${summariseTags(tags)}`);
  }
  return { tag, descriptor: d, revision: `${tag}@${d.digest}` };
}

function summariseTags(tags: string[]): string {
  const visible = tags.filter((t) => !/^sha256-[a-f0-9]{64}(\.\w+)?$/.test(t));
  if (visible.length === 0) return '(none)';
  const shown = visible.slice(0, 20).join(', ');
  return visible.length > 20 ? `${shown}, … (${visible.length} in all)` : shown;
}

/** Parses and checks an image manifest (within the maxLayers budget); an index or anything else is a clear error. */
export function parseImageManifest(bytes: Buffer, digest: string, limits: Pick<Limits, 'maxLayers' | 'annotationsMaxSize' | 'maxJSONDepth'> = DefaultLimits): ImageManifest {
  let m: unknown;
  try {
    m = parseJSON(bytes, `manifest ${digest}`, limits.maxJSONDepth);
  } catch (err) {
    if (err instanceof LimitError) throw err;
    throw new RegistryError(`manifest ${digest} is not valid JSON: ${(err as Error).message}`);
  }
  const mf = m as Partial<ImageManifest> & { manifests?: unknown };
  if (typeof m !== 'object' || m === null) throw new RegistryError(`manifest ${digest} is not a JSON object`);
  if (mf.mediaType === MediaTypes.ociIndex || mf.mediaType === MediaTypes.dockerManifestList || Array.isArray(mf.manifests)) {
    throw new RegistryError(`${digest} is an image index (multi-platform), not an artifact manifest; point spec.ref.digest at one of its manifests`);
  }
  if (mf.schemaVersion !== 2) throw new RegistryError(`manifest ${digest} has unsupported schemaVersion ${String(mf.schemaVersion)}`);
  if (!Array.isArray(mf.layers)) throw new RegistryError(`manifest ${digest} has no 'layers' array`);
  if (mf.layers.length > limits.maxLayers) exceeded('maxLayers', `manifest ${digest} has ${mf.layers.length} layers, over ${limits.maxLayers}`);
  for (const [i, l] of mf.layers.entries()) {
    if (typeof l?.mediaType !== 'string' || typeof l.digest !== 'string' || !isDigest(l.digest) || typeof l.size !== 'number' || l.size < 0) {
      throw new RegistryError(`manifest ${digest}: layer ${i} is not a valid descriptor (mediaType, sha256 digest and size are required)`);
    }
  }
  checkAnnotations(mf.annotations, digest, limits.annotationsMaxSize);
  return mf as ImageManifest;
}

/**
 * The annotations become status.artifact.metadata: a status the API server refuses (not a string
 * map, or too large to store) could record neither the new artifact nor the failure.
 */
function checkAnnotations(a: unknown, digest: string, max: number): void {
  if (a === undefined || a === null) return;
  if (typeof a !== 'object' || a === null || Array.isArray(a)) throw new RegistryError(`manifest ${digest}: 'annotations' is not an object`);
  let size = 0;
  for (const [k, v] of Object.entries(a)) {
    if (typeof v !== 'string') throw new RegistryError(`manifest ${digest}: annotation '${k.slice(0, 100)}' is not a string`);
    size += Buffer.byteLength(k) + Buffer.byteLength(v);
    if (size > max) exceeded('annotationsMaxSize', `manifest ${digest} has more than ${max} bytes of annotations (they are copied into status.artifact.metadata)`);
  }
}

export function selectLayer(manifest: ImageManifest, mediaType?: string): Descriptor {
  if (manifest.layers.length === 0) throw new RegistryError('no layers found in artifact');
  if (!mediaType) return manifest.layers[0]!;
  const layer = manifest.layers.find((l) => l.mediaType === mediaType);
  if (!layer) {
    const have = [...new Set(manifest.layers.map((l) => l.mediaType))].join(', ');
    throw new RegistryError(`failed to find layer with media type '${mediaType}' in artifact; layers have: ${have}`);
  }
  return layer;
}
