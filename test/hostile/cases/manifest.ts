// Malformed and oversized manifests and indexes. The tenant signed them (the signature covers the
// bytes, not their sense), so they reach the pull step; shapes the real registry refuses to store
// are served by the hostile server.
import { jsonDeepArrays } from '../bytes.ts';
import { cliPull, layerFailed, type Attack, type CaseContext, type HostileCase } from '../types.ts';
import { budget, config, FluxLayer, manifestOf, OCIIndex, OCIManifest, servedManifest, signedManifest } from './common.ts';

const NotJSON = /not valid JSON|JSON/;
const Invalid = /not a valid descriptor|layer 0|descriptor/;
const TooLarge = /limit manifestMaxSize; raise it with --manifest-max-size/;
const Index = /image index/;

/** The good layer's descriptor (so only the manifest is wrong). */
const goodLayer = (ctx: CaseContext, over: Record<string, unknown> = {}) => ({ mediaType: FluxLayer, digest: ctx.good.layerDigest, size: ctx.good.layer.length, ...over });
const manifestWith = async (ctx: CaseContext, layers: object[], extra: Record<string, unknown> = {}) => manifestOf(await config(ctx), layers, extra);

function served(id: string, title: string, build: (ctx: CaseContext) => Buffer | object | Promise<Buffer | object>, message: RegExp, extra: Partial<HostileCase> & { mediaType?: string } = {}): HostileCase {
  const { mediaType, ...rest } = extra;
  return { id: `manifest-${id}`, category: 'manifest', title, attacker: 'registry', profile: 'cosign-key', viaHostile: true, attack: servedManifest(build, mediaType ?? OCIManifest), expect: layerFailed(message), ...rest };
}

function stored(id: string, title: string, build: (ctx: CaseContext) => Promise<object>, message: RegExp, extra: Partial<HostileCase> & { mediaType?: string } = {}): HostileCase {
  const { mediaType, ...rest } = extra;
  const attack: Attack = { kind: 'push', run: async (ctx) => void (await signedManifest(ctx, await build(ctx), mediaType ?? OCIManifest)) };
  return { id: `manifest-${id}`, category: 'manifest', title, attacker: 'registry', profile: 'cosign-key', attack, expect: layerFailed(message), ...rest };
}

export function manifestCases(): HostileCase[] {
  const manifestMax = budget('manifestMaxSize', 4 << 20);
  const maxLayers = budget('maxLayers', 1000);
  return [
    served('not-json', 'a manifest that is not JSON', () => Buffer.from('<html>not a manifest</html>'), NotJSON, { cli: cliPull(NotJSON) }),
    served('json-array', 'a manifest that is a JSON array', () => Buffer.from('[]'), /JSON object|manifest/),
    served('json-null', "a manifest that is 'null'", () => Buffer.from('null'), /JSON object|manifest/),
    served('schema1', 'a Docker schema 1 manifest', () => ({ schemaVersion: 1, name: 'x', tag: 'v1', fsLayers: [{ blobSum: `sha256:${'0'.repeat(64)}` }] }), /schemaVersion/),
    served('schema-string', "schemaVersion \"2\" (a string)", async (ctx) => ({ ...(await manifestWith(ctx, [goodLayer(ctx)])), schemaVersion: '2' }), /schemaVersion/),
    stored('no-layers', "no 'layers' at all", async (ctx) => ({ schemaVersion: 2, mediaType: OCIManifest, config: await config(ctx) }), /layers/, { cli: cliPull(/layers/) }),
    served('layers-object', "'layers' is an object", async (ctx) => manifestWith(ctx, { 0: goodLayer(ctx) } as unknown as object[]), /layers/),
    stored('empty-layers', "'layers' is empty", async (ctx) => manifestWith(ctx, []), /no layers/),
    served('layer-no-digest', 'a layer without a digest', async (ctx) => manifestWith(ctx, [{ mediaType: FluxLayer, size: 10 }]), Invalid),
    served('layer-bad-digest', "a layer digest 'sha256:xyz'", async (ctx) => manifestWith(ctx, [goodLayer(ctx, { digest: 'sha256:xyz' })]), Invalid),
    served('layer-md5-digest', 'a layer digest with an unknown algorithm (md5)', async (ctx) => manifestWith(ctx, [goodLayer(ctx, { digest: `md5:${'0'.repeat(32)}` })]), Invalid),
    served('layer-path-digest', "a layer digest 'sha256:../../../../etc/passwd'", async (ctx) => manifestWith(ctx, [goodLayer(ctx, { digest: 'sha256:../../../../etc/passwd' })]), Invalid),
    stored('layer-negative-size', 'a layer size of -1', async (ctx) => manifestWith(ctx, [goodLayer(ctx, { size: -1 })]), /descriptor|size/),
    served('layer-size-string', 'a layer size that is a string', async (ctx) => manifestWith(ctx, [goodLayer(ctx, { size: '100' })]), Invalid),
    served('layer-size-infinite', 'a layer size of 1e400 (Infinity once parsed)', async (ctx) => Buffer.from(JSON.stringify(await manifestWith(ctx, [goodLayer(ctx, { size: 424242 })])).replace('424242', '1e400')), /size|descriptor|bytes/),
    stored('no-matching-layer', 'no layer of the media type spec.layerSelector asks for', async (ctx) => manifestWith(ctx, [goodLayer(ctx, { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' })]), /media type/, { spec: { layerSelector: { mediaType: FluxLayer } }, cli: cliPull(/media type/) }),
    served('oversized', `a manifest of ${manifestMax + 1} bytes (the manifest budget plus one)`, async (ctx) => {
      const m = Buffer.from(JSON.stringify(await manifestWith(ctx, [goodLayer(ctx)])));
      return Buffer.concat([m.subarray(0, m.length - 1), Buffer.alloc(manifestMax + 1 - m.length, 0x20), Buffer.from('}')]);
    }, TooLarge, { cli: cliPull(TooLarge) }),
    served('oversized-32mib', 'a manifest of 32 MiB', async (ctx) => {
      const m = Buffer.from(JSON.stringify(await manifestWith(ctx, [goodLayer(ctx)])));
      return Buffer.concat([m.subarray(0, m.length - 1), Buffer.alloc(32 << 20, 0x20), Buffer.from('}')]);
    }, TooLarge),
    served('deep-layers', "'layers' nested 1,000,000 arrays deep", async (ctx) => Buffer.from(JSON.stringify(await manifestWith(ctx, [])).replace('"layers":[]', `"layers":${jsonDeepArrays(1_000_000)}`)), /layer|nest|depth|JSON|descriptor/i),
    served('annotations-3mib', 'a valid manifest with 3 MiB of annotations (copied to status.artifact.metadata)', async (ctx) => manifestWith(ctx, [goodLayer(ctx)], { annotations: { 'org.opencontainers.image.description': 'd'.repeat(3 << 20) } }), /annotations.*limit annotationsMaxSize/),
    served('annotations-flood', 'a valid manifest with 60,000 annotations', async (ctx) => manifestWith(ctx, [goodLayer(ctx)], { annotations: Object.fromEntries(Array.from({ length: 60_000 }, (_, i) => [`org.example/a${i}`, 'x'])) }), /annotations.*limit annotationsMaxSize/),
    stored('index-instead', 'the tag points to an image index', async (ctx) => ({ schemaVersion: 2, mediaType: OCIIndex, manifests: [{ mediaType: OCIManifest, digest: ctx.good.manifestDigest, size: ctx.good.manifest.length, platform: { architecture: 'amd64', os: 'linux' } }] }), Index, { mediaType: OCIIndex }),
    served('index-flood', 'an image index of 25,000 entries', async (ctx) => ({ schemaVersion: 2, mediaType: OCIIndex, manifests: Array.from({ length: 25_000 }, () => ({ mediaType: OCIManifest, digest: ctx.good.manifestDigest, size: ctx.good.manifest.length })) }), /image index|limit|exceeds/i, { mediaType: OCIIndex }),
    served('docker-list-with-layers', 'a manifest-list media type over a manifest that also has layers', async (ctx) => ({ ...(await manifestWith(ctx, [goodLayer(ctx)])), mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json' }), Index),
    served('layers-flood', `a manifest of ${Math.max(20_000, maxLayers + 1)} layers`, async (ctx) => manifestWith(ctx, Array.from({ length: Math.max(20_000, maxLayers + 1) }, () => goodLayer(ctx))), /layers|limit/i),
    served('utf16', 'a manifest encoded as UTF-16 with a byte-order mark', async (ctx) => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(JSON.stringify(await manifestWith(ctx, [goodLayer(ctx)])), 'utf16le')]), NotJSON),
  ];
}
