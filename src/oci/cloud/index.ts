// Workload identity for `provider: azure | aws | gcp`: registry Credentials (src/oci/auth.ts) for
// an object, from the controller's own identity or, behind the ObjectLevelWorkloadIdentity feature
// gate, from a token the apiserver mints for the object's ServiceAccount. The registry client
// consumes the Credentials like any from a Secret, so resolve, signature discovery and pull all
// use them. Results are cached (see cache.ts) so that a steady state asks no cloud endpoint.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Credentials } from '../auth.ts';
import { TokenCache, type CacheRecorder } from './cache.ts';
import { CloudAuthError, CloudHttp } from './http.ts';
import type { CloudProvider, CloudProviderName, Expiring, ProviderContext, ServiceAccount } from './types.ts';

export { CloudAuthError } from './http.ts';
export type { CloudProviderName, ServiceAccount } from './types.ts';

export const FeatureGateObjectLevelWorkloadIdentity = 'ObjectLevelWorkloadIdentity';
export const CloudProviderNames: readonly CloudProviderName[] = ['azure', 'aws', 'gcp'];

/** What workload identity needs from the apiserver (RBAC: serviceaccounts get, serviceaccounts/token create). */
export interface ServiceAccountAccess {
  getServiceAccount(namespace: string, name: string): Promise<ServiceAccount | null>;
  /** TokenRequest for the ServiceAccount with one audience; returns the token. */
  createServiceAccountToken(namespace: string, name: string, audience: string): Promise<string>;
}

export interface CloudIdentityOptions {
  kube: ServiceAccountAccess;
  /** --feature-gates=ObjectLevelWorkloadIdentity=true */
  objectLevel: boolean;
  /** --default-service-account: objects without spec.serviceAccountName use this one of their namespace. */
  defaultServiceAccount?: string;
  /** --token-cache-max-size (0 disables caching) and --token-cache-max-duration. */
  cacheMaxSize: number;
  cacheMaxDurationMs: number;
  recorder?: CacheRecorder;
  env?: NodeJS.ProcessEnv;
  http?: CloudHttp;
}

export interface CloudRequest {
  provider: CloudProviderName;
  namespace: string;
  serviceAccountName?: string;
  /** host[:port] of the registry. */
  registry: string;
  signal?: AbortSignal;
}

const loaders: Record<CloudProviderName, () => Promise<CloudProvider>> = {
  // Loaded on first use: a controller that never sees a cloud provider pays no start-up cost.
  azure: async () => (await import('./azure.ts')).azure as CloudProvider,
  aws: async () => (await import('./aws.ts')).aws as CloudProvider,
  gcp: async () => (await import('./gcp.ts')).gcp as CloudProvider,
};

function cacheKey(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\n')).digest('hex');
}

export class CloudIdentity {
  readonly opts: CloudIdentityOptions;
  readonly cache: TokenCache;
  readonly http: CloudHttp;
  readonly #memo = new Map<string, Promise<unknown>>();

  constructor(opts: CloudIdentityOptions) {
    if (opts.defaultServiceAccount && !opts.objectLevel) {
      throw new Error(`--default-service-account needs --feature-gates=${FeatureGateObjectLevelWorkloadIdentity}=true`);
    }
    this.opts = opts;
    this.http = opts.http ?? new CloudHttp();
    this.cache = new TokenCache({ maxSize: opts.cacheMaxSize, maxDurationMs: opts.cacheMaxDurationMs, ...(opts.recorder ? { recorder: opts.recorder } : {}) });
  }

  /** Registry credentials for one object's pull; throws CloudAuthError naming the failed step. */
  async credentials(req: CloudRequest): Promise<Credentials> {
    const p = await loaders[req.provider]();
    const ctx: ProviderContext = { http: this.http, env: this.opts.env ?? process.env, readFile: (f) => readFile(f, 'utf8'), memo: this.#memo, ...(req.signal ? { signal: req.signal } : {}) };
    const scope = p.registryScope(req.registry);
    const access = await this.#accessToken(p, ctx, req, scope);
    const key = cacheKey(access.key, `registry=${scope}`);
    return this.cache.getOrSet(key, p.name, async () => p.registryCredentials(ctx, req.registry, scope, await access.get()));
  }

  /** The access-token cache key, and how to get the token (from the cache or the cloud). */
  async #accessToken(p: CloudProvider, ctx: ProviderContext, req: CloudRequest, scope: string): Promise<{ key: string; get: () => Promise<Expiring<unknown>> }> {
    const isDefault = !req.serviceAccountName && !!this.opts.defaultServiceAccount;
    const saName = req.serviceAccountName || this.opts.defaultServiceAccount;
    if (!saName) {
      const key = cacheKey(`provider=${p.name}`, `identity=${p.controllerIdentity(ctx)}`, p.accessScope(scope));
      return { key, get: () => this.#cached(key, p.name, () => p.controllerToken(ctx, scope)) };
    }
    const ns = req.namespace;
    if (!this.opts.objectLevel) {
      throw new CloudAuthError('object-level workload identity', `to use spec.serviceAccountName for provider authentication enable the ${FeatureGateObjectLevelWorkloadIdentity} feature gate of the controller (--feature-gates=${FeatureGateObjectLevelWorkloadIdentity}=true), or remove spec.serviceAccountName to use the controller's own identity`);
    }
    const step = `ServiceAccount '${ns}/${saName}'`;
    let sa: ServiceAccount | null;
    try {
      sa = await this.opts.kube.getServiceAccount(ns, saName);
    } catch (err) {
      throw new CloudAuthError(step, `cannot read it: ${(err as Error).message} (the controller needs RBAC 'get' on serviceaccounts)`);
    }
    if (!sa) {
      throw new CloudAuthError(step, isDefault
        ? `not found: the controller runs with --default-service-account=${saName} (multi-tenant workload identity lockdown), so every object with a cloud provider authenticates as that ServiceAccount of its own namespace; create it there, or ask the cluster administrator`
        : 'not found (spec.serviceAccountName must name a ServiceAccount in the object\'s namespace)');
    }
    sa = { metadata: { ...sa.metadata, namespace: sa.metadata.namespace ?? ns } };
    const identity = p.serviceAccountIdentity(sa);
    const audience = await p.audience(ctx, sa);
    const key = cacheKey(`provider=${p.name}`, `identity=${identity}`, `serviceAccount=${ns}/${saName}`, `audience=${audience}`, p.accessScope(scope));
    const account = sa;
    return {
      key,
      get: () =>
        this.#cached(key, p.name, async () => {
          let token: string;
          try {
            token = await this.opts.kube.createServiceAccountToken(ns, saName, audience);
          } catch (err) {
            throw new CloudAuthError(`TokenRequest for ${step} (audience ${audience})`, `${(err as Error).message} (the controller needs RBAC 'create' on serviceaccounts/token)`);
          }
          return p.serviceAccountToken(ctx, token, account, audience, scope);
        }),
    };
  }

  #cached(key: string, provider: string, fetch: () => Promise<Expiring<unknown>>): Promise<Expiring<unknown>> {
    // The cache stores the Expiring wrapper itself so the registry step sees the token's expiry.
    return this.cache.getOrSet(key, provider, async () => {
      const t = await fetch();
      return { value: t, expiresAt: t.expiresAt };
    });
  }

  async close(): Promise<void> {
    await this.http.close();
  }
}
