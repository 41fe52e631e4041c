// A real Docker registry (Debian's docker-registry = distribution v2.8) on 127.0.0.1 for tests:
// plain HTTP, TLS with a test CA, htpasswd (bcrypt) Basic auth, or token auth backed by the
// in-process token issuer of token-issuer.ts.
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import YAML from 'yaml';
import { freePort, LOOPBACK } from './ports.ts';
import { isAddressInUse, makeTempDir, removeTempDir, runOk, startProcess, type ManagedProcess } from './proc.ts';
import { createCA, createClientCert, createServerCert, type CA, type CertFiles } from './pki.ts';
import { startTokenIssuer, type TokenGrant, type TokenIssuer } from './token-issuer.ts';

export const DOCKER_REGISTRY_BIN = process.env['OSC_DOCKER_REGISTRY'] ?? '/usr/bin/docker-registry';

/** Where a registry is and how to talk to it; what push.ts functions take. */
export interface RegistryEndpoint {
  /** host:port, e.g. "127.0.0.1:41234" (what goes into an OCI reference). */
  host: string;
  /** Base URL, e.g. "https://127.0.0.1:41234". */
  url: string;
  /** PEM CA that signed the registry's certificate (TLS registries). */
  caPem?: string;
  /** Credentials (htpasswd and token registries). */
  username?: string;
  password?: string;
  /** Client certificate and key (PEM) presented for mTLS. */
  clientCertPem?: string;
  clientKeyPem?: string;
}

export interface TokenAuthOptions {
  /** Grant `pull` to clients without credentials (default false: anonymous tokens grant nothing). */
  anonymousPull?: boolean;
  /** Token lifetime in seconds (default 300). */
  expiresInSeconds?: number;
}

export interface RegistryOptions {
  /** Serve HTTPS with a certificate from a fresh test CA (or `ca` if given). */
  tls?: boolean;
  /** Use this CA for the server certificate instead of a fresh one (implies tls). */
  ca?: CA;
  /**
   * Require client certificates signed by the test CA (implies tls). The returned registry has
   * `clientCert`, and its endpoint fields carry clientCertPem/clientKeyPem so push.ts works.
   */
  mtls?: boolean;
  /** Basic auth with a bcrypt htpasswd file; with tokenAuth, the credentials the issuer accepts. */
  htpasswd?: { user: string; password: string };
  /** Token auth via an in-process issuer (credentials: `htpasswd` or testuser/testpassword). */
  tokenAuth?: boolean | TokenAuthOptions;
  /** Extra distribution config merged at the top level (YAML-able object), e.g. { log: { level: 'debug' } }. */
  extraConfig?: Record<string, unknown>;
}

export interface Registry extends RegistryEndpoint {
  /** Temp dir holding config.yml, data/, certs and registry.log. */
  dir: string;
  logFile: string;
  /** Path of the CA certificate (TLS registries). */
  caFile?: string;
  /** The test CA (TLS registries); can sign client certs etc. */
  ca?: CA;
  /** Server certificate (TLS registries). */
  serverCert?: CertFiles;
  /** Client certificate signed by the test CA (mtls registries). */
  clientCert?: CertFiles;
  /** Token auth only: tokens issued so far (counts every token, including the test pusher's). */
  tokenRequests?: () => number;
  /** Token auth only: details of every token issued. */
  tokenGrants?: () => TokenGrant[];
  /** Token auth only: token realm URL, service and issuer names. */
  token?: { realm: string; service: string; issuer: string };
  /** A plain RegistryEndpoint for this registry with other (or no) credentials. */
  endpoint(creds?: { username: string; password: string } | null): RegistryEndpoint;
  /** SIGKILLs the docker-registry process (a crash); its data directory stays. */
  kill(): Promise<void>;
  /** Starts docker-registry again with the same config, port and data (after kill()). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

const TOKEN_SERVICE = 'osc-test-registry';
const TOKEN_ISSUER = 'osc-test-token-issuer';

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    if (v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)) {
      out[k] = deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>);
    } else out[k] = v;
  }
  return out;
}

/** Starts docker-registry with a generated config; waits until /v2/ answers. */
export async function startRegistry(opts: RegistryOptions = {}): Promise<Registry> {
  const dir = makeTempDir('osc-registry-');
  const cleanups: Array<() => Promise<void> | void> = [];
  try {
    const tls = opts.tls === true || opts.ca !== undefined || opts.mtls === true;
    let ca: CA | undefined;
    let serverCert: CertFiles | undefined;
    let clientCert: CertFiles | undefined;
    if (tls) {
      ca = opts.ca ?? (await createCA(path.join(dir, 'pki'), { cn: 'osc-test-registry-ca' }));
      serverCert = await createServerCert(ca, { dir: path.join(dir, 'pki'), name: 'registry' });
      if (opts.mtls) clientCert = await createClientCert(ca, { dir: path.join(dir, 'pki'), name: 'registry-client', cn: 'osc-test-client' });
    }

    const tokenOpts: TokenAuthOptions | undefined =
      opts.tokenAuth === true ? {} : opts.tokenAuth ? opts.tokenAuth : undefined;
    let username: string | undefined;
    let password: string | undefined;
    const config: Record<string, unknown> = {
      version: '0.1',
      log: { level: 'info', fields: { service: 'registry' } },
      storage: {
        filesystem: { rootdirectory: path.join(dir, 'data') },
        delete: { enabled: true },
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: {
        addr: '', // set per attempt
        secret: randomBytes(16).toString('hex'),
        headers: { 'X-Content-Type-Options': ['nosniff'] },
        ...(tls && serverCert && ca
          ? {
              tls: {
                certificate: serverCert.certFile,
                key: serverCert.keyFile,
                ...(clientCert ? { clientcas: [ca.certFile] } : {}),
              },
            }
          : {}),
      },
      health: { storagedriver: { enabled: false } },
    };

    let issuer: TokenIssuer | undefined;
    if (tokenOpts) {
      username = opts.htpasswd?.user ?? 'testuser';
      password = opts.htpasswd?.password ?? 'testpassword';
      const signer = await createCA(path.join(dir, 'token'), { cn: 'osc-test-token-signer' });
      issuer = await startTokenIssuer({
        signingCertPem: signer.certPem,
        signingKeyPem: signer.keyPem,
        issuer: TOKEN_ISSUER,
        service: TOKEN_SERVICE,
        username,
        password,
        anonymousPull: tokenOpts.anonymousPull,
        expiresInSeconds: tokenOpts.expiresInSeconds,
        tls: serverCert ? { certPem: serverCert.certPem, keyPem: serverCert.keyPem } : undefined,
      });
      const iss = issuer;
      cleanups.push(() => iss.close());
      config['auth'] = {
        token: { realm: issuer.realm, service: TOKEN_SERVICE, issuer: TOKEN_ISSUER, rootcertbundle: signer.certFile },
      };
    } else if (opts.htpasswd) {
      username = opts.htpasswd.user;
      password = opts.htpasswd.password;
      const line = await runOk('htpasswd', ['-Bbn', username, password]);
      const file = path.join(dir, 'htpasswd');
      writeFileSync(file, line.trim() + '\n');
      config['auth'] = { htpasswd: { realm: 'osc-test-registry', path: file } };
    }
    const finalConfig = opts.extraConfig ? deepMerge(config, opts.extraConfig) : config;

    mkdirSync(path.join(dir, 'data'), { recursive: true });
    const logFile = path.join(dir, 'registry.log');
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('REGISTRY_')) env[k] = v;

    let proc: ManagedProcess | undefined;
    let port = 0;
    const launch = (): Promise<ManagedProcess> =>
      startProcess({
        name: 'docker-registry',
        cmd: DOCKER_REGISTRY_BIN,
        args: ['serve', path.join(dir, 'config.yml')],
        logFile,
        cwd: dir,
        env,
        ready: {
          url: `${tls ? 'https' : 'http'}://${LOOPBACK}:${port}/v2/`,
          caPem: ca?.certPem,
          ...(clientCert ? { clientCertPem: clientCert.certPem, clientKeyPem: clientCert.keyPem } : {}),
          okStatus: [200, 401],
          timeoutMs: 30_000,
        },
      });
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      (finalConfig['http'] as Record<string, unknown>)['addr'] = `${LOOPBACK}:${port}`;
      writeFileSync(path.join(dir, 'config.yml'), YAML.stringify(finalConfig));
      try {
        proc = await launch();
        break;
      } catch (err) {
        if (attempt < 3 && isAddressInUse(err)) continue;
        throw err;
      }
    }
    let current: ManagedProcess = proc;
    cleanups.push(() => current.stop());

    const host = `${LOOPBACK}:${port}`;
    const url = `${tls ? 'https' : 'http'}://${host}`;
    const base: RegistryEndpoint = {
      host,
      url,
      ...(ca ? { caPem: ca.certPem } : {}),
      ...(clientCert ? { clientCertPem: clientCert.certPem, clientKeyPem: clientCert.keyPem } : {}),
    };
    const reg: Registry = {
      ...base,
      ...(username !== undefined ? { username, password } : {}),
      dir,
      logFile,
      ...(ca ? { caFile: ca.certFile, ca, serverCert } : {}),
      ...(clientCert ? { clientCert } : {}),
      ...(issuer
        ? {
            tokenRequests: issuer.tokenRequests,
            tokenGrants: issuer.grants,
            token: { realm: issuer.realm, service: TOKEN_SERVICE, issuer: TOKEN_ISSUER },
          }
        : {}),
      endpoint(creds?: { username: string; password: string } | null): RegistryEndpoint {
        if (creds === null) return { ...base };
        const c = creds ?? (username !== undefined && password !== undefined ? { username, password } : undefined);
        return c ? { ...base, username: c.username, password: c.password } : { ...base };
      },
      async kill(): Promise<void> {
        current.child.kill('SIGKILL');
        await current.exited;
      },
      async restart(): Promise<void> {
        if (current.running()) throw new Error('docker-registry is still running; kill() it first');
        current = await launch();
      },
      async stop(): Promise<void> {
        for (const c of cleanups.reverse()) await c();
        cleanups.length = 0;
        removeTempDir(dir);
      },
    };
    return reg;
  } catch (err) {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        /* ignore */
      }
    }
    removeTempDir(dir);
    throw err;
  }
}
