// The verify step: load trust material, consult the cache, run the provider, and translate
// the outcome into the SourceVerified condition. Shared by the reconciler and the CLI.
import type { Limits } from '../api/limits.ts';
import type { OCIRepository } from '../api/schema.ts';
import type { RegistryReader } from '../oci/reader.ts';
import type { Descriptor } from '../oci/types.ts';
import { VerifyConfigError, type PreparedVerifier, type Provider, type ProviderName, type VerificationOutcome, type VerifyConfig } from '../verify/types.ts';
import { ByteBoundedMap } from '../util/bounded-map.ts';
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

/** Builds the provider input from the object's Secrets; missing Secrets are config errors. */
export async function verifyConfig(obj: OCIRepository, getter: KubeReader): Promise<VerifyConfig> {
  return configFrom(obj, await verifySecrets(obj, getter));
}

function configFrom(obj: OCIRepository, secrets: VerifySecrets): VerifyConfig {
  const v = obj.spec.verify!;
  const ns = obj.metadata.namespace;
  const config: VerifyConfig = { provider: v.provider };
  if (secrets.secret) config.secret = verifySecretInput(ns, secrets.secret);
  if (secrets.trustedRoot) config.trustedRoot = verifySecretInput(ns, secrets.trustedRoot);
  if (v.matchOIDCIdentity) config.matchOIDCIdentity = v.matchOIDCIdentity;
  return config;
}

/** Stands for "no such Secret" in the prepared-verifier map. */
const NoSecret: Secret = { metadata: { name: '' } };

/**
 * Prepared verifiers (parsed keys, trust policy, certificates, trusted roots) by the Secret
 * objects they were built from. The Secret cache hands out the same object until the metadata
 * watch reports a new resourceVersion, so trust material is parsed once per resourceVersion and
 * shared by every object that references the Secret; weak keys let an entry go with the Secret
 * contents the cache drops. Within one pair of Secrets, by provider and identity rules.
 */
class PreparedVerifiers {
  #bySecrets = new WeakMap<Secret, WeakMap<Secret, Map<string, PreparedVerifier>>>();
  /** Distinct (provider, identity rules) per pair of Secrets; keyless objects share one pair. */
  static readonly MaxPerSecrets = 1000;

  #slot(obj: OCIRepository, secrets: VerifySecrets): { map: Map<string, PreparedVerifier>; key: string } {
    const a = secrets.secret ?? NoSecret;
    const b = secrets.trustedRoot ?? NoSecret;
    let inner = this.#bySecrets.get(a);
    if (!inner) this.#bySecrets.set(a, (inner = new WeakMap()));
    let map = inner.get(b);
    if (!map) inner.set(b, (map = new Map()));
    const v = obj.spec.verify!;
    return { map, key: JSON.stringify([v.provider, v.matchOIDCIdentity ?? null]) };
  }

  get(obj: OCIRepository, secrets: VerifySecrets): PreparedVerifier | undefined {
    const { map, key } = this.#slot(obj, secrets);
    return map.get(key);
  }

  set(obj: OCIRepository, secrets: VerifySecrets, prepared: PreparedVerifier): void {
    const { map, key } = this.#slot(obj, secrets);
    if (map.size >= PreparedVerifiers.MaxPerSecrets) map.clear();
    map.set(key, prepared);
  }
}

interface CacheEntry {
  outcome: VerificationOutcome;
  at: number;
}

/**
 * Verification results by (repository, manifest digest, provider, trust-material fingerprint).
 * Only passing and skipped results are cached; failures are retried with backoff. Entries
 * expire so time-dependent checks (certificate expiry, revocation) are redone periodically, and
 * the cache holds at most `maxBytes` (--verification-cache-max-size), oldest out first.
 */
export class VerifyCache {
  readonly #entries: ByteBoundedMap<CacheEntry>;
  /** Trust material parsed once per Secret resourceVersion (see PreparedVerifiers). */
  readonly prepared = new PreparedVerifiers();
  #preparedCount = 0;
  readonly ttlMs: number;
  readonly maxBytes: number;
  hits = 0;
  misses = 0;
  constructor(ttlMs = 60 * 60_000, maxBytes = 16 << 20) {
    this.ttlMs = ttlMs;
    this.maxBytes = maxBytes;
    this.#entries = new ByteBoundedMap(maxBytes);
  }
  /** Counts trust-material parses, for metrics. */
  countPrepared(): void {
    this.#preparedCount++;
  }
  static key(repo: string, digest: string, provider: ProviderName, fingerprint: string): string {
    return `${repo}@${digest}|${provider}|${fingerprint}`;
  }
  /** What an entry costs: its strings as V8 holds them (two bytes a character at most) and the objects around them. */
  static sizeOf(key: string, outcome: VerificationOutcome): number {
    return 2 * (key.length + JSON.stringify(outcome).length) + 256;
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
    this.#entries.set(key, { outcome, at: now }, VerifyCache.sizeOf(key, outcome));
  }
  stats(): { entries: number; bytes: number; prepared: number; hits: number; misses: number } {
    return { entries: this.#entries.size, bytes: this.#entries.bytes, prepared: this.#preparedCount, hits: this.hits, misses: this.misses };
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
  const secrets = await verifySecrets(args.obj, args.getter);
  let prepared = args.cache.prepared.get(args.obj, secrets);
  if (!prepared) {
    const config = configFrom(args.obj, secrets);
    prepared = await args.providers[config.provider].prepare(config);
    args.cache.prepared.set(args.obj, secrets, prepared);
    args.cache.countPrepared();
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
