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
