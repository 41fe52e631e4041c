// Everything the corpus runs against, started once: a real kube-apiserver + etcd, a real
// docker-registry, the hostile server in front of it, and ONE controller process with the RBAC we
// ship, watched by the monitor. Also the trust material of each profile (keys, chains, a private
// Sigstore, real `openssl ts` TSAs), the Secrets that carry it, and how good artifacts are signed.
import { watch, type FSWatcher } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { createCA, createServerCert, makeTempDir, pushBlob, removeTempDir, pushManifest, pushTarGzArtifact, startCluster, startRegistry, type Cluster, type Registry } from '../harness/index.ts';
import { applyRepo, installController, startControllerProcess, type ControllerProcess, type RepoObject } from '../helpers/controller-env.ts';
import { cosignPayload, generateKey, legacyLayer, signBytes, signLegacy, type TestKey } from '../helpers/cosign-sign.ts';
import { TestSigstore } from '../helpers/cosign-sigstore.ts';
import { signJWS } from '../helpers/notation-sign.ts';
import { pushCosignSig, pushReferrer } from '../helpers/push-signatures.ts';
import { tgzFiles } from './bytes.ts';
import { Monitor, type Trouble } from './monitor.ts';
import { notationChain, opensslTSA, pem, tsaChain, type Issued, type TSA } from './pki.ts';
import { HostileServer } from './server.ts';
import type { Category, Profile } from './types.ts';

/** Bounds asserted for every case (see docs/security.md). */
export const Bounds = {
  /** Max event-loop delay of the controller while a case is in flight. */
  eventLoopDelayS: 2,
  /** Max RSS of the controller (and of a CLI run) while a case is in flight. */
  rssBytes: 768 << 20,
  /** Beyond this the process is killed at once (protects the machine from a runaway process). */
  rssHardCapBytes: 1536 << 20,
  /** /metrics unanswered this long: the event loop is blocked; the process is killed. */
  stallMs: 25_000,
};

/**
 * Flags the corpus's controller runs with. --artifact-max-size is lowered so decompression bombs
 * hit it after 64 MiB instead of 512 MiB (same code path, less disk and time); every other budget
 * keeps its default. A failed object is not retried for 30 s: each hostile input is measured in
 * its own window (the runner suspends the object once the answer is in), not in the next case's.
 */
export const ControllerArgs = ['--artifact-max-size', '64Mi', '--concurrent', '6', '--min-retry-delay', '30s', '--max-retry-delay', '60s', '--log-level', 'info'];
export const ArtifactMaxSize = 64 << 20;

export const NotationSigner = 'CN=Release Signer,O=Acme 🔒 Release,ST=WA,C=US';
export const KeylessIdentity = { issuer: '^https://issuer\\.test$', subject: '^dev@example\\.com$' };

export interface Trust {
  cosignKey: TestKey;
  notation: { root: Issued; leaf: Issued };
  tsa: { root: Issued; leaf: Issued; tsa: TSA };
  sigstore: TestSigstore;
  /** The TSA listed in the keyless-tsa trusted root. */
  keylessTsa: { root: Issued; leaf: Issued; tsa: TSA };
}

/** A notation trust policy: one statement for every repository. */
export function trustPolicy(stores: string[], identities: string[] = ['*'], level = 'strict'): string {
  return JSON.stringify({ version: '1.0', trustPolicies: [{ name: 'hostile', registryScopes: ['*'], signatureVerification: { level }, trustStores: stores, trustedIdentities: identities }] });
}

/** A trusted_root.json of the private Sigstore, with the keyless TSA when asked. */
export function trustedRoot(trust: Trust, withTsa: boolean): string {
  const root = JSON.parse(trust.sigstore.trustedRoot()) as Record<string, unknown>;
  if (withTsa) {
    root.timestampAuthorities = [
      {
        subject: { organization: 'tsa.test', commonName: 'keyless tsa' },
        uri: 'https://tsa.hostile.test',
        certChain: { certificates: [trust.keylessTsa.leaf, trust.keylessTsa.root].map((c) => ({ rawBytes: c.der.toString('base64') })) },
        validFor: { start: '2020-01-01T00:00:00Z' },
      },
    ];
  }
  return JSON.stringify(root);
}

/** The verification Secret data of a profile (key `trusted_root.json` for keyless ones). */
export function profileSecret(trust: Trust, p: Profile): Record<string, string> {
  switch (p) {
    case 'cosign-key':
      return { 'cosign.pub': trust.cosignKey.pubPem };
    case 'notation':
      return { 'trustpolicy.json': trustPolicy(['ca:hostile']), 'ca.hostile.pem': pem(trust.notation.root).toString() };
    case 'notation-tsa':
      return { 'trustpolicy.json': trustPolicy(['ca:hostile', 'tsa:hostile']), 'ca.hostile.pem': pem(trust.notation.root).toString(), 'tsa.hostile.pem': pem(trust.tsa.root).toString() };
    case 'keyless':
      return { 'trusted_root.json': trustedRoot(trust, false) };
    case 'keyless-tsa':
      return { 'trusted_root.json': trustedRoot(trust, true) };
  }
}

export const isKeyless = (p: Profile): boolean => p === 'keyless' || p === 'keyless-tsa';
export const providerOf = (p: Profile): 'cosign' | 'notation' => (p.startsWith('notation') ? 'notation' : 'cosign');

/**
 * Every OCIRepository, kept current by one LIST + WATCH on the API server (re-listed when the
 * watch ends); waiters check their predicate on each change.
 */
export class StatusBoard {
  readonly #cluster: Cluster;
  #objects = new Map<string, RepoObject>();
  #waiters = new Set<() => void>();
  #req: ReturnType<typeof https.request> | undefined;
  #stopped = false;
  constructor(cluster: Cluster) {
    this.#cluster = cluster;
  }
  start(): void {
    void this.#loop();
  }
  stop(): void {
    this.#stopped = true;
    this.#req?.destroy();
  }
  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }
  async #loop(): Promise<void> {
    const path = '/apis/source.ocisource.dev/v1/ocirepositories';
    while (!this.#stopped) {
      try {
        const res = await this.#cluster.request<{ metadata: { resourceVersion: string }; items: RepoObject[] }>('GET', path);
        if (res.status !== 200) throw new Error(`LIST ${res.status}`);
        this.#objects = new Map(res.body.items.map((o) => [`${o.metadata.namespace}/${o.metadata.name}`, o]));
        this.#notify();
        await this.#watch(`${path}?watch=1&allowWatchBookmarks=true&resourceVersion=${res.body.metadata.resourceVersion}`);
      } catch {
        await new Promise((r) => setTimeout(r, 300));
      }
    }
  }
  #watch(path: string): Promise<void> {
    return new Promise((resolve) => {
      const u = new URL(this.#cluster.server + path);
      const req = https.request(u, { ca: this.#cluster.caPem, headers: { authorization: `Bearer ${this.#cluster.adminToken}`, accept: 'application/json' }, timeout: 0 }, (res) => {
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if (!line.trim()) continue;
            const ev = JSON.parse(line) as { type: string; object: RepoObject };
            if (ev.type === 'ERROR') return req.destroy();
            if (ev.type === 'BOOKMARK') continue;
            const key = `${ev.object.metadata.namespace}/${ev.object.metadata.name}`;
            if (ev.type === 'DELETED') this.#objects.delete(key);
            else this.#objects.set(key, ev.object);
            this.#notify();
          }
        });
        res.on('end', () => resolve());
        res.on('error', () => resolve());
      });
      req.on('error', () => resolve());
      req.on('close', () => resolve());
      this.#req = req;
      req.end();
    });
  }
  get(ns: string, name: string): RepoObject | undefined {
    return this.#objects.get(`${ns}/${name}`);
  }
  /** Resolves with the object once `pred` holds; rejects after `timeoutMs` or on `signal`. */
  until(ns: string, name: string, pred: (o: RepoObject) => boolean, what: string, timeoutMs: number, signal?: AbortSignal): Promise<RepoObject> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined = undefined;
      const done = (err?: Error, o?: RepoObject) => {
        this.#waiters.delete(check);
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(o!);
      };
      const check = () => {
        const o = this.get(ns, name);
        if (o && pred(o)) done(undefined, o);
      };
      const onAbort = () => done(signal!.reason instanceof Error ? signal!.reason : new Error(String(signal!.reason)));
      timer = setTimeout(() => done(new Error(`timed out after ${timeoutMs / 1000} s waiting for ${ns}/${name}: ${what}; last status: ${JSON.stringify(this.get(ns, name)?.status ?? null)}`)), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(check);
      check();
    });
  }
}

export interface World {
  dir: string;
  cluster: Cluster;
  registry: Registry;
  hostile: HostileServer;
  kubeconfig: string;
  ctrl: ControllerProcess;
  monitor: Monitor;
  board: StatusBoard;
  trust: Trust;
  /** Certificate (IP:127.0.0.1) and CA of the hostile server's TLS listeners. */
  hostileTLS: { certPem: string; keyPem: string; caPem: string };
  /** A directory nothing may ever write to: traversal and link cases aim at it. */
  sentinel: string;
  sentinelEvents: string[];
  /** Called by the monitor; the runner decides what to do. */
  onTrouble: (t: Trouble) => void;
  restarts: { at: number; why: string }[];
  restart(why: string): Promise<void>;
  stop(): Promise<void>;
}

export const namespaceOf = (c: Category): string => `hostile-${c}`;

export async function startWorld(categories: Category[]): Promise<World> {
  const dir = makeTempDir('osc-hostile-');
  const sentinel = makeTempDir('osc-hostile-sentinel-');
  const sentinelEvents: string[] = [];
  const watcher: FSWatcher = watch(sentinel, { recursive: true }, (ev, f) => sentinelEvents.push(`${ev} ${f}`));
  const [cluster, registry, trust] = await Promise.all([startCluster(), startRegistry(), makeTrust()]);
  const hostile = await HostileServer.start(registry.url);
  const ca = await createCA(path.join(dir, 'hostile-pki'), { cn: 'hostile-registry-ca' });
  const serverCert = await createServerCert(ca, { name: 'hostile-registry' });
  const kubeconfig = await installController(cluster, dir);
  for (const c of categories) {
    const ns = namespaceOf(c);
    await cluster.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } } });
    for (const p of ['cosign-key', 'notation', 'notation-tsa', 'keyless', 'keyless-tsa'] as const) {
      await putSecret(cluster, ns, `profile-${p}`, profileSecret(trust, p));
    }
  }
  const storagePath = path.join(dir, 'data');
  let ctrl = await startControllerProcess({ kubeconfig, dir, storagePath, extraArgs: ControllerArgs });
  const board = new StatusBoard(cluster);
  board.start();
  const world: World = {
    dir,
    cluster,
    registry,
    hostile,
    kubeconfig,
    ctrl,
    board,
    trust,
    hostileTLS: { certPem: serverCert.certPem, keyPem: serverCert.keyPem, caPem: ca.certPem },
    sentinel,
    sentinelEvents,
    restarts: [],
    onTrouble: () => undefined,
    monitor: undefined as unknown as Monitor,
    async restart(why: string) {
      world.restarts.push({ at: Date.now(), why });
      // Our own child, by PID: SIGKILL, since a blocked event loop cannot handle SIGTERM.
      world.monitor.expectExit(ctrl.proc.pid);
      if (ctrl.proc.running()) process.kill(ctrl.proc.pid, 'SIGKILL');
      await ctrl.proc.exited;
      ctrl = await startControllerProcess({ kubeconfig, dir, storagePath, storagePort: ctrl.storagePort, extraArgs: ControllerArgs });
      world.ctrl = ctrl;
      world.monitor.retarget({ pid: ctrl.proc.pid, metricsPort: ctrl.metricsPort, running: () => ctrl.proc.running() });
    },
    async stop() {
      world.monitor.stop();
      board.stop();
      watcher.close();
      await ctrl.stop();
      await hostile.stop();
      await Promise.all([cluster.stop(), registry.stop()]);
      removeTempDir(sentinel);
      removeTempDir(dir);
    },
  };
  world.monitor = new Monitor(
    { pid: ctrl.proc.pid, metricsPort: ctrl.metricsPort, running: () => ctrl.proc.running() },
    { intervalMs: 500, stallMs: Bounds.stallMs, rssHardCapBytes: Bounds.rssHardCapBytes, onTrouble: (t) => world.onTrouble(t) },
  );
  world.monitor.start();
  return world;
}

async function makeTrust(): Promise<Trust> {
  const [notation, tsa, keylessTsa, sigstore] = await Promise.all([
    notationChain('CN=Acme Root,O=Acme,ST=WA,C=US', NotationSigner),
    tsaChain('Hostile TSA'),
    tsaChain('Keyless TSA'),
    TestSigstore.create('hostile'),
  ]);
  return {
    cosignKey: generateKey('p256'),
    notation,
    tsa: { ...tsa, tsa: opensslTSA(tsa.leaf, [tsa.root]) },
    keylessTsa: { ...keylessTsa, tsa: opensslTSA(keylessTsa.leaf, [keylessTsa.root]) },
    sigstore,
  };
}

export async function putSecret(cluster: Cluster, ns: string, name: string, data: Record<string, string | Buffer>): Promise<{ status: number; text: string }> {
  const body = { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: ns }, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) };
  const put = await cluster.request('PUT', `/api/v1/namespaces/${ns}/secrets/${name}`, { body });
  if (put.status === 404) {
    const post = await cluster.request('POST', `/api/v1/namespaces/${ns}/secrets`, { body });
    return { status: post.status, text: post.text };
  }
  return { status: put.status, text: put.text };
}

export { applyRepo };

// ---------------------------------------------------------------------------------------------
// Artifacts and signatures

export interface Pushed {
  manifestDigest: string;
  manifest: Buffer;
  layerDigest: string;
  layer: Buffer;
  configDigest: string;
}

/** A one-layer Flux artifact holding `layer`, tagged `tag`. */
export async function pushArtifact(reg: Registry, repo: string, tag: string, layer: Buffer, opts: { annotations?: Record<string, string> } = {}): Promise<Pushed> {
  const p = await pushTarGzArtifact(reg, repo, tag, {}, { layer, ...(opts.annotations ? { annotations: opts.annotations } : {}) });
  return { manifestDigest: p.manifestDigest, manifest: p.manifestBytes, layerDigest: p.layerDigest, layer: p.layerBytes, configDigest: p.configDigest };
}

/** Pushes a manifest object or raw bytes (the registry must accept it) at `tag`. */
export async function pushRawManifest(reg: Registry, repo: string, tag: string, manifest: object | Buffer, mediaType = 'application/vnd.oci.image.manifest.v1+json'): Promise<{ digest: string; bytes: Buffer }> {
  const r = await pushManifest(reg, repo, tag, manifest, mediaType);
  return { digest: r.digest, bytes: r.bytes };
}

export { pushBlob };

export function goodLayer(id: string): Buffer {
  return tgzFiles({ 'app.yaml': `kind: ConfigMap\nmetadata:\n  name: ${id}\n` });
}

/** Signs `digest` the way the profile's good artifacts are signed. */
export async function signGood(world: World, profile: Profile, repo: string, desc: { digest: string; size: number; mediaType: string }): Promise<void> {
  const { registry: reg, trust } = world;
  switch (profile) {
    case 'cosign-key':
      await pushCosignSig(reg, repo, desc.digest, [signLegacy(trust.cosignKey, desc.digest)]);
      return;
    case 'notation':
    case 'notation-tsa': {
      const env = await signJWS({
        target: desc,
        chain: [trust.notation.leaf, trust.notation.root],
        alg: 'ES256',
        ...(profile === 'notation-tsa' ? { timestamp: (sig: Buffer) => trust.tsa.tsa.token(sig) } : {}),
      });
      await pushReferrer(reg, repo, desc, 'application/vnd.cncf.notary.signature', env, 'application/jose+json');
      return;
    }
    case 'keyless':
    case 'keyless-tsa': {
      const s = trust.sigstore;
      const leaf = await s.issueLeaf({ email: 'dev@example.com', issuer: 'https://issuer.test', notBefore: new Date(Date.now() - 60_000) });
      const payload = cosignPayload(desc.digest);
      const sig = signBytes(leaf.privateKey, payload);
      const bundle = s.legacyBundleAnnotation(payload, sig, leaf.pem, Math.floor(Date.now() / 1000));
      await pushCosignSig(reg, repo, desc.digest, [legacyLayer(payload, sig, { 'dev.sigstore.cosign/certificate': leaf.pem, 'dev.sigstore.cosign/chain': s.chainPem, 'dev.sigstore.cosign/bundle': bundle })]);
      return;
    }
  }
}
