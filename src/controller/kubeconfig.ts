// Where the API server is and how to authenticate to it: in-cluster configuration or kubeconfig
// files, with client-go's semantics for the common cases (server, CA file/data,
// insecure-skip-tls-verify, tls-server-name, token / tokenFile re-read as it rotates, client
// certificate and key, basic auth, impersonation, current-context / --context, namespace).
// @kubernetes/client-node is loaded only for a user that needs what we do not implement (exec
// plugins, auth providers): importing it pulls in its whole generated API, ~70 MB of RSS.
import { readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type https from 'node:https';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';

export const ServiceAccountDir = '/var/run/secrets/kubernetes.io/serviceaccount';

/** A token file is re-read when its last read is older than this (client-go re-reads about every minute). */
const TokenFileMaxAgeMs = 60_000;

export interface KubeOptions {
  /** Kubeconfig file (--kubeconfig); otherwise $KUBECONFIG, ~/.kube/config, then in-cluster. */
  kubeconfig?: string;
  /** Context to use instead of current-context (--context). */
  context?: string;
}

/** What the process sees; tests substitute their own. */
export interface Environment {
  env: NodeJS.ProcessEnv;
  home: string | undefined;
  serviceAccountDir: string;
}

export const processEnvironment = (): Environment => ({ env: process.env, home: process.env.HOME || os.homedir() || undefined, serviceAccountDir: ServiceAccountDir });

export interface RestConfig {
  server: URL;
  /** TLS settings of every connection to the server (https.Agent options). */
  tls: https.AgentOptions;
  /** Namespace of the kubeconfig context, or the pod's namespace in a cluster. */
  namespace: string | undefined;
  /** Puts the credentials on a request (Authorization and impersonation headers). */
  authenticate(req: https.RequestOptions): Promise<void>;
}

export class KubeConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KubeConfigError';
  }
}

/** The configuration client-go would pick: --kubeconfig, $KUBECONFIG, ~/.kube/config, in-cluster. */
export function loadRestConfig(opts: KubeOptions = {}, e: Environment = processEnvironment()): RestConfig {
  if (opts.kubeconfig) return fromKubeconfigFiles([opts.kubeconfig], opts.context);
  const list = (e.env.KUBECONFIG ?? '').split(path.delimiter).filter(Boolean);
  if (list.length) {
    // kubectl skips missing files in $KUBECONFIG.
    const present = list.filter(exists);
    if (!present.length) throw new KubeConfigError(`none of the files in KUBECONFIG exist: ${list.join(', ')}`);
    return fromKubeconfigFiles(present, opts.context);
  }
  const home = e.home ? path.join(e.home, '.kube', 'config') : undefined;
  if (home && exists(home)) return fromKubeconfigFiles([home], opts.context);
  if (e.env.KUBERNETES_SERVICE_HOST && e.env.KUBERNETES_SERVICE_PORT) {
    if (opts.context) throw new KubeConfigError('--context needs a kubeconfig; none was found (in-cluster configuration has no contexts)');
    return inClusterConfig(e);
  }
  throw new KubeConfigError('no Kubernetes configuration found: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, or run in a cluster');
}

/** A pod's configuration: the kubernetes service, the service account's CA, token and namespace. */
export function inClusterConfig(e: Environment = processEnvironment()): RestConfig {
  const host = e.env.KUBERNETES_SERVICE_HOST;
  const port = e.env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) throw new KubeConfigError('in-cluster configuration needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT');
  const dir = e.serviceAccountDir;
  const ca = readFileOrFail(path.join(dir, 'ca.crt'), 'service account CA');
  const token = new TokenFile(path.join(dir, 'token'));
  token.readNow();
  let namespace: string | undefined;
  try {
    namespace = readFileSync(path.join(dir, 'namespace'), 'utf8').trim() || undefined;
  } catch {
    namespace = undefined;
  }
  return {
    server: new URL(`https://${net.isIPv6(host) ? `[${host}]` : host}:${port}`),
    tls: tlsOptions({ ca }),
    namespace,
    authenticate: async (req) => setHeader(req, 'authorization', `Bearer ${await token.get()}`),
  };
}

// Kubeconfig documents as written (client-go's clientcmd/api/v1 field names).
interface NamedCluster {
  name: string;
  cluster: {
    server?: string;
    'certificate-authority'?: string;
    'certificate-authority-data'?: string;
    'insecure-skip-tls-verify'?: boolean;
    'tls-server-name'?: string;
    'proxy-url'?: string;
  };
}
interface NamedUser {
  name: string;
  user?: {
    token?: string;
    tokenFile?: string;
    'client-certificate'?: string;
    'client-certificate-data'?: string;
    'client-key'?: string;
    'client-key-data'?: string;
    username?: string;
    password?: string;
    as?: string;
    'as-uid'?: string;
    'as-groups'?: string[];
    'as-user-extra'?: Record<string, string[]>;
    exec?: unknown;
    'auth-provider'?: unknown;
  };
}
interface NamedContext {
  name: string;
  context?: { cluster?: string; user?: string; namespace?: string };
}
interface KubeconfigDoc {
  clusters?: NamedCluster[];
  users?: NamedUser[];
  contexts?: NamedContext[];
  'current-context'?: string;
}

/** Merges kubeconfig files as kubectl does: the first file to define a name or current-context wins. */
export function fromKubeconfigFiles(files: string[], context?: string): RestConfig {
  const merged: Required<Omit<KubeconfigDoc, 'current-context'>> & { 'current-context'?: string } = { clusters: [], users: [], contexts: [] };
  for (const file of files) {
    const doc = parseKubeconfig(file);
    const dir = path.dirname(path.resolve(file));
    // Relative paths in a kubeconfig are relative to the file that holds them.
    const abs = (p: string | undefined) => (p ? path.resolve(dir, p) : undefined);
    for (const c of doc.clusters ?? []) {
      if (c?.name && !merged.clusters.some((x) => x.name === c.name)) merged.clusters.push({ name: c.name, cluster: { ...c.cluster, ...(c.cluster?.['certificate-authority'] ? { 'certificate-authority': abs(c.cluster['certificate-authority'])! } : {}) } });
    }
    for (const u of doc.users ?? []) {
      if (!u?.name || merged.users.some((x) => x.name === u.name)) continue;
      const user = { ...u.user };
      for (const k of ['tokenFile', 'client-certificate', 'client-key'] as const) if (user[k]) user[k] = abs(user[k]);
      merged.users.push({ name: u.name, user });
    }
    for (const c of doc.contexts ?? []) if (c?.name && !merged.contexts.some((x) => x.name === c.name)) merged.contexts.push(c);
    merged['current-context'] ||= doc['current-context'];
  }
  const source = files.join(path.delimiter);
  const ctxName = context || merged['current-context'];
  if (!ctxName) throw new KubeConfigError(`kubeconfig ${source}: no current-context set and no --context given`);
  const ctx = merged.contexts.find((c) => c.name === ctxName);
  if (!ctx) throw new KubeConfigError(`kubeconfig ${source}: context '${ctxName}' not found`);
  const clusterName = ctx.context?.cluster;
  const cluster = merged.clusters.find((c) => c.name === clusterName)?.cluster;
  if (!cluster) throw new KubeConfigError(`kubeconfig ${source}: context '${ctxName}' names cluster '${clusterName ?? ''}', which is not defined`);
  const userName = ctx.context?.user;
  const user = userName ? merged.users.find((u) => u.name === userName)?.user : {};
  if (!user) throw new KubeConfigError(`kubeconfig ${source}: context '${ctxName}' names user '${userName}', which is not defined`);
  const where = `kubeconfig ${source}, context '${ctxName}'`;

  if (!cluster.server) throw new KubeConfigError(`${where}: cluster '${clusterName}' has no server`);
  let server: URL;
  try {
    server = new URL(cluster.server);
  } catch {
    throw new KubeConfigError(`${where}: server '${cluster.server}' is not a URL`);
  }
  if (cluster['proxy-url']) throw new KubeConfigError(`${where}: proxy-url is not supported; reach the API server directly`);
  const insecure = cluster['insecure-skip-tls-verify'] === true;
  const caData = cluster['certificate-authority-data'];
  const caFile = cluster['certificate-authority'];
  // client-go refuses a CA together with insecure-skip-tls-verify: the user must pick one.
  if (insecure && (caData || caFile)) throw new KubeConfigError(`${where}: insecure-skip-tls-verify cannot be combined with a certificate authority`);
  // Like client-go, inline data wins over a file.
  const ca = caData ? Buffer.from(caData, 'base64') : caFile ? readFileOrFail(caFile, 'certificate-authority') : undefined;
  const serverName = cluster['tls-server-name'];
  const namespace = ctx.context?.namespace || undefined;

  if (user.exec || user['auth-provider']) return delegated(merged, ctxName, server, namespace);

  const cert = user['client-certificate-data'] ? Buffer.from(user['client-certificate-data'], 'base64') : user['client-certificate'] ? readFileOrFail(user['client-certificate'], 'client-certificate') : undefined;
  const key = user['client-key-data'] ? Buffer.from(user['client-key-data'], 'base64') : user['client-key'] ? readFileOrFail(user['client-key'], 'client-key') : undefined;
  if (!!cert !== !!key) throw new KubeConfigError(`${where}: a client certificate and its key must be given together`);
  // client-go: the token file, periodically re-read, takes precedence over an inline token.
  const tokenFile = user.tokenFile ? new TokenFile(user.tokenFile) : undefined;
  tokenFile?.readNow();
  const basic = user.username ? `Basic ${Buffer.from(`${user.username}:${user.password ?? ''}`).toString('base64')}` : undefined;
  const impersonation: [string, string | string[]][] = [
    ...(user.as ? [['impersonate-user', user.as] as [string, string]] : []),
    ...(user['as-uid'] ? [['impersonate-uid', user['as-uid']] as [string, string]] : []),
    ...(user['as-groups']?.length ? [['impersonate-group', user['as-groups']] as [string, string[]]] : []),
    ...Object.entries(user['as-user-extra'] ?? {}).map(([k, v]) => [`impersonate-extra-${encodeURIComponent(k)}`, v] as [string, string[]]),
  ];
  return {
    server,
    tls: tlsOptions({ ...(ca ? { ca } : {}), ...(cert && key ? { cert, key } : {}), insecure, ...(serverName ? { serverName } : {}) }),
    namespace,
    authenticate: async (req) => {
      const bearer = tokenFile ? await tokenFile.get() : user.token;
      if (bearer) setHeader(req, 'authorization', `Bearer ${bearer}`);
      else if (basic) setHeader(req, 'authorization', basic);
      for (const [k, v] of impersonation) setHeader(req, k, v);
    },
  };
}

/**
 * exec plugins and auth providers: @kubernetes/client-node, imported on first use, sets the
 * request's credentials (and TLS options, for plugins that return client certificates).
 */
function delegated(doc: KubeconfigDoc, context: string, server: URL, namespace: string | undefined): RestConfig {
  let kc: Promise<import('@kubernetes/client-node').KubeConfig> | undefined;
  const load = async () => {
    const { KubeConfig } = await import('@kubernetes/client-node');
    const c = new KubeConfig();
    c.loadFromString(JSON.stringify(doc));
    c.setCurrentContext(context);
    return c;
  };
  return {
    server,
    tls: {},
    namespace,
    authenticate: async (req) => {
      kc ??= load();
      await (await kc).applyToHTTPSOptions(req);
    },
  };
}

/** One TLS context for all connections: the CA and client key are parsed once, not per connection. */
function tlsOptions(o: { ca?: Buffer; cert?: Buffer; key?: Buffer; insecure?: boolean; serverName?: string }): https.AgentOptions {
  // Node ignores a CA that is not PEM, which would surface later as a puzzling verification failure.
  if (o.ca && !o.ca.includes('-----BEGIN CERTIFICATE-----')) throw new KubeConfigError('invalid TLS material for the API server: the certificate authority holds no PEM certificate');
  let secureContext: tls.SecureContext;
  try {
    secureContext = tls.createSecureContext({ ...(o.ca ? { ca: o.ca } : {}), ...(o.cert && o.key ? { cert: o.cert, key: o.key } : {}) });
  } catch (err) {
    throw new KubeConfigError(`invalid TLS material for the API server: ${(err as Error).message}`);
  }
  return { secureContext, rejectUnauthorized: !o.insecure, ...(o.serverName ? { servername: o.serverName } : {}) };
}

function setHeader(req: https.RequestOptions, name: string, value: string | string[]): void {
  req.headers = { ...(req.headers as Record<string, string>), [name]: value };
}

/** A bearer token in a file that is rotated underneath us (projected service account tokens). */
class TokenFile {
  readonly path: string;
  #token = '';
  #readAt = 0;
  #reading: Promise<string> | undefined;
  constructor(p: string) {
    this.path = p;
  }
  /** First read, at load time, so a missing file is a start-up error. */
  readNow(): void {
    this.#token = readFileOrFail(this.path, 'token file').toString('utf8').trim();
    this.#readAt = Date.now();
  }
  async get(): Promise<string> {
    if (Date.now() - this.#readAt < TokenFileMaxAgeMs) return this.#token;
    this.#reading ??= readFile(this.path, 'utf8')
      .then(
        (t) => {
          if (t.trim()) this.#token = t.trim();
        },
        // Like client-go: keep the last good token when a re-read fails (e.g. mid-rotation).
        () => undefined,
      )
      .then(() => {
        this.#readAt = Date.now();
        this.#reading = undefined;
        return this.#token;
      });
    return this.#reading;
  }
}

function parseKubeconfig(file: string): KubeconfigDoc {
  const text = readFileOrFail(file, 'kubeconfig').toString('utf8');
  let doc: unknown;
  try {
    // JSON is YAML too; the YAML parser is loaded only for YAML files.
    doc = text.trimStart().startsWith('{') ? JSON.parse(text) : (createRequire(import.meta.url)('yaml') as typeof import('yaml')).parse(text);
  } catch (err) {
    throw new KubeConfigError(`kubeconfig ${file}: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new KubeConfigError(`kubeconfig ${file}: not a kubeconfig document`);
  return doc as KubeconfigDoc;
}

function readFileOrFail(p: string, what: string): Buffer {
  try {
    return readFileSync(p);
  } catch (err) {
    throw new KubeConfigError(`cannot read ${what} '${p}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function exists(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}
