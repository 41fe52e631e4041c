// Turning Secrets referenced by an OCIRepository into registry client options and verifier
// input. Every error names the Secret and key so the user knows what to fix; no Secret content
// is ever put into a message or a log line.
import { isDNS1123Subdomain } from '../api/names.ts';
import type { OCIRepository } from '../api/schema.ts';
import { credentialsFromDockerConfig, CredentialsError, type Credentials } from '../oci/auth.ts';
import type { ClientOptions, ProxyOptions, TLSOptions } from '../oci/client.ts';
import { CloudAuthError, type CloudIdentity, type CloudProviderName } from '../oci/cloud/index.ts';
import { VerifyConfigError, type SecretInput } from '../verify/types.ts';

export interface Secret {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  type?: string;
  data?: Record<string, string>;
}

export interface ServiceAccount {
  metadata: { name: string; namespace?: string; resourceVersion?: string; annotations?: Record<string, string> };
  imagePullSecrets?: { name: string }[];
}

/** The objects of the object's namespace a reconcile reads: Secrets and ServiceAccounts. */
export interface KubeReader {
  getSecret(namespace: string, name: string): Promise<Secret | null>;
  getServiceAccount(namespace: string, name: string): Promise<ServiceAccount | null>;
  /** Workload identity for provider aws|azure|gcp (src/oci/cloud); absent: not configured. */
  cloud?: Pick<CloudIdentity, 'credentials'>;
}

/**
 * Contents of Secrets (or ServiceAccounts), held only for those an object references and only
 * while the metadata watch reports the same resourceVersion, so a steady-state reconcile reads
 * nothing from the apiserver and a rotated Secret is read again on its next use.
 */
export class ContentCache<T extends { metadata: { resourceVersion?: string } }> {
  #entries = new Map<string, T>();
  /** The latest apiserver read of each object and when it began (performance.now()). */
  #reads = new Map<string, { at: number; read: Promise<T | null> }>();
  readonly #fetch: (namespace: string, name: string) => Promise<T | null>;
  readonly #watchedVersion: (namespace: string, name: string) => string | undefined;
  hits = 0;
  misses = 0;

  /** `watchedVersion` answers the resourceVersion the metadata watch last saw, undefined if none. */
  constructor(fetch: (namespace: string, name: string) => Promise<T | null>, watchedVersion: (namespace: string, name: string) => string | undefined) {
    this.#fetch = fetch;
    this.#watchedVersion = watchedVersion;
  }

  async get(namespace: string, name: string): Promise<T | null> {
    const watched = this.#watchedVersion(namespace, name);
    const held = this.#entries.get(`${namespace}/${name}`);
    if (held && watched !== undefined && held.metadata.resourceVersion === watched) {
      this.hits++;
      return held;
    }
    return this.read(namespace, name);
  }

  /**
   * The object as the apiserver had it at some moment after `since` (performance.now()), whatever
   * the watch says. For reconciles a user asked for: the watches of Secrets and of OCIRepositories
   * are separate streams, so "update the Secret, then request a reconcile" can reach us in the
   * other order, and the reconcile must see the update. A read that began after `since` already
   * reflects it, so a burst of requested reconciles shares one read per Secret.
   */
  read(namespace: string, name: string, since = Infinity): Promise<T | null> {
    const key = `${namespace}/${name}`;
    const last = this.#reads.get(key);
    if (last && last.at >= since) {
      this.hits++;
      return last.read;
    }
    this.misses++;
    const read = this.#fetch(namespace, name).then((fresh) => {
      // A watch event seen during the read dropped this read: its answer may predate the change.
      if (this.#reads.get(key)?.read === read) {
        if (fresh) this.#entries.set(key, fresh);
        else this.#entries.delete(key);
      }
      return fresh;
    });
    this.#reads.set(key, { at: performance.now(), read });
    read.catch(() => {
      if (this.#reads.get(key)?.read === read) this.#reads.delete(key);
    });
    return read;
  }

  /** Drops an object's contents (it changed or was deleted). */
  invalidate(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    this.#entries.delete(key);
    this.#reads.delete(key);
  }

  get size(): number {
    return this.#entries.size;
  }
}

/** Credentials/TLS/proxy problem: FetchFailed with reason AuthenticationFailed. */
export class AuthConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuthConfigError';
  }
}

export function secretData(s: Secret): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(s.data ?? {})) out[k] = Buffer.from(v, 'base64');
  return out;
}

/** Names from a spec go into API paths: anything but a DNS-1123 subdomain is refused first. */
function checkName(kind: string, name: string): void {
  if (!isDNS1123Subdomain(name)) throw new AuthConfigError(`${kind} name '${name}' is not a valid Kubernetes object name (a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', at most 253 characters)`);
}

async function mustGet(reader: KubeReader, ns: string, name: string, what: string): Promise<Secret> {
  checkName(`${what} secret`, name);
  const s = await reader.getSecret(ns, name);
  if (!s) throw new AuthConfigError(`${what} secret '${ns}/${name}' not found`);
  return s;
}

function dockerConfigOf(s: Secret, ns: string): Buffer {
  const d = secretData(s);
  const doc = d['.dockerconfigjson'] ?? d['.dockercfg'];
  if (!doc) throw new AuthConfigError(`secret '${ns}/${s.metadata.name}' has no '.dockerconfigjson' key (create it with kubectl create secret docker-registry)`);
  return doc;
}

/** Registry client options for an object: credentials, TLS, proxy and insecure, from its Secrets. */
export async function clientOptions(obj: OCIRepository, registry: string, reader: KubeReader): Promise<Omit<ClientOptions, 'transport'>> {
  const ns = obj.metadata.namespace;
  const spec = obj.spec;
  let credentials: Credentials | undefined;
  let credentialSource: string | undefined;
  try {
    if (spec.secretRef) {
      const s = await mustGet(reader, ns, spec.secretRef.name, 'auth');
      credentialSource = `secret '${ns}/${spec.secretRef.name}' (spec.secretRef)`;
      credentials = credentialsFromDockerConfig(dockerConfigOf(s, ns), registry, `secret '${ns}/${spec.secretRef.name}'`);
    }
    if (!credentials && spec.serviceAccountName) {
      checkName('service account', spec.serviceAccountName);
      const sa = await reader.getServiceAccount(ns, spec.serviceAccountName);
      if (!sa) throw new AuthConfigError(`service account '${ns}/${spec.serviceAccountName}' not found`);
      for (const ref of sa.imagePullSecrets ?? []) {
        // The apiserver does not check these references; a name no Secret can have is skipped like a missing one.
        if (typeof ref?.name !== 'string' || !isDNS1123Subdomain(ref.name)) continue;
        const s = await reader.getSecret(ns, ref.name);
        if (!s) continue;
        credentials = credentialsFromDockerConfig(dockerConfigOf(s, ns), registry, `secret '${ns}/${ref.name}'`);
        if (credentials) {
          credentialSource = `secret '${ns}/${ref.name}' (an imagePullSecret of service account '${ns}/${spec.serviceAccountName}')`;
          break;
        }
      }
    }
  } catch (err) {
    if (err instanceof CredentialsError) throw new AuthConfigError(err.message);
    throw err;
  }
  // As in Flux: Secret credentials win; without any, a cloud provider's workload identity.
  if (!credentials && spec.provider && spec.provider !== 'generic') {
    credentials = await cloudCredentials(obj, spec.provider, registry, reader);
    credentialSource = spec.serviceAccountName ? `provider ${spec.provider} (workload identity of service account '${ns}/${spec.serviceAccountName}')` : `provider ${spec.provider} (the controller's workload identity)`;
  }
  let tls: TLSOptions | undefined;
  if (spec.certSecretRef) {
    const s = await mustGet(reader, ns, spec.certSecretRef.name, 'TLS');
    const d = secretData(s);
    const ca = d['ca.crt'] ?? d['caFile'];
    const cert = d['tls.crt'] ?? d['certFile'];
    const key = d['tls.key'] ?? d['keyFile'];
    if (!ca && !cert) throw new AuthConfigError(`secret '${ns}/${spec.certSecretRef.name}' must hold 'ca.crt' and/or 'tls.crt' + 'tls.key'`);
    if ((cert && !key) || (!cert && key)) throw new AuthConfigError(`secret '${ns}/${spec.certSecretRef.name}': 'tls.crt' and 'tls.key' must be set together`);
    if (ca && !ca.toString().includes('-----BEGIN CERTIFICATE-----')) throw new AuthConfigError(`secret '${ns}/${spec.certSecretRef.name}': key 'ca.crt' is not a PEM certificate`);
    tls = { ...(ca ? { ca } : {}), ...(cert && key ? { cert, key } : {}) };
  }
  let proxy: ProxyOptions | undefined;
  if (spec.proxySecretRef) {
    const s = await mustGet(reader, ns, spec.proxySecretRef.name, 'proxy');
    const d = secretData(s);
    const address = d.address?.toString().trim();
    if (!address) throw new AuthConfigError(`secret '${ns}/${spec.proxySecretRef.name}': key 'address' is required`);
    try {
      new URL(address);
    } catch {
      throw new AuthConfigError(`secret '${ns}/${spec.proxySecretRef.name}': key 'address' is not a URL`);
    }
    proxy = { address, ...(d.username ? { username: d.username.toString() } : {}), ...(d.password ? { password: d.password.toString() } : {}) };
  }
  return {
    ...(credentials ? { credentials, ...(credentialSource ? { credentialSource } : {}) } : {}),
    ...(tls ? { tls } : {}),
    ...(proxy ? { proxy } : {}),
    insecure: !!spec.insecure,
  };
}

async function cloudCredentials(obj: OCIRepository, provider: CloudProviderName, registry: string, reader: KubeReader): Promise<Credentials> {
  if (!reader.cloud) throw new AuthConfigError(`provider '${provider}': workload identity is not configured in this controller`);
  try {
    return await reader.cloud.credentials({ provider, namespace: obj.metadata.namespace, registry, ...(obj.spec.serviceAccountName ? { serviceAccountName: obj.spec.serviceAccountName } : {}) });
  } catch (err) {
    if (err instanceof CloudAuthError) throw new AuthConfigError(`failed to get credentials from ${provider}: ${err.message}`);
    throw err;
  }
}

/** A Secret the verifier reads; a name no Secret can have is a verification configuration error. */
export async function verifySecret(reader: KubeReader, ns: string, name: string): Promise<Secret | null> {
  if (!isDNS1123Subdomain(name)) throw new VerifyConfigError('secret-not-found', `secret name '${name}' is not a valid Kubernetes object name (a DNS-1123 subdomain); no such Secret can exist`);
  return reader.getSecret(ns, name);
}

/** Secret contents for the verifier. */
export function verifySecretInput(ns: string, s: Secret): SecretInput {
  return { name: `${ns}/${s.metadata.name}`, data: secretData(s) };
}

/** Names of all Secrets an object depends on, so Secret changes can re-trigger it. */
export function referencedSecrets(obj: OCIRepository): string[] {
  const s = obj.spec;
  return [s.secretRef?.name, s.certSecretRef?.name, s.proxySecretRef?.name, s.verify?.secretRef?.name, s.verify?.trustedRootSecretRef?.name].filter((n): n is string => !!n);
}
