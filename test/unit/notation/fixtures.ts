// Shared fixtures for the notation tests: vector paths, Secrets, and a one-call verify.
import { readFileSync } from 'node:fs';
import { vectorPath } from '../../helpers/shared.ts';
import { OCILayoutReader, type LayoutOptions } from '../../helpers/oci-layout.ts';
import { prepareNotation, type NotationOptions } from '../../../src/verify/notation/index.ts';
import type { SecretInput, VerificationOutcome, VerifyOptions } from '../../../src/verify/types.ts';
import type { Descriptor } from '../../../src/oci/types.ts';

export const E2E = (...p: string[]) => vectorPath('notation', 'notation', 'test', 'e2e', 'testdata', ...p);
export const POLICY = (name: string) => E2E('config', 'trustpolicies', name);
export const LAYOUT = (name: string) => E2E('registry', 'oci_layout', name);
export const KEY = (name: string) => E2E('config', 'localkeys', name);
export const NGO = (...p: string[]) => vectorPath('notation', 'notation-go', ...p);
export const read = (p: string) => readFileSync(p);

/** The subject of every `e2e*` layout. */
export const E2E_SUBJECT: Descriptor = {
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: 'sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9',
  size: 517,
};

export function secret(data: Record<string, Buffer | string>, name = 'default/notation'): SecretInput {
  return { name, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.isBuffer(v) ? v : Buffer.from(v)])) };
}

/** A verify() that fails every revocation fetch at once (as an air-gapped cluster would). */
export const offlineFetch = async (url: string): Promise<Buffer> => {
  throw new Error(`network disabled in tests (${url})`);
};

export interface RunOptions extends Partial<VerifyOptions> {
  layout?: LayoutOptions;
  notation?: NotationOptions;
  target?: Descriptor;
}

/** Verifies layout `name` with `policy` (file name or JSON text) and `certs` (Secret keys → files). */
export async function runLayout(name: string, policy: string, certs: Record<string, Buffer>, o: RunOptions = {}): Promise<VerificationOutcome> {
  const policyText = policy.trim().startsWith('{') ? policy : read(POLICY(policy)).toString();
  const prepared = prepareNotation({ provider: 'notation', secret: secret({ 'trustpolicy.json': policyText, ...certs }) }, { fetch: offlineFetch, ...o.notation });
  const reader = OCILayoutReader.fromDir(LAYOUT(name), o.layout);
  return prepared.verify({ registry: reader, descriptor: o.target ?? E2E_SUBJECT }, { ...(o.limits ? { limits: o.limits } : {}), ...(o.now ? { now: o.now } : {}) });
}

export function policyWith(level: string, extra: Record<string, unknown> = {}, stores = ['ca:e2e'], identities = ['*']): string {
  return JSON.stringify({
    version: '1.0',
    trustPolicies: [{ name: 'e2e', registryScopes: ['*'], signatureVerification: { level, ...extra }, trustStores: stores, trustedIdentities: identities }],
  });
}
