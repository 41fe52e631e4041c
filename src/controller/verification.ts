// The verify step: load trust material, consult the cache, run the provider, and translate
// the outcome into the SourceVerified condition. Shared by the reconciler and the CLI.
import type { Limits } from '../api/limits.ts';
import type { OCIRepository } from '../api/schema.ts';
import type { RegistryReader } from '../oci/reader.ts';
import type { Descriptor } from '../oci/types.ts';
import { VerifyConfigError, type PreparedVerifier, type Provider, type ProviderName, type VerificationOutcome, type VerifyConfig } from '../verify/types.ts';
import { verifySecret, verifySecretInput, type KubeReader, type Secret } from './secrets.ts';

export function providerLabel(obj: OCIRepository): string {
  const v = obj.spec.verify;
  if (!v) return '';
  return v.provider === 'cosign' && !v.secretRef ? 'cosign keyless' : v.provider;
}

/** The Secrets `spec.verify` names, read (from the Secret cache) but not decoded. */
interface VerifySecrets {
  secret?: Secret;
  trustedRoot?: Secret;
}

/** Reads the object's verification Secrets; missing Secrets are config errors. */
async function verifySecrets(obj: OCIRepository, getter: KubeReader): Promise<VerifySecrets> {
  const v = obj.spec.verify!;
  const ns = obj.metadata.namespace;
  const out: VerifySecrets = {};
  if (v.secretRef) {
    const s = await verifySecret(getter, ns, v.secretRef.name);
    if (!s) throw new VerifyConfigError('secret-not-found', `verification secret '${ns}/${v.secretRef.name}' not found`);
    out.secret = s;
  } else if (v.provider === 'notation') {
    throw new VerifyConfigError('secret-required', `spec.verify.secretRef is required for provider 'notation' (a Secret with trustpolicy.json and certificates)`);
  }
  if (v.trustedRootSecretRef) {
    const s = await verifySecret(getter, ns, v.trustedRootSecretRef.name);
    if (!s) throw new VerifyConfigError('secret-not-found', `trusted root secret '${ns}/${v.trustedRootSecretRef.name}' not found`);
    out.trustedRoot = s;
  }
  return out;
}

/** Builds the provider input from the object's Secrets. */
function verifyConfig(obj: OCIRepository, secrets: VerifySecrets): VerifyConfig {
  const v = obj.spec.verify!;
  const ns = obj.metadata.namespace;
  const config: VerifyConfig = { provider: v.provider };
  if (secrets.secret) config.secret = verifySecretInput(ns, secrets.secret);
  if (secrets.trustedRoot) config.trustedRoot = verifySecretInput(ns, secrets.trustedRoot);
  if (v.matchOIDCIdentity) config.matchOIDCIdentity = v.matchOIDCIdentity;
  return config;
}

/**
 * What a prepared verifier was built from: provider, identity rules and each Secret by name and
 * resourceVersion. Undefined when a Secret has no resourceVersion (then nothing is reused).
 */
function preparedKey(obj: OCIRepository, secrets: VerifySecrets): string | undefined {
  const v = obj.spec.verify!;
  const ref = (s: Secret | undefined) => (s ? (s.metadata.resourceVersion ? `${s.metadata.name}@${s.metadata.resourceVersion}` : undefined) : '-');
  const secret = ref(secrets.secret);
  const root = ref(secrets.trustedRoot);
  if (secret === undefined || root === undefined) return undefined;
  return JSON.stringify([obj.metadata.namespace, v.provider, secret, root, v.matchOIDCIdentity ?? null]);
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
  /**
   * Trust material parsed once per Secret resourceVersion (keys, trust policy, certificates,
   * trusted roots), shared by every object that references the same Secrets. A rotated Secret
   * has a new resourceVersion, hence a new key; the old entry ages out (least recently used).
   */
  #prepared = new Map<string, PreparedVerifier>();
  readonly ttlMs: number;
  readonly maxEntries: number;
  readonly maxPrepared: number;
  hits = 0;
  misses = 0;
  constructor(ttlMs = 60 * 60_000, maxEntries = 10_000, maxPrepared = 1000) {
    this.ttlMs = ttlMs;
    this.maxEntries = maxEntries;
    this.maxPrepared = maxPrepared;
  }
  preparedFor(key: string): PreparedVerifier | undefined {
    const p = this.#prepared.get(key);
    if (p) {
      this.#prepared.delete(key);
      this.#prepared.set(key, p);
    }
    return p;
  }
  keepPrepared(key: string, prepared: PreparedVerifier): void {
    if (this.#prepared.size >= this.maxPrepared) {
      const first = this.#prepared.keys().next().value;
      if (first !== undefined) this.#prepared.delete(first);
    }
    this.#prepared.set(key, prepared);
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
  stats(): { entries: number; prepared: number; hits: number; misses: number } {
    return { entries: this.#entries.size, prepared: this.#prepared.size, hits: this.hits, misses: this.misses };
  }
  clear(): void {
    this.#entries.clear();
    this.#prepared.clear();
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
  const secrets = await verifySecrets(args.obj, args.getter);
  const pkey = preparedKey(args.obj, secrets);
  let prepared = pkey === undefined ? undefined : args.cache.preparedFor(pkey);
  if (!prepared) {
    const config = verifyConfig(args.obj, secrets);
    prepared = await args.providers[config.provider].prepare(config);
    if (pkey !== undefined) args.cache.keepPrepared(pkey, prepared);
  }
  const key = VerifyCache.key(`${args.client.registry}/${args.client.repository}`, args.descriptor.digest, prepared.provider, prepared.fingerprint);
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
