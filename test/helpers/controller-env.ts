// Runs our controller against a harness cluster the way it runs in a real one: the CRD and
// config/rbac applied as shipped, and the controller authenticated with a TokenRequest token
// of the ServiceAccount that config/rbac binds, so the tests prove that RBAC is sufficient.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { Cluster } from '../harness/kube.ts';
import { makeTempDir, startProcess, type ManagedProcess } from '../harness/proc.ts';
import { freePort } from '../harness/ports.ts';
import { projectRoot } from './shared.ts';

export const ControllerNamespace = 'oci-source-system';
export const ControllerSA = 'oci-source-controller';

/**
 * What `kubectl apply -k config/default` applies, minus the Deployment and Service (we run a local
 * process): the namespace, `crds/` as users apply it (`kubectl apply -f crds/`), and the files
 * config/rbac's kustomization lists (so a rule added there is tested without touching this list).
 */
export const InstallFiles = [
  'config/default/namespace.yaml',
  'crds',
  ...(YAML.parse(readFileSync(path.join(projectRoot, 'config/rbac/kustomization.yaml'), 'utf8')) as { resources: string[] }).resources.map((f) => `config/rbac/${f}`),
].map((f) => path.join(projectRoot, f));

/** Applies the CRD and RBAC, waits for the CRD, and returns a kubeconfig for the ServiceAccount. */
export async function installController(cluster: Cluster, dir: string): Promise<string> {
  await cluster.kubectlOk(['apply', ...InstallFiles.flatMap((f) => ['-f', f])]);
  await cluster.kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd/ocirepositories.source.ocisource.dev']);
  return cluster.writeKubeconfig(dir, await serviceAccountToken(cluster, ControllerNamespace, ControllerSA), { fileName: 'controller.kubeconfig' });
}

/** A token for a ServiceAccount, minted with the TokenRequest API (as the kubelet does for a pod). */
export async function serviceAccountToken(cluster: Cluster, namespace: string, name: string): Promise<string> {
  const res = await cluster.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 86400 } },
  });
  if (res.status !== 201 && res.status !== 200) throw new Error(`TokenRequest failed: ${res.status} ${res.text}`);
  return res.body.status.token;
}

export interface ControllerProcess {
  proc: ManagedProcess;
  storagePath: string;
  storagePort: number;
  metricsPort: number;
  /** Base URL of the artifact server. */
  url: string;
  logFile: string;
  stop(): Promise<void>;
  /** Log lines parsed as JSON. */
  logs(): Record<string, unknown>[];
}

/** Starts `node src/main.ts run` as a separate process, as a user would. */
export async function startControllerProcess(opts: { kubeconfig: string; storagePath?: string; storagePort?: number; extraArgs?: string[]; dir?: string; readyPath?: '/readyz' | '/healthz'; env?: NodeJS.ProcessEnv }): Promise<ControllerProcess> {
  const dir = opts.dir ?? makeTempDir('osc-ctrl-');
  const storagePath = opts.storagePath ?? path.join(dir, 'data');
  const storagePort = opts.storagePort ?? (await freePort());
  const metricsPort = await freePort();
  const logFile = path.join(dir, `controller-${Date.now()}.log`);
  const proc = await startProcess({
    name: 'oci-source-controller',
    cmd: process.execPath,
    args: [
      path.join(projectRoot, 'src/main.ts'),
      'run',
      '--kubeconfig', opts.kubeconfig,
      '--storage-path', storagePath,
      '--storage-addr', `127.0.0.1:${storagePort}`,
      '--metrics-addr', `127.0.0.1:${metricsPort}`,
      '--artifact-retention-ttl', '1s',
      '--min-retry-delay', '200ms',
      '--max-retry-delay', '3s',
      '--log-level', 'debug',
      ...(opts.extraArgs ?? []),
    ],
    logFile,
    ...(opts.env ? { env: opts.env } : {}),
    // A replica waiting for the leader lease is healthy but not ready.
    ready: { url: `http://127.0.0.1:${metricsPort}${opts.readyPath ?? '/readyz'}`, timeoutMs: 60_000 },
  });
  return {
    proc,
    storagePath,
    storagePort,
    metricsPort,
    url: `http://127.0.0.1:${storagePort}`,
    logFile,
    stop: () => proc.stop(),
    logs: () =>
      readFileSync(logFile, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

export interface Cond {
  type: string;
  status: string;
  reason: string;
  message: string;
}
export interface RepoObject {
  metadata: { name: string; namespace: string; generation: number; finalizers?: string[]; resourceVersion: string };
  spec: Record<string, unknown>;
  status?: { observedGeneration?: number; conditions?: Cond[]; artifact?: { path: string; url: string; revision: string; digest: string; size: number; metadata?: Record<string, string> }; url?: string; lastHandledReconcileAt?: string };
}

export async function getRepo(cluster: Cluster, ns: string, name: string): Promise<RepoObject | null> {
  const res = await cluster.request<RepoObject>('GET', `/apis/source.ocisource.dev/v1/namespaces/${ns}/ocirepositories/${name}`);
  return res.status === 200 ? res.body : null;
}

export function cond(o: RepoObject | null, type: string): Cond | undefined {
  return o?.status?.conditions?.find((c) => c.type === type);
}

/** Polls until `pred` holds for the object; the error shows the last status seen. */
export async function waitRepo(cluster: Cluster, ns: string, name: string, pred: (o: RepoObject) => boolean, what: string, timeoutMs = 60_000): Promise<RepoObject> {
  const deadline = Date.now() + timeoutMs;
  let last: RepoObject | null = null;
  while (Date.now() < deadline) {
    last = await getRepo(cluster, ns, name);
    if (last && pred(last)) return last;
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`timed out waiting for ${ns}/${name}: ${what}; last status: ${JSON.stringify(last?.status ?? null, null, 2)}`);
}

export function ready(o: RepoObject): boolean {
  const r = cond(o, 'Ready');
  return r?.status === 'True' && o.status?.observedGeneration === o.metadata.generation;
}

export async function applyRepo(cluster: Cluster, obj: Record<string, unknown>): Promise<void> {
  await cluster.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'source.ocisource.dev/v1', kind: 'OCIRepository', ...obj }) });
}
