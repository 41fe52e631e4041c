// Descriptors that lie: sizes, digests and media types that do not match the bytes, and a
// registry that swaps the content behind a signed digest (issue 7 item 1: nothing extracted from
// an unverified stream may be kept, and a swapped bomb must end as a digest/size mismatch).
import { cosignPayload } from '../../helpers/cosign-sign.ts';
import { gnuLong, gz, gzStream, paxHeader, tarEntry, tarHeader, tarEnd, tarOf, tgzFiles, zeros } from '../bytes.ts';
import { pushArtifact, pushBlob, signGood, type Pushed } from '../world.ts';
import { send, sendManifest, sha256 } from '../server.ts';
import { cliPull, cliVerify, layerFailed, notVerified, pullFailed, type Attack, type Behaviour, type CaseContext, type HostileCase } from '../types.ts';
import { config, FluxLayer, manifestOf, OCIManifest, serveBlob, signedManifest } from './common.ts';

const lies = new Map<string, { digest: string; bytes: Buffer }>();
// blob-truncated: the layer digest of a new signed artifact, and its first half.
const sig = new Map<string, string>();
const half = new Map<string, Buffer>();
const truncatedPrepare = async (ctx: CaseContext): Promise<void> => {
  const p = await newSigned(ctx, { 'big.yaml': 'x'.repeat(100_000) });
  sig.set(ctx.id, p.layerDigest);
  half.set(ctx.id, p.layer.subarray(0, p.layer.length >> 1));
};

const SizeLie = /bytes|size|descriptor|larger/i;
const DigestLie = /digest/i;

/** A new signed artifact in the real registry (good content), tagged v1. */
async function newSigned(ctx: CaseContext, files: Record<string, string> = { 'app.yaml': `kind: ConfigMap # next ${ctx.id}\n` }): Promise<Pushed> {
  const p = await pushArtifact(ctx.world.registry, ctx.repo, 'v1', tgzFiles(files));
  await signGood(ctx.world, 'cosign-key', ctx.repo, { digest: p.manifestDigest, size: p.manifest.length, mediaType: OCIManifest });
  return p;
}

/** The registry swaps the layer of a new, signed artifact with `bytes` when it is downloaded. */
function swappedLayer(bytes: () => Buffer | Promise<Buffer>): Attack {
  const layers = new Map<string, { digest: string; bytes: Buffer }>();
  return {
    kind: 'serve',
    prepare: async (ctx) => {
      const p = await newSigned(ctx);
      layers.set(ctx.id, { digest: p.layerDigest, bytes: await bytes() });
    },
    behaviour: (ctx) => {
      const l = layers.get(ctx.id)!;
      return serveBlob(l.digest, l.bytes);
    },
  };
}

/** A signed manifest whose only layer descriptor is `layer(ctx)` (real registry: it stores lies about sizes). */
const lyingManifest = (layer: (ctx: CaseContext, blob: { digest: string; size: number }) => object, blob: Buffer | ((ctx: CaseContext) => Buffer) = (ctx) => tgzFiles({ 'a.yaml': `a: ${ctx.id}\n` })): Attack => ({
  kind: 'push',
  run: async (ctx) => {
    const b = typeof blob === 'function' ? blob(ctx) : blob;
    const digest = await pushBlob(ctx.world.registry, ctx.repo, b);
    await signedManifest(ctx, manifestOf(await config(ctx), [layer(ctx, { digest, size: b.length })]));
  },
});

function descCase(id: string, title: string, attack: Attack, expect: HostileCase['expect'], extra: Partial<HostileCase> = {}): HostileCase {
  return { id: `desc-${id}`, category: 'descriptor', title, attacker: 'registry', profile: 'cosign-key', attack, expect, ...extra };
}

export function descriptorCases(): HostileCase[] {
  return [
    descCase('layer-size-smaller', 'a layer descriptor 10 bytes smaller than the blob', lyingManifest((_c, b) => ({ mediaType: FluxLayer, digest: b.digest, size: b.size - 10 })), layerFailed(SizeLie), { cli: cliPull(SizeLie) }),
    descCase('layer-size-larger', 'a layer descriptor 10 bytes larger than the blob', lyingManifest((_c, b) => ({ mediaType: FluxLayer, digest: b.digest, size: b.size + 10 })), layerFailed(SizeLie)),
    descCase('layer-size-zero', 'a layer descriptor of size 0', lyingManifest((_c, b) => ({ mediaType: FluxLayer, digest: b.digest, size: 0 })), layerFailed(SizeLie)),
    descCase('layer-size-huge', 'a layer descriptor of 2^53 bytes', lyingManifest((_c, b) => ({ mediaType: FluxLayer, digest: b.digest, size: 2 ** 53 })), layerFailed(/bytes|size|descriptor|--artifact-max-size/i)),
    descCase('layer-mediatype-lie', 'a tar+gzip layer descriptor over a plain YAML blob', lyingManifest((_c, b) => ({ mediaType: FluxLayer, digest: b.digest, size: b.size }), Buffer.from('kind: ConfigMap\n')), layerFailed(/gzip/)),
    descCase('layer-swap-traversal', "the registry serves a tar with '../pwned' for the signed layer digest", swappedLayer(() => gz(tarOf(tarEntry({ name: '../pwned-swap' }, 'x')))), layerFailed(/digest|bytes|descriptor|escapes the archive root/i), { viaHostile: true, cli: cliPull(/digest|bytes|descriptor|escapes the archive root/i) }),
    descCase('layer-swap-depth-bomb', 'the registry swaps the layer of a signed artifact for a 375-byte tar whose PAX path has 80,000 components', swappedLayer(() => gz(tarOf(paxHeader([['path', 'a/'.repeat(80_000) + 'f']]), tarEntry({ name: 'f' }, 'x')))), layerFailed(/digest|size|bytes|descriptor|too deep|too long|depth|components|path length/i), { viaHostile: true, item: 1, solo: true, cli: cliPull(/digest|size|bytes|descriptor|too deep|too long|depth|components|path length/i) }),
    descCase('layer-swap-gnu-depth-bomb', 'the same with a GNU long name of 80,000 components', swappedLayer(() => gz(tarOf(gnuLong('a/'.repeat(80_000) + 'f'), tarEntry({ name: 'f', magic: 'gnu' }, 'x')))), layerFailed(/digest|size|bytes|descriptor|too deep|too long|depth|components|path length/i), { viaHostile: true, item: 1, solo: true }),
    descCase('layer-swap-gzip-bomb', 'the registry swaps the layer for 200 MiB of zeros (gzip)', swappedLayer(() => gzStream([tarHeader({ name: 'z', size: 200 << 20 }), ...zeros(200 << 20), tarEnd()])), layerFailed(/digest|size|larger|--artifact-max-size/i), { viaHostile: true, solo: true }),
    descCase('blob-truncated', 'the registry serves the first half of the layer', {
      kind: 'serve',
      prepare: truncatedPrepare,
      behaviour: (ctx) => (req, res) => {
        if (req.kind !== 'blob' || req.ref !== sig.get(ctx.id)) return 'pass';
        const b = half.get(ctx.id)!;
        send(res, 200, b, { 'content-type': 'application/octet-stream' });
      },
    }, layerFailed(SizeLie), { viaHostile: true }),
    descCase('manifest-digest-lie', 'HEAD names a signed manifest; GET by that digest returns other bytes', {
      kind: 'serve',
      prepare: async (ctx) => {
        const signed = await newSigned(ctx);
        const other = await pushArtifact(ctx.world.registry, ctx.repo, 'other', tgzFiles({ 'evil.yaml': 'kind: Secret\n' }));
        lies.set(ctx.id, { digest: signed.manifestDigest, bytes: other.manifest });
      },
      behaviour: (ctx): Behaviour => {
        const l = lies.get(ctx.id)!;
        return (req, res) => {
          if (req.kind !== 'manifest' || (req.ref !== 'v1' && req.ref !== l.digest)) return 'pass';
          sendManifest(req, res, l.bytes, OCIManifest, l.digest);
        };
      },
    }, pullFailed(DigestLie), { viaHostile: true, cli: cliPull(DigestLie) }),
    descCase('head-size-lie', 'HEAD reports a size of 10 bytes for a signed manifest (Notation signs the size)', {
      kind: 'serve',
      prepare: async (ctx) => {
        const p = await pushArtifact(ctx.world.registry, ctx.repo, 'v1', tgzFiles({ 'b.yaml': 'b\n' }));
        await signGood(ctx.world, 'notation', ctx.repo, { digest: p.manifestDigest, size: p.manifest.length, mediaType: OCIManifest });
        lies.set(ctx.id, { digest: p.manifestDigest, bytes: p.manifest });
      },
      behaviour: (ctx): Behaviour => {
        const l = lies.get(ctx.id)!;
        return (req, res) => {
          if (req.kind !== 'manifest' || req.method !== 'HEAD' || req.ref !== 'v1') return 'pass';
          res.writeHead(200, { 'content-type': OCIManifest, 'docker-content-digest': l.digest, 'content-length': 10 });
          res.end();
        };
      },
    }, notVerified(/mismatch|size/i), { viaHostile: true, profile: 'notation' }),
    descCase('copy-size-over-budget', 'copy mode: a layer descriptor of 100 MiB (over --artifact-max-size)', lyingManifest((_c, b) => ({ mediaType: FluxLayer, digest: b.digest, size: 100 << 20 })), layerFailed(/--artifact-max-size|maximum|bytes/i), { spec: { layerSelector: { mediaType: FluxLayer, operation: 'copy' } }, cli: cliPull(/--artifact-max-size|maximum|bytes/i) }),
    descCase('copy-swap', 'copy mode: the registry swaps the layer bytes of a signed artifact', swappedLayer(() => Buffer.from('swapped content, not what was signed\n')), layerFailed(/digest|bytes|descriptor/i), { viaHostile: true, spec: { layerSelector: { mediaType: FluxLayer, operation: 'copy' } } }),
    descCase('sig-payload-swap', 'the registry swaps the payload blob of a cosign signature', {
      kind: 'serve',
      prepare: async (ctx) => {
        const p = await newSigned(ctx);
        // The payload blob of the .sig just pushed is the simple-signing payload for p's digest.
        lies.set(ctx.id, { digest: sha256(cosignPayload(p.manifestDigest)), bytes: cosignPayload(`sha256:${'f'.repeat(64)}`) });
      },
      behaviour: (ctx) => {
        const l = lies.get(ctx.id)!;
        return serveBlob(l.digest, l.bytes);
      },
    }, notVerified(/signature|digest/i), { viaHostile: true }),
  ];
}

