// The container image, run the way config/default deploys it. There is no kubelet here, so the
// test does the kubelet's part with docker: `make image` (cached), a dockerd of our own, and
// `docker run --network host` of the image with the rendered Deployment's args, env (downward-API
// values filled in), volumes, security context and limits, and in-cluster credentials (a
// TokenRequest token of the ServiceAccount that config/rbac binds, the apiserver CA and the
// namespace at /var/run/secrets/kubernetes.io/serviceaccount, KUBERNETES_SERVICE_HOST/PORT).
// Only the listen and advertise addresses are changed, to free loopback ports.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseAllDocuments } from 'yaml';
import { freePorts, isPortOpen, makeTempDir, probeUrl, pushTarGzArtifact, runOk, startCluster, startDocker, startRegistry, type Cluster, type Docker, type Registry } from '../harness/index.ts';
import { applyRepo, serviceAccountToken, waitRepo, ready, type RepoObject } from '../helpers/controller-env.ts';
import { projectRoot } from '../helpers/shared.ts';
import { leaseName } from '../../src/cli/run.ts';

const ImageTar = path.join(projectRoot, 'dist/image.tar');
const ServiceAccountDir = '/var/run/secrets/kubernetes.io/serviceaccount';

interface Probe {
  httpGet: { path: string; port: string | number };
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports?: { name?: string; containerPort: number }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; privileged?: boolean; runAsUser?: number; runAsGroup?: number; capabilities?: { drop?: string[]; add?: string[] } };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface Deployment {
  kind: 'Deployment';
  metadata: { name: string; namespace: string };
  spec: {
    template: {
      spec: {
        serviceAccountName: string;
        automountServiceAccountToken?: boolean;
        terminationGracePeriodSeconds?: number;
        securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; runAsGroup?: number; fsGroup?: number; seccompProfile?: { type: string } };
        containers: Container[];
        volumes?: { name: string; emptyDir?: object }[];
      };
    };
  };
}
interface Manifest {
  kind: string;
  metadata: { name: string; namespace?: string };
}
interface Lease {
  spec: { holderIdentity?: string };
}

/** The pod the kubelet would start, as `docker run` arguments. Anything it cannot map fails. */
function dockerRunArgs(dep: Deployment, o: { name: string; image: string; imageUser: string; volumes: Map<string, string>; saDir: string; apiPort: number; overrides: Record<string, string> }): string[] {
  const pod = dep.spec.template.spec;
  assert.equal(pod.containers.length, 1, 'one container');
  const c = pod.containers[0]!;
  const psc = pod.securityContext ?? {};
  const csc = c.securityContext ?? {};
  const out = ['--name', o.name, '--network', 'host'];

  // Environment, with the downward API filled in as the kubelet does.
  const env = new Map<string, string>();
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env.set(e.name, e.value);
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') env.set(e.name, dep.metadata.namespace);
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env.set(e.name, o.name);
    else if (e.valueFrom?.fieldRef?.fieldPath === 'spec.serviceAccountName') env.set(e.name, pod.serviceAccountName);
    else throw new Error(`env ${e.name}: no mapping for ${JSON.stringify(e.valueFrom)}`);
  }
  env.set('KUBERNETES_SERVICE_HOST', '127.0.0.1');
  env.set('KUBERNETES_SERVICE_PORT', String(o.apiPort));
  for (const [k, v] of env) out.push('--env', `${k}=${v}`);

  // Security context.
  const user = csc.runAsUser ?? psc.runAsUser;
  const group = csc.runAsGroup ?? psc.runAsGroup;
  const effectiveUser = user !== undefined ? String(user) : o.imageUser.split(':')[0]!;
  if (psc.runAsNonRoot) {
    // The kubelet refuses to start a container whose user is root or not numeric.
    assert.match(effectiveUser, /^[0-9]+$/, 'runAsNonRoot needs a numeric user');
    assert.notEqual(Number(effectiveUser), 0, 'runAsNonRoot');
  }
  if (user !== undefined) out.push('--user', group !== undefined ? `${user}:${group}` : String(user));
  if (psc.fsGroup !== undefined) out.push('--group-add', String(psc.fsGroup));
  const seccomp = psc.seccompProfile?.type ?? 'RuntimeDefault';
  if (seccomp === 'Unconfined') out.push('--security-opt', 'seccomp=unconfined');
  else assert.equal(seccomp, 'RuntimeDefault', 'seccomp profile'); // docker's default profile
  if (csc.readOnlyRootFilesystem) out.push('--read-only');
  if (csc.allowPrivilegeEscalation === false) out.push('--security-opt', 'no-new-privileges');
  if (csc.privileged) out.push('--privileged');
  for (const cap of csc.capabilities?.drop ?? []) out.push('--cap-drop', cap);
  for (const cap of csc.capabilities?.add ?? []) out.push('--cap-add', cap);

  // Resources: limits are enforced; the memory request becomes docker's soft limit.
  const mem = (q: string) => {
    const m = /^([0-9]+)(Ki|Mi|Gi)?$/.exec(q);
    if (!m) throw new Error(`memory quantity ${q}`);
    return `${m[1]}${{ Ki: 'k', Mi: 'm', Gi: 'g', '': 'b' }[m[2] ?? '']}`;
  };
  const cpu = (q: string) => String(q.endsWith('m') ? Number(q.slice(0, -1)) / 1000 : Number(q));
  if (c.resources?.limits?.['memory']) out.push('--memory', mem(c.resources.limits['memory']));
  if (c.resources?.requests?.['memory']) out.push('--memory-reservation', mem(c.resources.requests['memory']));
  if (c.resources?.limits?.['cpu']) out.push('--cpus', cpu(c.resources.limits['cpu']));

  // Volumes: one docker volume per mount (emptyDir only), and the ServiceAccount's credentials.
  for (const m of c.volumeMounts ?? []) {
    const v = pod.volumes?.find((x) => x.name === m.name);
    assert.ok(v?.emptyDir, `volume ${m.name}: only emptyDir is mapped`);
    const dv = o.volumes.get(m.name);
    assert.ok(dv, `docker volume for ${m.name}`);
    out.push('--volume', `${dv}:${m.mountPath}${m.readOnly ? ':ro' : ''}`);
  }
  if (pod.automountServiceAccountToken !== false) out.push('--volume', `${o.saDir}:${ServiceAccountDir}:ro`);

  // Arguments: $(VAR) expanded from the container's env as the kubelet does; then only the
  // listen and advertise addresses are replaced.
  const expand = (s: string) => s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string | undefined) => (v === undefined ? '$' : (env.get(v) ?? m)));
  const seen = new Set<string>();
  const args = [...(c.command?.slice(1) ?? []), ...(c.args ?? [])].map(expand).map((a) => {
    const flag = a.split('=')[0]!;
    if (!(flag in o.overrides)) return a;
    seen.add(flag);
    return `${flag}=${o.overrides[flag]}`;
  });
  assert.deepEqual([...seen].sort(), Object.keys(o.overrides).sort(), 'every overridden flag is in the Deployment');
  if (c.command?.[0]) out.push('--entrypoint', c.command[0]);
  return [...out, o.image, ...args];
}

describe('the image, run as config/default deploys it', { timeout: 2_700_000 }, () => {
  let cluster: Cluster;
  let reg: Registry;
  let docker: Docker;
  let rendered: string;
  let docs: Manifest[];
  let dep: Deployment;
  let ns: string;
  let imageUser: string;
  let buildMs = 0;
  const dir = makeTempDir('osc-image-');
  const saDir = path.join(dir, 'serviceaccount');

  before(
    async () => {
      // First build on a fresh machine: minutes (installs docker.io, assembles the base); then cached.
      const started = Date.now();
      await runOk('make', ['--no-print-directory', 'image'], { cwd: projectRoot, timeoutMs: 40 * 60_000 });
      buildMs = Date.now() - started;
      [cluster, reg, docker] = await Promise.all([startCluster(), startRegistry(), startDocker()]);
      await docker.dockerOk(['load', '-i', ImageTar], { timeoutMs: 300_000 });
      imageUser = (await docker.dockerOk(['image', 'inspect', '-f', '{{.Config.User}}', 'oci-source-controller:dev'])).trim();
      rendered = await cluster.kubectlOk(['kustomize', path.join(projectRoot, 'config/default')]);
      docs = parseAllDocuments(rendered).map((d) => d.toJS() as Manifest);
      dep = docs.find((d) => d.kind === 'Deployment') as unknown as Deployment;
      ns = dep.metadata.namespace;
    },
    { timeout: 45 * 60_000 },
  );
  after(async () => {
    await docker?.stop();
    await Promise.all([cluster?.stop(), reg?.stop()]);
  });

  test('kubectl apply -k config/default installs the namespace, CRD, RBAC, Deployment, Service and NetworkPolicy', async (t) => {
    t.diagnostic(`make image: ${Math.round(buildMs / 1000)} s`);
    const kinds = docs.map((d) => d.kind).sort();
    for (const k of ['Namespace', 'CustomResourceDefinition', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'Deployment', 'Service', 'NetworkPolicy']) assert.ok(kinds.includes(k), `${k} in ${kinds.join(',')}`);
    await cluster.kubectlOk(['apply', '-k', path.join(projectRoot, 'config/default')]);
    await cluster.kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd/ocirepositories.source.ocisource.dev']);
    // Every object is there (kubectl get fails on a missing one).
    const names = (await cluster.kubectlOk(['get', '-f', '-', '-o', 'name'], { input: rendered })).trim().split('\n');
    assert.equal(names.length, docs.length, names.join(','));
    // The image is set through kustomize `images:` (what users change to pin a registry and digest).
    const kustomization = readFileSync(path.join(projectRoot, 'config/default/kustomization.yaml'), 'utf8');
    assert.match(kustomization, /^images:/m);
    assert.equal(dep.spec.template.spec.containers[0]!.image, 'oci-source-controller:dev', 'the image `make image` builds');
  });

  test('the image: OCI labels, numeric non-root user, compiled code and production dependencies only', async () => {
    const inspect = JSON.parse(await docker.dockerOk(['image', 'inspect', 'oci-source-controller:dev']))[0] as { Config: { User: string; Labels: Record<string, string>; Volumes: Record<string, object> | null } };
    assert.match(inspect.Config.User, /^[1-9][0-9]*(:[0-9]+)?$/, 'numeric non-root user');
    const labels = inspect.Config.Labels;
    const pkg = JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string };
    assert.equal(labels['org.opencontainers.image.version'], pkg.version);
    assert.match(labels['org.opencontainers.image.revision'] ?? '', /^[0-9a-f]{40}(-dirty)?$/);
    assert.ok(labels['org.opencontainers.image.source'], 'source label');
    // Everything the Deployment mounts writable is a declared volume (the root filesystem is read-only).
    for (const m of dep.spec.template.spec.containers[0]!.volumeMounts ?? []) assert.ok(inspect.Config.Volumes?.[m.mountPath], `VOLUME ${m.mountPath}`);
    // What is in it: export the filesystem of a (never started) container.
    const id = (await docker.dockerOk(['create', 'oci-source-controller:dev'])).trim();
    const list = await runOk('sh', ['-c', `"$0" -H "$1" export "$2" | tar -t`, '/usr/bin/docker', docker.host, id], { timeoutMs: 120_000 });
    await docker.dockerOk(['rm', id]);
    const files = list.split('\n').filter(Boolean);
    assert.ok(files.includes('app/dist/src/main.js'));
    assert.ok(files.includes('usr/local/bin/node'));
    const unwanted = files.filter(
      (f) =>
        /\.(ts|mts|cts|map)$/.test(f) || // TypeScript sources and declarations, source maps
        /^app\/(src|test|dist\/test)\//.test(f) || // sources and tests
        /(^|\/)node_modules\/(npm|typescript|@types)\//.test(f) || // npm, dev dependencies
        /^(usr\/)?(local\/)?s?bin\/(sh|bash|dash|npm|npx)$/.test(f), // no shell, no npm
    );
    assert.deepEqual(unwanted, [], 'no TypeScript, source maps, tests, dev dependencies, npm or shell');
  });

  test('runs as deployed: leader Lease, Ready artifact served, probes and metrics, SIGTERM exits 0, a new container serves the stored artifact at once', async (t) => {
    const pod = dep.spec.template.spec;
    const c = pod.containers[0]!;
    // In-cluster credentials, as the kubelet projects them.
    mkdirSync(saDir, { mode: 0o755 });
    writeFileSync(path.join(saDir, 'token'), await serviceAccountToken(cluster, ns, pod.serviceAccountName), { mode: 0o644 });
    writeFileSync(path.join(saDir, 'ca.crt'), cluster.caPem, { mode: 0o644 });
    writeFileSync(path.join(saDir, 'namespace'), ns, { mode: 0o644 });

    // Free loopback ports for the addresses the Deployment listens on; each replaces the port
    // that the Deployment's own flag names (so ports, flags and probes must agree).
    const [storagePort, metricsPort] = (await freePorts(2)) as [number, number];
    const arg = (flag: string) => (c.args ?? []).find((a) => a.startsWith(`${flag}=`))?.slice(flag.length + 1) ?? '';
    const portName = (addr: string) => c.ports?.find((p) => `:${p.containerPort}` === addr.slice(addr.lastIndexOf(':')))?.name;
    const hostPort = new Map<string | number, number>();
    for (const [flag, port] of [['--storage-addr', storagePort], ['--metrics-addr', metricsPort]] as const) {
      const name = portName(arg(flag));
      assert.ok(name, `${flag}=${arg(flag)} is a named container port`);
      hostPort.set(name, port);
    }
    const overrides = { '--storage-addr': `127.0.0.1:${storagePort}`, '--storage-adv-addr': `127.0.0.1:${storagePort}`, '--metrics-addr': `127.0.0.1:${metricsPort}` };
    const volumes = new Map<string, string>();
    for (const m of c.volumeMounts ?? []) {
      const name = `osc-${m.name}`;
      await docker.dockerOk(['volume', 'create', name]);
      volumes.set(m.name, name);
    }
    const runArgs = (name: string) => dockerRunArgs(dep, { name, image: c.image, imageUser, volumes, saDir, apiPort: cluster.port, overrides });
    const stopTimeout = String(pod.terminationGracePeriodSeconds ?? 30);
    const probe = (p: Probe | undefined) => {
      assert.ok(p, 'probe');
      const port = hostPort.get(p.httpGet.port);
      assert.ok(port, `probe port ${p.httpGet.port} is the metrics port`);
      return probeUrl(`http://127.0.0.1:${port}${p.httpGet.path}`);
    };
    let current = '';
    const until = async <T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const v = await f().catch(() => undefined);
        if (v !== undefined) return v;
        if (Date.now() > deadline) throw new Error(`timed out: ${what}; ${current} logs:\n${(await docker.docker(['logs', '--tail', '40', current])).stdout}`);
        await sleep(200);
      }
    };
    const lease = async () => (await cluster.request<Lease>('GET', `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${leaseName(undefined)}`)).body;
    const logs = async (name: string) =>
      (await docker.dockerOk(['logs', name]))
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg: string; level: string; time: string });
    const stopAndCheck = async (name: string) => {
      await docker.dockerOk(['stop', '-t', stopTimeout, name], { timeoutMs: 60_000 });
      const state = JSON.parse(await docker.dockerOk(['inspect', '-f', '{{json .State}}', name])) as { ExitCode: number; OOMKilled: boolean };
      // docker stop sends SIGTERM, then SIGKILL after the grace period: exit code 0 means the
      // process ended by itself, within it.
      assert.deepEqual({ exit: state.ExitCode, oom: state.OOMKilled }, { exit: 0, oom: false }, (await docker.docker(['logs', '--tail', '30', name])).stdout);
      const lines = await logs(name);
      const msgs = lines.map((l) => l.msg);
      for (const m of ['shutting down', 'released leader lease', 'shutdown complete']) assert.ok(msgs.includes(m), `log "${m}" in ${JSON.stringify(msgs.slice(-8))}`);
      const at = (m: string) => Date.parse((lines.find((l) => l.msg === m) as { time: string }).time);
      t.diagnostic(`${name}: SIGTERM to exit ${at('shutdown complete') - at('shutting down')} ms (docker stop -t ${stopTimeout})`);
    };

    // 1. Start it; leader election takes the Lease in the runtime namespace.
    current = 'ctrl-1';
    await docker.dockerOk(['run', '--detach', ...runArgs(current)]);
    await until('liveness', async () => ((await probe(c.livenessProbe)) === 200 ? true : undefined));
    const held = await until('lease held', async () => (await lease())?.spec?.holderIdentity || undefined);
    assert.ok(held);
    await until('ready', async () => ((await probe(c.readinessProbe)) === 200 ? true : undefined));
    const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /^process_resident_memory_bytes /m);

    // 2. An OCIRepository becomes Ready and its artifact is served.
    const pushed = await pushTarGzArtifact(reg, 'app/config', 'v1', { 'deploy.yaml': 'kind: ConfigMap\n' });
    await applyRepo(cluster, { metadata: { name: 'in-image', namespace: 'default' }, spec: { url: `oci://${reg.host}/app/config`, interval: '1h', insecure: true, ref: { tag: 'v1' } } });
    const o: RepoObject = await waitRepo(cluster, 'default', 'in-image', ready, 'Ready', 120_000);
    assert.equal(o.status?.artifact?.revision, `v1@${pushed.manifestDigest}`);
    const url = o.status!.artifact!.url;
    assert.ok(url.startsWith(`http://127.0.0.1:${storagePort}/`), url);
    const body = Buffer.from(await (await fetch(url)).arrayBuffer());
    assert.equal(`sha256:${createHash('sha256').update(body).digest('hex')}`, o.status!.artifact!.digest);

    // What it uses, for the Deployment's requests (measured, never asserted).
    const stats = (await docker.dockerOk(['stats', '--no-stream', '--format', '{{.MemUsage}} cpu {{.CPUPerc}}', 'ctrl-1'])).trim();
    const id = (await docker.dockerOk(['inspect', '-f', '{{.Id}}', 'ctrl-1'])).trim();
    const peakFile = `/sys/fs/cgroup/memory/docker/${id}/memory.max_usage_in_bytes`;
    const peak = existsSync(peakFile) ? `${Math.round(Number(readFileSync(peakFile, 'utf8')) / 2 ** 20)} MiB peak (incl. page cache)` : '';
    t.diagnostic(`container after one reconcile: ${stats}; ${peak}`);

    // 3. SIGTERM while a reconcile is in flight (its registry accepts connections and never
    // answers): the reconcile is cancelled (or, past the budget, abandoned), the Lease released,
    // and the process exits 0 within the grace period.
    const stalled = new Set<net.Socket>();
    const blackHole = net.createServer((sock) => stalled.add(sock.on('error', () => undefined)));
    await new Promise<void>((r) => blackHole.listen(0, '127.0.0.1', r));
    try {
      const port = (blackHole.address() as net.AddressInfo).port;
      await applyRepo(cluster, { metadata: { name: 'stalled', namespace: 'default' }, spec: { url: `oci://127.0.0.1:${port}/app/config`, interval: '1h', timeout: '5m', insecure: true, ref: { tag: 'v1' } } });
      await until('a request to the stalled registry', async () => (stalled.size > 0 ? true : undefined));
      await stopAndCheck('ctrl-1');
    } finally {
      for (const sock of stalled) sock.destroy();
      await new Promise((r) => blackHole.close(r));
    }
    assert.equal((await lease()).spec.holderIdentity ?? '', '', 'lease released');

    // 4. A new container on the same volume serves the stored artifact at once: the registry is
    // gone, so the bytes can only come from the volume.
    await reg.stop();
    current = 'ctrl-2';
    await docker.dockerOk(['run', '--detach', ...runArgs(current)]);
    await until('artifact server listening', async () => ((await isPortOpen(storagePort)) ? true : undefined));
    const again = await fetch(url);
    assert.equal(again.status, 200);
    assert.deepEqual(Buffer.from(await again.arrayBuffer()), body);
    const held2 = await until('lease taken over', async () => (await lease())?.spec?.holderIdentity || undefined);
    assert.notEqual(held2, held);
    await until('ready', async () => ((await probe(c.readinessProbe)) === 200 ? true : undefined));
    await stopAndCheck('ctrl-2');
  });
});
