// Helpers the case generators share: pushing signed hostile artifacts, the paths traversal
// cases aim at, and the budget defaults the corpus steps just over.
import { DefaultLimits } from '../../../src/api/limits.ts';
import { send, sendManifest, sha256 } from '../server.ts';
import type { Attack, Behaviour, CaseContext, Profile } from '../types.ts';
import { pushArtifact, pushBlob, pushRawManifest, signGood, type Pushed } from '../world.ts';

export const OCIManifest = 'application/vnd.oci.image.manifest.v1+json';
export const OCIIndex = 'application/vnd.oci.image.index.v1+json';
export const FluxLayer = 'application/vnd.cncf.flux.content.v1.tar+gzip';
export const FluxConfig = 'application/vnd.cncf.flux.config.v1+json';

/**
 * A budget's documented default (src/api/limits.ts), or `fallback` while that budget has not
 * landed: cases step just over it, so they follow the default wherever it is set.
 */
export function budget(name: string, fallback: number): number {
  const v = (DefaultLimits as unknown as Record<string, unknown>)[name];
  return typeof v === 'number' && v > 0 ? v : fallback;
}

/** Pushes a one-layer artifact to tag v1 and signs it: the tenant signed whatever it is. */
export async function signedLayer(ctx: CaseContext, layer: Buffer, profile: Profile = 'cosign-key'): Promise<Pushed> {
  const p = await pushArtifact(ctx.world.registry, ctx.repo, 'v1', layer);
  await signGood(ctx.world, profile, ctx.repo, { digest: p.manifestDigest, size: p.manifest.length, mediaType: OCIManifest });
  return p;
}

/** Pushes a manifest (the real registry must accept it) to tag v1 and signs it. */
export async function signedManifest(ctx: CaseContext, manifest: object | Buffer, mediaType = OCIManifest, profile: Profile = 'cosign-key'): Promise<{ digest: string; bytes: Buffer }> {
  const m = await pushRawManifest(ctx.world.registry, ctx.repo, 'v1', manifest, mediaType);
  await signGood(ctx.world, profile, ctx.repo, { digest: m.digest, size: m.bytes.length, mediaType });
  return m;
}

/** The config blob every manifest of the corpus points at. */
export async function config(ctx: CaseContext): Promise<{ mediaType: string; digest: string; size: number }> {
  const digest = await pushBlob(ctx.world.registry, ctx.repo, Buffer.from('{}'));
  return { mediaType: FluxConfig, digest, size: 2 };
}

/** A relative path that climbs out of any directory and lands in the sentinel directory. */
export const climbTo = (ctx: CaseContext, name: string): string => `${'../'.repeat(24)}${ctx.world.sentinel.slice(1)}/${name}`;
/** An absolute path in the sentinel directory. */
export const inSentinel = (ctx: CaseContext, name: string): string => `${ctx.world.sentinel}/${name}`;

/** Signs `digest` with the namespace's cosign key (a `.sig` in the real registry). */
export async function signDigest(ctx: CaseContext, digest: string, mediaType = OCIManifest, size = 0): Promise<void> {
  await signGood(ctx.world, 'cosign-key', ctx.repo, { digest, size, mediaType });
}

/**
 * The hostile server answers tag v1 (and the manifest's digest) with `bytes`; the rest goes to the
 * real registry. `headDigest` makes HEAD lie about the digest.
 */
export function serveManifest(bytes: Buffer, mediaType = OCIManifest, opts: { headDigest?: string; getBytes?: Buffer } = {}): Behaviour {
  const digest = sha256(bytes);
  const head = opts.headDigest ?? digest;
  return (req, res) => {
    if (req.kind !== 'manifest' || (req.ref !== 'v1' && req.ref !== digest && req.ref !== head)) return 'pass';
    sendManifest(req, res, req.method === 'HEAD' ? bytes : (opts.getBytes ?? bytes), mediaType, head);
  };
}

/**
 * An attack where the hostile server serves a manifest built for the case (signed by the tenant,
 * so verification passes and the pull step has to judge it).
 */
export function servedManifest(build: (ctx: CaseContext) => Buffer | object | Promise<Buffer | object>, mediaType = OCIManifest): Attack {
  const made = new Map<string, Buffer>();
  return {
    kind: 'serve',
    prepare: async (ctx) => {
      const m = await build(ctx);
      const bytes = Buffer.isBuffer(m) ? m : Buffer.from(JSON.stringify(m));
      made.set(ctx.id, bytes);
      await signDigest(ctx, sha256(bytes), mediaType, bytes.length);
    },
    behaviour: (ctx) => serveManifest(made.get(ctx.id)!, mediaType),
  };
}

/** Serves `bytes` for GETs of blob `digest`. */
export function serveBlob(digest: string, bytes: Buffer | (() => Buffer)): Behaviour {
  return (req, res) => {
    if (req.kind !== 'blob' || req.ref !== digest) return 'pass';
    const b = typeof bytes === 'function' ? bytes() : bytes;
    if (req.method === 'HEAD') return send(res, 200, '', { 'content-type': 'application/octet-stream', 'docker-content-digest': digest });
    send(res, 200, b, { 'content-type': 'application/octet-stream', 'docker-content-digest': digest });
  };
}

/** A manifest of the corpus's shape (Flux config, one layer). */
export function manifestOf(cfg: { mediaType: string; digest: string; size: number }, layers: object[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { schemaVersion: 2, mediaType: OCIManifest, config: cfg, layers, ...extra };
}
