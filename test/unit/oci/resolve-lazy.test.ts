// A tag or digest ref resolves without loading semver: the `pull` CLI's usual case pays nothing
// for semver ranges. Each case runs in a fresh process that records every module it resolves.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { projectRoot } from '../../helpers/shared.ts';

function probe(ref: object): { tag: string; semverLoaded: boolean } {
  const script = `
    import { registerHooks } from 'node:module';
    const seen = [];
    registerHooks({ resolve(s, c, next) { const r = next(s, c); seen.push(r.url); return r; } });
    const { resolveRef } = await import(${JSON.stringify(path.join(projectRoot, 'src/oci/resolve.ts'))});
    const digest = 'sha256:' + 'a'.repeat(64);
    const session = {
      registry: 'registry.example', repository: 'app',
      head: async (ref) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 1 }),
      listTags: async () => ['1.0.0', '1.2.0', '2.0.0'],
    };
    const r = await resolveRef(session, ${JSON.stringify(ref)});
    console.log(JSON.stringify({ tag: r.tag, semverLoaded: seen.some((u) => /node_modules\\/semver\\//.test(u)) }));
  `;
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: projectRoot }).toString()) as { tag: string; semverLoaded: boolean };
}

test('semver loads only for a semver ref', () => {
  assert.deepEqual(probe({ tag: 'v1' }), { tag: 'v1', semverLoaded: false });
  assert.deepEqual(probe({ semver: '^1.0.0' }), { tag: '1.2.0', semverLoaded: true });
});
