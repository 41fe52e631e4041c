// Writes crds/ from src/api/schema.ts. `--check` exits 1 when the committed file differs.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { crdYaml, crdFile } from '../src/api/crd.ts';

const target = path.resolve(import.meta.dirname, '..', crdFile);
if (process.argv.includes('--check')) {
  if (readFileSync(target, 'utf8') !== crdYaml()) {
    console.error(`${crdFile} is out of date: run make crds`);
    process.exit(1);
  }
} else {
  writeFileSync(target, crdYaml());
  console.log(`wrote ${crdFile}`);
}
