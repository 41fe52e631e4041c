// A real etcd + kube-apiserver v1.20.2 on 127.0.0.1 (see ../shared/notes/kube-apiserver.md).
// The apiserver binary comes from hack/build-kube-apiserver.sh (built and cached on first use).
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { projectRoot } from '../helpers/shared.ts';
import { freePorts, LOOPBACK } from './ports.ts';
import { createCA, createServerCert, type CA } from './pki.ts';
import { isAddressInUse, makeTempDir, probeUrl, removeTempDir, run, runOk, startProcess, type ManagedProcess, type RunResult } from './proc.ts';
import { httpRequest } from './push.ts';

export const KUBECTL_BIN = process.env['OSC_KUBECTL'] ?? '/usr/bin/kubectl';
export const ETCD_BIN = process.env['OSC_ETCD'] ?? '/usr/bin/etcd';

let apiserverPath: Promise<string> | undefined;

/**
 * Path of the kube-apiserver binary: $OSC_KUBE_APISERVER, else the cache path printed by
 * hack/build-kube-apiserver.sh (which builds it first when missing: minutes). Memoised.
 */
export function kubeApiserverBinary(): Promise<string> {
  const fromEnv = process.env['OSC_KUBE_APISERVER'];
  if (fromEnv) return Promise.resolve(fromEnv);
  apiserverPath ??= runOk(path.join(projectRoot, 'hack/build-kube-apiserver.sh'), [], { timeoutMs: 60 * 60_000 }).then((out) => {
    const p = out.trim().split('\n').pop() ?? '';
    if (!p) throw new Error('hack/build-kube-apiserver.sh printed no path');
    return p;
  });
  return apiserverPath;
}

export interface ClusterUser {
  name: string;
  /** Bearer token (random when omitted). */
  token?: string;
  groups?: string[];
}

export interface ClusterOptions {
  /** More static-token users (tokens.csv) besides "admin" and "controller". */
  extraUsers?: ClusterUser[];
  /** Extra kube-apiserver flags (e.g. ["--v=4"]). */
  extraApiserverArgs?: string[];
  /** Startup deadline for each process (default 120 s). */
  timeoutMs?: number;
}

export interface KubectlOptions {
  /** Bearer token to use (default: admin). */
  token?: string;
  /** stdin (e.g. a manifest for `apply -f -`). */
  input?: string;
}

export interface KubeResponse<T = unknown> {
  status: number;
  /** Parsed JSON body (undefined when the body is not JSON). */
  body: T;
  text: string;
}

export interface Cluster {
  /** https://127.0.0.1:<port> */
  server: string;
  port: number;
  /** CA that signed the apiserver's serving certificate (and verifies client certificates). */
  caFile: string;
  caPem: string;
  /** The test CA itself (can sign client certs for x509 auth: CN=user, O=group). */
  ca: CA;
  /** Token of user "admin" in group system:masters. */
  adminToken: string;
  /** Token of user "controller" with no groups (no permissions until RBAC grants them). */
  controllerToken: string;
  /** user name → token, for admin, controller and extraUsers. */
  tokens: Record<string, string>;
  /** Kubeconfig for admin (in the cluster's temp dir). */
  adminKubeconfig: string;
  etcdUrl: string;
  dir: string;
  logs: { etcd: string; apiserver: string };
  /** Writes a kubeconfig (CA embedded, bearer token) into `dir` and returns its path. */
  writeKubeconfig(dir: string, token: string, opts?: { fileName?: string; namespace?: string }): string;
  /** Stops the kube-apiserver (SIGTERM, or SIGKILL when `kill`); etcd and its data stay. */
  stopApiserver(opts?: { kill?: boolean }): Promise<void>;
  /** Starts the kube-apiserver again on the same port, etcd and certificates; resolves when ready. */
  startApiserver(): Promise<void>;
  /** Runs /usr/bin/kubectl with a kubeconfig for `token` (default admin). Never throws on exit code. */
  kubectl(args: readonly string[], opts?: KubectlOptions): Promise<RunResult>;
  /** Like kubectl() but throws unless the exit code is 0; returns stdout. */
  kubectlOk(args: readonly string[], opts?: KubectlOptions): Promise<string>;
  /** A raw REST call, e.g. request('GET', '/api/v1/namespaces/default'); default token admin. */
  request<T = unknown>(method: string, apiPath: string, opts?: { token?: string; body?: unknown; contentType?: string }): Promise<KubeResponse<T>>;
  stop(): Promise<void>;
}

function csvField(s: string): string {
  return /[",]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function kubeconfigYaml(server: string, caPem: string, token: string, namespace?: string): string {
  return YAML.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'osc-test', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    users: [{ name: 'osc-test-user', user: { token } }],
    contexts: [{ name: 'osc-test', context: { cluster: 'osc-test', user: 'osc-test-user', ...(namespace ? { namespace } : {}) } }],
    'current-context': 'osc-test',
    preferences: {},
  });
}

/** Starts etcd + kube-apiserver on free loopback ports; resolves once /readyz is ok and "default" exists. */
export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const apiserverBin = await kubeApiserverBinary();
  const dir = makeTempDir('osc-cluster-');
  const procs: ManagedProcess[] = [];
  const stopAll = async (): Promise<void> => {
    for (const p of procs.reverse()) await p.stop();
    procs.length = 0;
  };
  try {
    const timeoutMs = opts.timeoutMs ?? 120_000;
    const pkiDir = path.join(dir, 'pki');
    const ca = await createCA(pkiDir, { cn: 'osc-test-kube-ca' });
    const serving = await createServerCert(ca, {
      name: 'apiserver',
      cn: 'kube-apiserver',
      sans: ['IP:127.0.0.1', 'DNS:localhost', 'IP:10.0.0.1', 'DNS:kubernetes', 'DNS:kubernetes.default', 'DNS:kubernetes.default.svc', 'DNS:kubernetes.default.svc.cluster.local'],
    });
    const saKey = path.join(pkiDir, 'sa.key');
    const saPub = path.join(pkiDir, 'sa.pub');
    await runOk('openssl', ['genrsa', '-out', saKey, '2048']);
    await runOk('openssl', ['rsa', '-in', saKey, '-pubout', '-out', saPub]);

    const tokens: Record<string, string> = {
      admin: randomBytes(24).toString('hex'),
      controller: randomBytes(24).toString('hex'),
    };
    const lines = [
      `${tokens['admin']},admin,uid-admin,"system:masters"`,
      `${tokens['controller']},controller,uid-controller`,
    ];
    for (const u of opts.extraUsers ?? []) {
      const tok = u.token ?? randomBytes(24).toString('hex');
      tokens[u.name] = tok;
      const groups = u.groups && u.groups.length > 0 ? `,"${u.groups.join(',').replace(/"/g, '""')}"` : '';
      lines.push(`${tok},${csvField(u.name)},uid-${csvField(u.name)}${groups}`);
    }
    const tokensFile = path.join(dir, 'tokens.csv');
    writeFileSync(tokensFile, lines.join('\n') + '\n', { mode: 0o600 });
    const adminToken = tokens['admin'] as string;
    const controllerToken = tokens['controller'] as string;

    const etcdLog = path.join(dir, 'etcd.log');
    const apiLog = path.join(dir, 'kube-apiserver.log');
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD_')) env[k] = v;

    let etcdUrl = '';
    let apiPort = 0;
    const launchApiserver = (): Promise<ManagedProcess> =>
      startProcess({
        name: 'kube-apiserver',
        cmd: apiserverBin,
        args: [
          `--etcd-servers=${etcdUrl}`,
          `--bind-address=${LOOPBACK}`,
          `--advertise-address=${LOOPBACK}`,
          `--secure-port=${apiPort}`,
          '--insecure-port=0',
          `--cert-dir=${path.join(dir, 'certs')}`,
          `--tls-cert-file=${serving.certFile}`,
          `--tls-private-key-file=${serving.keyFile}`,
          `--client-ca-file=${ca.certFile}`,
          '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
          `--service-account-key-file=${saPub}`,
          `--service-account-signing-key-file=${saKey}`,
          '--service-cluster-ip-range=10.0.0.0/24',
          `--token-auth-file=${tokensFile}`,
          '--authorization-mode=RBAC',
          '--disable-admission-plugins=ServiceAccount',
          '--allow-privileged=true',
          '--endpoint-reconciler-type=none',
          ...(opts.extraApiserverArgs ?? []),
        ],
        logFile: apiLog,
        env,
        ready: {
          url: `https://${LOOPBACK}:${apiPort}/readyz`,
          okStatus: [200],
          caPem: ca.certPem,
          headers: { authorization: `Bearer ${adminToken}` },
          timeoutMs,
          intervalMs: 250,
          // The bootstrap controller creates "default" shortly after /readyz turns ok.
          check: async () =>
            (await probeUrl(`https://${LOOPBACK}:${apiPort}/api/v1/namespaces/default`, {
              caPem: ca.certPem,
              headers: { authorization: `Bearer ${adminToken}` },
            })) === 200,
        },
      });
    for (let attempt = 1; ; attempt++) {
      const [pClient, pPeer, pMetrics, pApi] = (await freePorts(4)) as [number, number, number, number];
      etcdUrl = `http://${LOOPBACK}:${pClient}`;
      const peerUrl = `http://${LOOPBACK}:${pPeer}`;
      apiPort = pApi;
      try {
        const dataDir = path.join(dir, `etcd-data-${attempt}`);
        mkdirSync(dataDir, { recursive: true, mode: 0o700 });
        procs.push(
          await startProcess({
            name: 'etcd',
            cmd: ETCD_BIN,
            args: [
              '--name', 'test', '--data-dir', dataDir,
              '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
              '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl,
              '--initial-cluster', `test=${peerUrl}`,
              '--listen-metrics-urls', `http://${LOOPBACK}:${pMetrics}`,
            ],
            logFile: etcdLog,
            env,
            ready: { url: `${etcdUrl}/health`, okStatus: [200], timeoutMs },
          }),
        );
        procs.push(await launchApiserver());
        break;
      } catch (err) {
        await stopAll();
        if (attempt < 3 && isAddressInUse(err)) continue;
        throw err;
      }
    }

    const server = `https://${LOOPBACK}:${apiPort}`;
    const kubeconfigs = new Map<string, string>();
    const kubeconfigFor = (token: string): string => {
      let p = kubeconfigs.get(token);
      if (!p) {
        p = path.join(dir, `kubeconfig-${createHash('sha256').update(token).digest('hex').slice(0, 12)}`);
        writeFileSync(p, kubeconfigYaml(server, ca.certPem, token), { mode: 0o600 });
        kubeconfigs.set(token, p);
      }
      return p;
    };
    const adminKubeconfig = kubeconfigFor(adminToken);
    const kubectl = (args: readonly string[], o: KubectlOptions = {}): Promise<RunResult> =>
      run(KUBECTL_BIN, [`--kubeconfig=${kubeconfigFor(o.token ?? adminToken)}`, ...args], {
        input: o.input,
        env: { ...process.env, KUBECONFIG: '', HOME: dir },
      });

    const cluster: Cluster = {
      server,
      port: apiPort,
      caFile: ca.certFile,
      caPem: ca.certPem,
      ca,
      adminToken,
      controllerToken,
      tokens,
      adminKubeconfig,
      etcdUrl,
      dir,
      logs: { etcd: etcdLog, apiserver: apiLog },
      writeKubeconfig(target: string, token: string, o: { fileName?: string; namespace?: string } = {}): string {
        mkdirSync(target, { recursive: true });
        const p = path.join(target, o.fileName ?? 'kubeconfig');
        writeFileSync(p, kubeconfigYaml(server, ca.certPem, token, o.namespace), { mode: 0o600 });
        return p;
      },
      kubectl,
      async kubectlOk(args: readonly string[], o: KubectlOptions = {}): Promise<string> {
        let r = await kubectl(args, o);
        // kubectl's client-side validation downloads the OpenAPI document with a short deadline
        // that a loaded machine can miss; that is the tool timing out, not the apiserver refusing.
        for (let i = 0; i < 3 && r.code !== 0 && /failed to download openapi/.test(r.stderr); i++) r = await kubectl(args, o);
        if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
        return r.stdout;
      },
      async request<T = unknown>(
        method: string,
        apiPath: string,
        o: { token?: string; body?: unknown; contentType?: string } = {},
      ): Promise<KubeResponse<T>> {
        const headers: Record<string, string> = { authorization: `Bearer ${o.token ?? adminToken}`, accept: 'application/json' };
        let body: string | undefined;
        if (o.body !== undefined) {
          body = typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
          headers['content-type'] = o.contentType ?? 'application/json';
        }
        const res = await httpRequest(server + apiPath, method, { headers, body, caPem: ca.certPem });
        const text = res.body.toString('utf8');
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
        return { status: res.status, body: parsed as T, text };
      },
      async stopApiserver(o: { kill?: boolean } = {}): Promise<void> {
        const i = procs.findIndex((p) => p.name === 'kube-apiserver');
        if (i < 0) return;
        const [api] = procs.splice(i, 1);
        if (o.kill) {
          api!.child.kill('SIGKILL');
          await api!.exited;
        } else await api!.stop();
      },
      async startApiserver(): Promise<void> {
        if (procs.some((p) => p.name === 'kube-apiserver')) throw new Error('kube-apiserver is already running');
        procs.push(await launchApiserver());
      },
      async stop(): Promise<void> {
        await stopAll();
        removeTempDir(dir);
      },
    };
    return cluster;
  } catch (err) {
    await stopAll();
    removeTempDir(dir);
    throw err;
  }
}
