import { stringify } from 'yaml';
import { customResourceDefinition } from './schema.ts';

export const crdFile = 'crds/source.ocisource.dev_ocirepositories.yaml';

export function crdYaml(): string {
  return '# Generated from src/api/schema.ts by `make crds`; do not edit.\n---\n' + stringify(customResourceDefinition(), { lineWidth: 0 });
}
