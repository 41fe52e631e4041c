import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LimitError, limitsWith } from '../../../src/api/limits.ts';
import { parseImageManifest, selectLayer } from '../../../src/oci/resolve.ts';

const layer = (mediaType: string, n: number) => ({ mediaType, digest: `sha256:${String(n).repeat(64)}`, size: n });
const m = (extra: Record<string, unknown>) => Buffer.from(JSON.stringify({ schemaVersion: 2, config: layer('application/vnd.oci.image.config.v1+json', 1), ...extra }));

test('OCI and Docker v2 manifests parse; an index is a clear error', () => {
  const oci = parseImageManifest(m({ mediaType: 'application/vnd.oci.image.manifest.v1+json', layers: [layer('a', 2)] }), 'sha256:x');
  assert.equal(oci.layers.length, 1);
  assert.ok(parseImageManifest(m({ mediaType: 'application/vnd.docker.distribution.manifest.v2+json', layers: [layer('b', 3)] }), 'sha256:x'));
  assert.throws(() => parseImageManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] })), 'sha256:idx'), /sha256:idx is an image index \(multi-platform\).*spec\.ref\.digest/);
  assert.throws(() => parseImageManifest(Buffer.from('{"schemaVersion":1}'), 'sha256:v1'), /unsupported schemaVersion 1/);
  assert.throws(() => parseImageManifest(Buffer.from('not json'), 'sha256:bad'), /not valid JSON/);
  assert.throws(() => parseImageManifest(m({ layers: [{ mediaType: 'x', digest: '../../etc', size: 1 }] }), 'sha256:l'), /layer 0 is not a valid descriptor/);
});

test('layer selection: first layer by default, first match by media type, clear miss', () => {
  const man = parseImageManifest(m({ layers: [layer('a', 2), layer('b', 3), layer('b', 4)] }), 'sha256:x');
  assert.equal(selectLayer(man).size, 2);
  assert.equal(selectLayer(man, 'b').size, 3);
  assert.throws(() => selectLayer(man, 'c'), /failed to find layer with media type 'c' in artifact; layers have: a, b/);
  assert.throws(() => selectLayer(parseImageManifest(m({ layers: [] }), 'sha256:e')), /no layers found/);
});

test('maxLayers: a manifest with more layers than the budget is refused, naming it', () => {
  const many = m({ layers: Array.from({ length: 1001 }, (_, i) => layer('a', (i % 9) + 1)) });
  assert.throws(() => parseImageManifest(many, 'sha256:many'), (e: Error) => e instanceof LimitError && e.limit === 'maxLayers' && /manifest sha256:many has 1001 layers, over 1000 \(limit maxLayers\)/.test(e.message));
  assert.equal(parseImageManifest(many, 'sha256:many', limitsWith({ maxLayers: 2000 })).layers.length, 1001);
});

test('annotationsMaxSize: annotations (copied into the status) are a bounded string map', () => {
  const big = m({ layers: [layer('a', 2)], annotations: { k: 'v'.repeat(256 << 10) } });
  assert.throws(() => parseImageManifest(big, 'sha256:big'), (e: Error) => e instanceof LimitError && e.limit === 'annotationsMaxSize' && /manifest sha256:big has more than 262144 bytes of annotations/.test(e.message));
  assert.throws(() => parseImageManifest(m({ layers: [layer('a', 2)], annotations: { n: 1 } }), 'sha256:n'), /annotation 'n' is not a string/);
  assert.throws(() => parseImageManifest(m({ layers: [layer('a', 2)], annotations: ['x'] }), 'sha256:a'), /'annotations' is not an object/);
  assert.equal(parseImageManifest(m({ layers: [layer('a', 2)], annotations: null }), 'sha256:z').layers.length, 1);
  assert.equal(parseImageManifest(m({ layers: [layer('a', 2)], annotations: { k: 'v'.repeat(1000) } }), 'sha256:ok').annotations?.k?.length, 1000);
});

test('maxJSONDepth: a deeply nested manifest is refused before JSON.parse holds the event loop', () => {
  const deep = Buffer.from(`{"schemaVersion":2,"layers":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
  assert.throws(() => parseImageManifest(deep, 'sha256:deep'), (e: Error) => e instanceof LimitError && e.limit === 'maxJSONDepth' && /manifest sha256:deep nests JSON deeper than 64 levels/.test(e.message));
});
