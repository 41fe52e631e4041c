// What every cloud provider implements, and what it needs from the controller.
import type { Credentials } from '../auth.ts';
import type { CloudHttp } from './http.ts';

export type CloudProviderName = 'azure' | 'aws' | 'gcp';

export interface ServiceAccount {
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
}

/** A token with the moment it stops working (ms since the epoch). */
export interface Expiring<T> {
  value: T;
  expiresAt: number;
}

export interface ProviderContext {
  http: CloudHttp;
  /** The controller's environment (what the cloud's webhook or agent injected). */
  env: NodeJS.ProcessEnv;
  readFile(path: string): Promise<string>;
  /** Facts that never change for the process (GKE cluster metadata), kept by CloudIdentity. */
  memo: Map<string, Promise<unknown>>;
  signal?: AbortSignal;
}

/** One cloud: how to get an access token and turn it into registry credentials. */
export interface CloudProvider<Token = unknown> {
  readonly name: CloudProviderName;
  /**
   * Checks that `host` (without port) is one of this cloud's registries; returns what the
   * registry credentials are scoped to (ACR: the registry host; ECR: the region; GCP: all).
   */
  registryScope(registry: string): string;
  /** Extra access-token cache key parts for a registry scope (Azure: the cloud's scope; AWS: region). */
  accessScope(registryScope: string): string;
  /** The controller's own identity from its environment, for the cache key. */
  controllerIdentity(ctx: ProviderContext): string;
  controllerToken(ctx: ProviderContext, registryScope: string): Promise<Expiring<Token>>;
  /** Identity named by the ServiceAccount's annotations; throws naming the annotation to set. */
  serviceAccountIdentity(sa: ServiceAccount): string;
  /** Audience of the Kubernetes token minted for the ServiceAccount. */
  audience(ctx: ProviderContext, sa: ServiceAccount): Promise<string>;
  serviceAccountToken(ctx: ProviderContext, oidcToken: string, sa: ServiceAccount, audience: string, registryScope: string): Promise<Expiring<Token>>;
  registryCredentials(ctx: ProviderContext, registry: string, registryScope: string, token: Expiring<Token>): Promise<Expiring<Credentials>>;
}

/** Host of a registry address without the port: what registry patterns are matched against. */
export function hostname(registry: string): string {
  const h = registry.toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const i = h.lastIndexOf(':');
  return i >= 0 ? h.slice(0, i) : h;
}
