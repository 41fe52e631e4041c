// The CLI's compile cache: short-lived commands write it under the user's cache directory, `run`
// never does, and an unwritable location leaves the command working as before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { makeTempDir, removeTempDir } from '../../harness/index.ts';
import { projectRoot } from '../../helpers/shared.ts';

const dir = makeTempDir('osc-compile-cache-');
test.after(() => removeTempDir(dir));

function cli(args: string[], cacheHome: string): string {
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_CACHE_HOME: cacheHome };
  delete env.NODE_COMPILE_CACHE;
  delete env.NODE_DISABLE_COMPILE_CACHE;
  return execFileSync(process.execPath, [path.join(projectRoot, 'src/main.ts'), ...args], { env }).toString();
}

test('pull and verify cache compiled code under $XDG_CACHE_HOME; run does not', () => {
  const home = path.join(dir, 'cache');
  assert.match(cli(['run', '--help'], home), /Usage: oci-source-controller run/);
  assert.equal(existsSync(path.join(home, 'oci-source-controller')), false, 'run keeps no compile cache');
  assert.match(cli(['pull', '--help'], home), /Usage: oci-source-controller pull/);
  const cache = path.join(home, 'oci-source-controller', 'compile-cache');
  assert.ok(readdirSync(cache).length > 0, 'pull wrote a compile cache');
});

test('an unwritable cache location is ignored', () => {
  const file = path.join(dir, 'not-a-directory');
  writeFileSync(file, '');
  assert.match(cli(['verify', '--help'], file), /Usage: oci-source-controller verify/);
});
