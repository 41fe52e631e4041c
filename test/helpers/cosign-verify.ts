// Small wrappers used by the cosign tests: prepare a verifier from Secret-like inputs and run it.
import { readFileSync } from 'node:fs';
import { cosignProvider } from '../../src/verify/cosign/index.ts';
import type { OIDCIdentityMatch, PreparedVerifier, VerificationOutcome, VerifyConfig } from '../../src/verify/types.ts';
import type { RegistryReader } from '../../src/oci/reader.ts';
import type { Descriptor } from '../../src/oci/types.ts';

export function secret(name: string, data: Record<string, string | Buffer>): { name: string; data: Record<string, Buffer> } {
  return { name, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.isBuffer(v) ? v : Buffer.from(v)])) };
}

export async function prepareKeys(keys: Record<string, string | Buffer>, trustedRoot?: Buffer | string): Promise<PreparedVerifier> {
  const cfg: VerifyConfig = { provider: 'cosign', secret: secret('default/cosign-keys', keys) };
  if (trustedRoot !== undefined) cfg.trustedRoot = secret('default/trusted-root', { 'trusted_root.json': trustedRoot });
  return cosignProvider.prepare(cfg);
}

export async function prepareKeyless(ids: OIDCIdentityMatch[], trustedRoot?: Buffer | string): Promise<PreparedVerifier> {
  const cfg: VerifyConfig = { provider: 'cosign', matchOIDCIdentity: ids };
  if (trustedRoot !== undefined) cfg.trustedRoot = secret('default/trusted-root', { 'trusted_root.json': trustedRoot });
  return cosignProvider.prepare(cfg);
}

export function run(v: PreparedVerifier, registry: RegistryReader, target: Descriptor, maxSignatures = 10): Promise<VerificationOutcome> {
  return v.verify({ registry, descriptor: target }, { limits: { maxSignatures } });
}

export function readText(p: string): string {
  return readFileSync(p, 'utf8');
}

/** Failure codes of the attempts, in order ('ok' for the passing one). */
export function codes(o: VerificationOutcome): string[] {
  return o.attempts.map((a) => a.failure?.code ?? 'ok');
}
