// Writes the CRD (crds/ and config/crd/bases/) from src/api/schema.ts. `--check` exits 1 when a
// committed file differs.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { crdYaml, crdFiles } from '../src/api/crd.ts';

const check = process.argv.includes('--check');
let stale = false;
for (const file of crdFiles) {
  const target = path.resolve(import.meta.dirname, '..', file);
  if (!check) {
    writeFileSync(target, crdYaml());
    console.log(`wrote ${file}`);
  } else if (readFileSync(target, 'utf8') !== crdYaml()) {
    console.error(`${file} is out of date: run make crds`);
    stale = true;
  }
}
if (stale) process.exit(1);
