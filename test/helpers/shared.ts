import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

/** Project root (the directory holding package.json). */
export const projectRoot = path.resolve(import.meta.dirname, '../..');

/** `../shared/` next to the project, or $OSC_SHARED_DIR. Tests read vectors from here, never copies. */
export const sharedDir = process.env.OSC_SHARED_DIR ?? path.resolve(projectRoot, '../shared');

/** Absolute path of a file under ../shared/vectors; throws a clear error when the folder is absent. */
export function vectorPath(...parts: string[]): string {
  const root = path.join(sharedDir, 'vectors');
  if (!existsSync(root)) {
    throw new Error(`test vectors not found at ${root}: clone the project next to its shared/ folder or set OSC_SHARED_DIR`);
  }
  return path.join(root, ...parts);
}

/**
 * Runs an ES module script in a fresh node, as a process starts, from the project root, and returns
 * the JSON value the script printed last. The script sees `resolved`: the URL of every module
 * resolved once it runs (its own static imports are linked before that, so they are not listed),
 * for tests of what a code path loads.
 */
export function inFreshNode<T>(script: string): T {
  const preamble = `
    import { registerHooks } from 'node:module';
    const resolved = [];
    registerHooks({ resolve(s, c, next) { const r = next(s, c); resolved.push(r.url); return r; } });
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', preamble + script], { cwd: projectRoot, encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').at(-1)!) as T;
}
