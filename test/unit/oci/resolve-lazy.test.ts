// A tag or digest ref resolves without loading semver: the `pull` CLI's usual case pays nothing
// for semver ranges. Each case runs in a fresh process that records every module it resolves.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { inFreshNode, projectRoot } from '../../helpers/shared.ts';

function probe(ref: object): { tag: string; semverLoaded: boolean } {
  return inFreshNode(`
    const { resolveRef } = await import(${JSON.stringify(path.join(projectRoot, 'src/oci/resolve.ts'))});
    const digest = 'sha256:' + 'a'.repeat(64);
    const session = {
      registry: 'registry.example', repository: 'app',
      head: async (ref) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 1 }),
      listTags: async () => ['1.0.0', '1.2.0', '2.0.0'],
    };
    const r = await resolveRef(session, ${JSON.stringify(ref)});
    console.log(JSON.stringify({ tag: r.tag, semverLoaded: resolved.some((u) => /node_modules\\/semver\\//.test(u)) }));
  `);
}

test('semver loads only for a semver ref', () => {
  assert.deepEqual(probe({ tag: 'v1' }), { tag: 'v1', semverLoaded: false });
  assert.deepEqual(probe({ semver: '^1.0.0' }), { tag: '1.2.0', semverLoaded: true });
});
