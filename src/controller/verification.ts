// The verify step: load trust material, consult the cache, run the provider, and translate
// the outcome into the SourceVerified condition. Shared by the reconciler and the CLI.
import type { Limits } from '../api/limits.ts';
import type { OCIRepository } from '../api/schema.ts';
import type { RegistryReader } from '../oci/reader.ts';
import type { Descriptor } from '../oci/types.ts';
import { VerifyConfigError, type PreparedVerifier, type Provider, type ProviderName, type VerificationOutcome, type VerifyConfig } from '../verify/types.ts';
import { verifySecretInput, type KubeReader } from './secrets.ts';

export function providerLabel(obj: OCIRepository): string {
  const v = obj.spec.verify;
  if (!v) return '';
  return v.provider === 'cosign' && !v.secretRef ? 'cosign keyless' : v.provider;
}

/** Builds the provider input from the object's Secrets; missing Secrets are config errors. */
export async function verifyConfig(obj: OCIRepository, getter: KubeReader): Promise<VerifyConfig> {
  const v = obj.spec.verify!;
  const ns = obj.metadata.namespace;
  const config: VerifyConfig = { provider: v.provider };
  if (v.secretRef) {
    const s = await verifySecretInput(getter, ns, v.secretRef.name);
    if (!s) throw new VerifyConfigError('secret-not-found', `verification secret '${ns}/${v.secretRef.name}' not found`);
    config.secret = s;
  } else if (v.provider === 'notation') {
    throw new VerifyConfigError('secret-required', `spec.verify.secretRef is required for provider 'notation' (a Secret with trustpolicy.json and certificates)`);
  }
  if (v.trustedRootSecretRef) {
    const s = await verifySecretInput(getter, ns, v.trustedRootSecretRef.name);
    if (!s) throw new VerifyConfigError('secret-not-found', `trusted root secret '${ns}/${v.trustedRootSecretRef.name}' not found`);
    config.trustedRoot = s;
  }
  if (v.matchOIDCIdentity) config.matchOIDCIdentity = v.matchOIDCIdentity;
  return config;
}

interface CacheEntry {
  outcome: VerificationOutcome;
  at: number;
}

/**
 * Verification results by (repository, manifest digest, provider, trust-material fingerprint).
 * Only passing and skipped results are cached; failures are retried with backoff. Entries
 * expire so time-dependent checks (certificate expiry, revocation) are redone periodically.
 */
export class VerifyCache {
  #entries = new Map<string, CacheEntry>();
  readonly ttlMs: number;
  readonly maxEntries: number;
  hits = 0;
  misses = 0;
  constructor(ttlMs = 60 * 60_000, maxEntries = 10_000) {
    this.ttlMs = ttlMs;
    this.maxEntries = maxEntries;
  }
  static key(repo: string, digest: string, provider: ProviderName, fingerprint: string): string {
    return `${repo}@${digest}|${provider}|${fingerprint}`;
  }
  get(key: string, now = Date.now()): VerificationOutcome | undefined {
    const e = this.#entries.get(key);
    if (e && now - e.at < this.ttlMs) {
      this.hits++;
      return e.outcome;
    }
    if (e) this.#entries.delete(key);
    this.misses++;
    return undefined;
  }
  set(key: string, outcome: VerificationOutcome, now = Date.now()): void {
    if (outcome.status === 'failed') return;
    if (this.#entries.size >= this.maxEntries) {
      const first = this.#entries.keys().next().value;
      if (first !== undefined) this.#entries.delete(first);
    }
    this.#entries.set(key, { outcome, at: now });
  }
  clear(): void {
    this.#entries.clear();
  }
}

export interface VerifyStepResult {
  outcome: VerificationOutcome;
  prepared?: PreparedVerifier;
  cached: boolean;
}

/** Prepares the provider and verifies `descriptor`, using and filling the cache. */
export async function runVerification(args: {
  obj: OCIRepository;
  getter: KubeReader;
  providers: Record<ProviderName, Provider>;
  cache: VerifyCache;
  client: RegistryReader;
  descriptor: Descriptor;
  tag?: string;
  /** Budgets for what the registry and the signatures may make us do. */
  limits: Partial<Limits>;
  signal?: AbortSignal;
  /** What the signal's deadline is, for the timeout message ("spec.timeout 60s"). */
  deadline?: string;
  log?: import('pino').Logger;
}): Promise<VerifyStepResult> {
  const config = await verifyConfig(args.obj, args.getter);
  const provider = args.providers[config.provider];
  const prepared = await provider.prepare(config);
  const key = VerifyCache.key(`${args.client.registry}/${args.client.repository}`, args.descriptor.digest, config.provider, prepared.fingerprint);
  const hit = args.cache.get(key);
  if (hit) return { outcome: hit, prepared, cached: true };
  const outcome = await prepared.verify(
    { registry: args.client, descriptor: args.descriptor, ...(args.tag ? { tag: args.tag } : {}) },
    {
      limits: args.limits,
      ...(args.signal ? { signal: args.signal } : {}),
      ...(args.deadline ? { deadline: args.deadline } : {}),
      ...(args.log ? { log: args.log } : {}),
    },
  );
  args.cache.set(key, outcome);
  return { outcome, prepared, cached: false };
}
