import { stringify } from 'yaml';
import { customResourceDefinition } from './schema.ts';

/** Where the CRD is written: crds/ holds plain manifests (`kubectl apply -f crds/`); kustomize
 * cannot load files outside a kustomization's directory, so config/crd has its own copy. */
export const crdFiles = ['crds/source.ocisource.dev_ocirepositories.yaml', 'config/crd/bases/source.ocisource.dev_ocirepositories.yaml'];

export function crdYaml(): string {
  return '# Generated from src/api/schema.ts by `make crds`; do not edit.\n---\n' + stringify(customResourceDefinition(), { lineWidth: 0 });
}
