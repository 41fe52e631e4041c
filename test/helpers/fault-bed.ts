// The test bed shared by the fault matrix (test/integration/faults.test.ts) and the soak
// (bench/soak.ts): a real kube-apiserver + etcd behind a TCP relay that can drop the controller's
// connections, a real docker-registry behind the fault proxy, cosign key-signed artifacts, and the
// controller as its own process with the shipped RBAC and its storage on a tmpfs the bed mounts
// (so "storage volume full" is a really full filesystem). Also the checks every fault shares: what
// is served while it lasts, and what is left in storage afterwards.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import YAML from 'yaml';
import { startFaultProxy, startTcpProxy, type FaultProxy, type TcpProxy } from '../harness/fault-proxy.ts';
import { startCluster, type Cluster } from '../harness/kube.ts';
import { makeTempDir, onExit, removeTempDir, run } from '../harness/proc.ts';
import { pushTarGzArtifact, type PushedArtifact } from '../harness/push.ts';
import { startRegistry, type Registry, type RegistryOptions } from '../harness/registry.ts';
import { freePort } from '../harness/ports.ts';
import { generateKey, signLegacy, type TestKey } from './cosign-sign.ts';
import { cond, installController, startControllerProcess, type ControllerProcess, type RepoObject } from './controller-env.ts';
import { pushCosignSig } from './push-signatures.ts';

export const NS = 'default';
export const CosignSecret = 'fault-cosign-key';

export interface KubeEventObject {
  type: string;
  reason: string;
  message: string;
  lastTimestamp?: string;
}

export interface BedOptions {
  /** Size of the tmpfs mounted as the controller's --storage-path, in MiB. */
  storageMiB: number;
  /** Extra controller flags (after the defaults of controller-env.ts). */
  controllerArgs?: string[];
  /** Also start a token-auth registry behind its own fault proxy. */
  tokenRegistry?: boolean;
  /** Registry options for the main registry. */
  registry?: RegistryOptions;
}

export interface Bed {
  cluster: Cluster;
  reg: Registry;
  proxy: FaultProxy;
  /** Token-auth registry and its proxy (tokenRegistry only). */
  tokenReg?: Registry;
  tokenProxy?: FaultProxy;
  /** The relay between the controller and the kube-apiserver. */
  kubeProxy: TcpProxy;
  ctrl: ControllerProcess;
  key: TestKey;
  dir: string;
  /** Where the controller stores artifacts (a tmpfs when `tmpfs` is true). */
  storagePath: string;
  /** False when mounting the tmpfs failed (not root): storage is a plain directory then. */
  tmpfs: boolean;
  /** Why the tmpfs could not be mounted. */
  tmpfsError?: string;
  /** The controller's kubeconfig (through kubeProxy). */
  kubeconfig: string;
  /** The object, read over a kept-alive admin connection (null when absent); throws when the apiserver is unreachable. */
  getRepo(name: string): Promise<RepoObject | null>;
  /** The Events recorded for an object. */
  events(name: string): Promise<KubeEventObject[]>;
  /** Every OCIRepository in the test namespace; throws when the apiserver is unreachable. */
  listRepos(): Promise<RepoObject[]>;
  /** Polls getRepo until `pred` holds; the error shows the last status seen. */
  waitRepo(name: string, pred: (o: RepoObject) => boolean, what: string, timeoutMs: number): Promise<RepoObject>;
  /** Asks for a reconcile now; returns the token that status.lastHandledReconcileAt will echo. */
  requestReconcile(name: string): Promise<string>;
  /** SIGKILLs the controller (no chance to clean up). */
  killController(): Promise<void>;
  /** Starts the controller again on the same storage, ports and kubeconfig. */
  startController(): Promise<void>;
  stop(): Promise<void>;
}

const controllerDefaults = ['--concurrent', '8'];

/** Mounts a tmpfs of `mib` MiB at `dir`; returns an error message instead when that is not possible. */
function mountTmpfs(dir: string, mib: number): string | undefined {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m,mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return `mount -t tmpfs failed (${((err as { stderr?: Buffer }).stderr ?? '').toString().trim() || (err as Error).message}); the storage-full fault needs root`;
  }
}

function umount(dir: string): void {
  try {
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  } catch {
    /* not mounted */
  }
}

/** Runs one stop step; one that fails or overruns is reported and skipped (exit hooks kill what is left). */
async function bounded(step: () => Promise<void>, ms: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  const overrun = new Promise<void>((resolve) => {
    t = setTimeout(() => {
      console.error(`fault bed: stopping took over ${ms} ms, going on: ${step.toString().slice(0, 80)}`);
      resolve();
    }, ms);
  });
  try {
    await Promise.race([step().catch((err: unknown) => console.error(`fault bed: stopping failed: ${String(err)}`)), overrun]);
  } finally {
    clearTimeout(t);
  }
}

/** With $OSC_KEEP_LOGS set to a directory, the bed's logs are copied there before it is removed. */
function keepLogs(dir: string, files: string[]): void {
  const to = process.env['OSC_KEEP_LOGS'];
  if (!to) return;
  mkdirSync(to, { recursive: true });
  for (const f of files) if (existsSync(f)) copyFileSync(f, path.join(to, path.basename(f)));
  for (const f of readdirSync(dir)) if (f.endsWith('.log')) copyFileSync(path.join(dir, f), path.join(to, f));
}

export async function startBed(opts: BedOptions): Promise<Bed> {
  const dir = makeTempDir('osc-faults-');
  const storagePath = path.join(dir, 'storage');
  mkdirSync(storagePath, { recursive: true });
  const tmpfsError = mountTmpfs(storagePath, opts.storageMiB);
  const unregister = tmpfsError ? () => true : onExit(() => umount(storagePath));
  const stops: Array<() => Promise<void>> = [];
  try {
    // Without the watch cache, watches are served from etcd: after a compaction an old
    // resourceVersion is really gone and the apiserver answers 410 Gone.
    const [cluster, reg, tokenReg] = await Promise.all([
      startCluster({ extraApiserverArgs: ['--watch-cache=false'] }),
      startRegistry(opts.registry ?? {}),
      opts.tokenRegistry ? startRegistry({ tokenAuth: { expiresInSeconds: 1 } }) : Promise.resolve(undefined),
    ]);
    stops.push(() => cluster.stop(), () => reg.stop());
    if (tokenReg) stops.push(() => tokenReg.stop());
    const proxy = await startFaultProxy({ upstream: reg.host });
    stops.push(() => proxy.stop());
    const tokenProxy = tokenReg ? await startFaultProxy({ upstream: tokenReg.host }) : undefined;
    if (tokenProxy) stops.push(() => tokenProxy.stop());
    const kubeProxy = await startTcpProxy({ upstreamPort: cluster.port });
    stops.push(() => kubeProxy.stop());

    const direct = await installController(cluster, dir);
    // The same kubeconfig, pointed at the relay (the serving certificate is for 127.0.0.1, any port).
    const kc = YAML.parse(readFileSync(direct, 'utf8')) as { clusters: { cluster: { server: string } }[] };
    kc.clusters[0]!.cluster.server = `https://${kubeProxy.host}`;
    const kubeconfig = path.join(dir, 'controller-via-relay.kubeconfig');
    writeFileSync(kubeconfig, YAML.stringify(kc), { mode: 0o600 });

    const key = generateKey('p256');
    await cluster.kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: CosignSecret, namespace: NS }, data: { 'cosign.pub': Buffer.from(key.pubPem).toString('base64') } }),
    });
    if (tokenReg && tokenProxy) {
      await cluster.kubectlOk(['create', 'secret', 'docker-registry', 'fault-token-creds', `--docker-server=${tokenProxy.host}`, `--docker-username=${tokenReg.username}`, `--docker-password=${tokenReg.password}`]);
    }

    const api = new KubeReader(cluster);
    stops.push(async () => api.close());
    const storagePort = await freePort();
    const args = [...controllerDefaults, ...(opts.controllerArgs ?? [])];
    const launch = () => startControllerProcess({ kubeconfig, dir, storagePath, storagePort, extraArgs: args });
    let ctrl = await launch();
    const bed: Bed = {
      cluster,
      reg,
      proxy,
      ...(tokenReg ? { tokenReg } : {}),
      ...(tokenProxy ? { tokenProxy } : {}),
      kubeProxy,
      get ctrl() {
        return ctrl;
      },
      key,
      dir,
      storagePath,
      tmpfs: tmpfsError === undefined,
      ...(tmpfsError ? { tmpfsError } : {}),
      kubeconfig,
      getRepo: (name) => api.getRepo(name),
      listRepos: () => api.listRepos(),
      events: (name) => api.events(name),
      waitRepo: (name, pred, what, timeoutMs) => api.waitRepo(name, pred, what, timeoutMs),
      requestReconcile: (name) => api.requestReconcile(name),
      async killController() {
        ctrl.proc.child.kill('SIGKILL');
        await ctrl.proc.exited;
      },
      async startController() {
        if (ctrl.proc.running()) throw new Error('the controller is still running');
        ctrl = await launch();
      },
      async stop() {
        await ctrl.stop();
        keepLogs(dir, [ctrl.logFile, reg.logFile, cluster.logs.apiserver]);
        for (const s of stops.reverse()) await bounded(s, 60_000);
        if (!tmpfsError) umount(storagePath);
        unregister();
        removeTempDir(dir);
      },
    };
    return bed;
  } catch (err) {
    for (const s of stops.reverse()) await bounded(s, 60_000);
    if (!tmpfsError) umount(storagePath);
    unregister();
    removeTempDir(dir);
    throw err;
  }
}

/**
 * Reads and annotates OCIRepositories as admin over kept-alive connections: the tests poll many
 * objects several times a second, and a TLS handshake per poll would load the shared machine.
 */
class KubeReader {
  readonly #agent: https.Agent;
  readonly #cluster: Cluster;
  constructor(cluster: Cluster) {
    this.#cluster = cluster;
    this.#agent = new https.Agent({ keepAlive: true, maxSockets: 8, ca: cluster.caPem });
  }

  #call(method: string, apiPath: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = https.request(
        `${this.#cluster.server}${apiPath}`,
        {
          method,
          agent: this.#agent,
          timeout: 15_000,
          headers: {
            authorization: `Bearer ${this.#cluster.adminToken}`,
            accept: 'application/json',
            ...(payload ? { 'content-type': 'application/merge-patch+json', 'content-length': String(payload.length) } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            let json: unknown;
            try {
              json = JSON.parse(text);
            } catch {
              json = text;
            }
            resolve({ status: res.statusCode ?? 0, json });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${apiPath}: timed out`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  #path(name: string): string {
    return `/apis/source.ocisource.dev/v1/namespaces/${NS}/ocirepositories/${name}`;
  }

  async getRepo(name: string): Promise<RepoObject | null> {
    const r = await this.#call('GET', this.#path(name));
    if (r.status === 404) return null;
    if (r.status !== 200) throw new Error(`GET ${name}: HTTP ${r.status} ${JSON.stringify(r.json)}`);
    return r.json as RepoObject;
  }

  async events(name: string): Promise<KubeEventObject[]> {
    const r = await this.#call('GET', `/api/v1/namespaces/${NS}/events?fieldSelector=${encodeURIComponent(`involvedObject.name=${name}`)}`);
    if (r.status !== 200) throw new Error(`events of ${name}: HTTP ${r.status}`);
    return (r.json as { items: KubeEventObject[] }).items;
  }

  async listRepos(): Promise<RepoObject[]> {
    const r = await this.#call('GET', `/apis/source.ocisource.dev/v1/namespaces/${NS}/ocirepositories`);
    if (r.status !== 200) throw new Error(`LIST: HTTP ${r.status}`);
    return (r.json as { items: RepoObject[] }).items;
  }

  async waitRepo(name: string, pred: (o: RepoObject) => boolean, what: string, timeoutMs: number): Promise<RepoObject> {
    const deadline = Date.now() + timeoutMs;
    let last: RepoObject | null = null;
    while (Date.now() < deadline) {
      last = await this.getRepo(name).catch(() => last);
      if (last && pred(last)) return last;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${NS}/${name}: ${what}; last status: ${JSON.stringify(last?.status ?? null, null, 2)}`);
  }

  async requestReconcile(name: string): Promise<string> {
    const token = `${Date.now()}-${randomBytes(3).toString('hex')}`;
    const r = await this.#call('PATCH', this.#path(name), { metadata: { annotations: { 'reconcile.ocisource.dev/requestedAt': token } } });
    if (r.status !== 200) throw new Error(`annotating ${name}: HTTP ${r.status} ${JSON.stringify(r.json)}`);
    return token;
  }

  close(): void {
    this.#agent.destroy();
  }
}

/** Pushes a tar.gz artifact and a cosign key signature (`sha256-<hex>.sig`) for its digest. */
export async function pushSigned(bed: Bed, repo: string, tag: string, files: Record<string, string | Buffer>, reg: Registry = bed.reg): Promise<PushedArtifact> {
  const a = await pushTarGzArtifact(reg, repo, tag, files);
  await pushCosignSig(reg, repo, a.manifestDigest, [signLegacy(bed.key, a.manifestDigest)]);
  return a;
}

export interface RepoSpecOptions {
  ref?: { tag: string } | { semver: string };
  timeout?: string;
  interval?: string;
  /** Registry host in the URL (default: the fault proxy). */
  host?: string;
  secretRef?: string;
}

/** An OCIRepository for `repo` through the fault proxy, cosign key-verified. */
export function faultRepoObject(bed: Bed, name: string, repo: string, o: RepoSpecOptions = {}): Record<string, unknown> {
  return {
    apiVersion: 'source.ocisource.dev/v1',
    kind: 'OCIRepository',
    metadata: { name, namespace: NS },
    spec: {
      url: `oci://${o.host ?? bed.proxy.host}/${repo}`,
      interval: o.interval ?? '1h',
      timeout: o.timeout ?? '5s',
      insecure: true,
      ref: o.ref ?? { tag: 'latest' },
      verify: { provider: 'cosign', secretRef: { name: CosignSecret } },
      ...(o.secretRef ? { secretRef: { name: o.secretRef } } : {}),
    },
  };
}

export async function applyFaultRepo(bed: Bed, name: string, repo: string, o: RepoSpecOptions = {}): Promise<void> {
  await bed.cluster.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(faultRepoObject(bed, name, repo, o)) });
}

export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** True when the object is Ready on `revision` for its current generation, verified. */
export function readyOn(o: RepoObject, revision: string): boolean {
  const r = cond(o, 'Ready');
  const sv = cond(o, 'SourceVerified');
  return (
    r?.status === 'True' &&
    o.status?.observedGeneration === o.metadata.generation &&
    o.status?.artifact?.revision === revision &&
    sv?.status === 'True' &&
    sv.message.includes(revision)
  );
}

/** Regular files of a .tar.gz (a minimal ustar reader for assertions). */
export function tarGzFiles(tgz: Buffer): Map<string, Buffer> {
  const tar = gunzipSync(tgz);
  const out = new Map<string, Buffer>();
  const field = (h: Buffer, s: number, e: number) => h.subarray(s, e).toString().replace(/\0.*$/s, '');
  for (let off = 0; off + 512 <= tar.length; ) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const prefix = field(h, 345, 500);
    const name = prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100);
    const size = parseInt(field(h, 124, 136).trim() || '0', 8);
    if (String.fromCharCode(h[156] ?? 0) === '0' || h[156] === 0) out.set(name, Buffer.from(tar.subarray(off + 512, off + 512 + size)));
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

/**
 * What is left where it should not be: anything in the work directory (`<storage>/.tmp`) and
 * temporary files next to the artifacts of the objects.
 */
export function leftovers(storagePath: string): string[] {
  const out: string[] = [];
  const work = path.join(storagePath, '.tmp');
  if (existsSync(work)) for (const e of readdirSync(work)) out.push(path.join('.tmp', e));
  const kindDir = path.join(storagePath, 'ocirepository');
  if (!existsSync(kindDir)) return out;
  for (const ns of readdirSync(kindDir)) {
    for (const name of readdirSync(path.join(kindDir, ns))) {
      for (const f of readdirSync(path.join(kindDir, ns, name))) if (f.endsWith('.tmp')) out.push(`ocirepository/${ns}/${name}/${f}`);
    }
  }
  return out;
}

export interface ServeWatchOptions {
  name: string;
  /** Revisions the object may name while the fault lasts: the last good one and the new one. */
  allowed: string[];
  /** Manifest digest whose artifact file must not appear in storage (its verification is failing). */
  forbidStored?: string;
  /** While true, an unreachable artifact server is expected (the controller is down). */
  serverDown?: () => boolean;
  intervalMs?: number;
}

/**
 * Polls what a consumer sees while a fault lasts: the object's status (kept from the last read
 * when the apiserver is unreachable), the file its status.artifact.url serves, and latest.tar.gz.
 * Records every violation of "no partial or unverified artifact is ever served; the last good
 * artifact is served throughout".
 */
export class ServeWatch {
  readonly violations: string[] = [];
  /** status.artifact.revision → number of times its URL served the recorded digest. */
  readonly served = new Map<string, number>();
  /** Digests latest.tar.gz served. */
  readonly latestDigests = new Set<string>();
  /** Polls when the artifact server was down and `serverDown()` said that was expected. */
  downPolls = 0;
  polls = 0;
  readonly bed: Bed;
  readonly opts: ServeWatchOptions;
  #stop = false;
  #done: Promise<void> | undefined;
  #last: RepoObject | null = null;
  #faultActive = true;

  constructor(bed: Bed, opts: ServeWatchOptions) {
    this.bed = bed;
    this.opts = opts;
  }

  start(): this {
    this.#done = this.#loop();
    return this;
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#done;
  }

  /** The fault is gone: from now on the new revision may be verified and stored. */
  faultCleared(): void {
    this.#faultActive = false;
  }

  #violation(msg: string): void {
    if (this.violations.length < 20) this.violations.push(`${new Date().toISOString()} ${msg}`);
  }

  async #read(): Promise<RepoObject | null> {
    try {
      const o = await this.bed.getRepo(this.opts.name);
      if (o) this.#last = o;
      return o;
    } catch {
      return null; // apiserver down: the status cannot have changed either
    }
  }

  async #get(url: string): Promise<{ status: number; body: Buffer } | 'down'> {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(15_000) });
      return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
    } catch {
      return 'down';
    }
  }

  async #poll(): Promise<void> {
    this.polls++;
    await this.#read();
    const o = this.#last;
    const a = o?.status?.artifact;
    if (!o || !a) return this.#violation('the object has no status.artifact');
    if (!this.opts.allowed.includes(a.revision)) this.#violation(`status.artifact names revision ${a.revision}, expected one of ${this.opts.allowed.join(', ')}`);
    if (a.revision !== this.opts.allowed[0]) {
      const sv = cond(o, 'SourceVerified');
      if (sv?.status !== 'True' || !sv.message.includes(a.revision)) this.#violation(`revision ${a.revision} is in status.artifact but SourceVerified is ${sv?.status} (${sv?.message})`);
    }
    if (this.opts.forbidStored && this.#faultActive) {
      const f = path.join(this.bed.storagePath, 'ocirepository', NS, this.opts.name, `${this.opts.forbidStored}.tar.gz`);
      if (existsSync(f)) this.#violation(`${this.opts.forbidStored}.tar.gz was stored while its signature could not be verified`);
    }
    const got = await this.#get(a.url);
    if (got === 'down') {
      if (this.opts.serverDown?.()) this.downPolls++;
      else this.#violation(`artifact server unreachable for ${a.url}`);
    } else if (got.status !== 200 || sha256(got.body) !== a.digest) {
      // The status may have moved on between the two reads: only a status that still names this
      // artifact makes it a violation (an unreachable apiserver cannot have changed it).
      const now = await this.#read();
      if (!now || now.status?.artifact?.digest === a.digest) {
        this.#violation(got.status !== 200 ? `${a.url} answered HTTP ${got.status} while status.artifact (revision ${a.revision}) names it` : `${a.url} served ${sha256(got.body)}, status.artifact.digest is ${a.digest}`);
      }
    } else {
      this.served.set(a.revision, (this.served.get(a.revision) ?? 0) + 1);
    }
    if (o.status?.url) {
      const latest = await this.#get(o.status.url);
      if (latest !== 'down' && latest.status === 200) this.latestDigests.add(sha256(latest.body));
    }
  }

  async #loop(): Promise<void> {
    while (!this.#stop) {
      await this.#poll();
      await new Promise((r) => setTimeout(r, this.opts.intervalMs ?? 300));
    }
  }
}

/** Fills a filesystem until `leaveBytes` remain; returns the filler's path. */
export async function fillFilesystem(dir: string, leaveBytes: number): Promise<string> {
  const st = statfsSync(dir);
  const free = st.bavail * st.bsize;
  const filler = path.join(dir, 'filler');
  const size = Math.max(0, free - leaveBytes);
  const r = await run('fallocate', ['-l', String(size), filler]);
  if (r.code !== 0) throw new Error(`fallocate failed: ${r.stderr}`);
  return filler;
}

export function removeFiller(filler: string): void {
  rmSync(filler, { force: true });
}

/** Incompressible bytes (so an artifact's size on the wire and on disk is predictable). */
export function noise(bytes: number): Buffer {
  return randomBytes(bytes);
}
