// `oci-source-controller run`: the controller process.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { Logger } from 'pino';
import { Kube } from '../controller/kube.ts';
import { LeaderElector } from '../controller/leader.ts';
import { Manager } from '../controller/manager.ts';
import { Metrics } from '../controller/metrics.ts';
import { getOrNull } from '../controller/objects.ts';
import { parseDuration } from '../controller/queue.ts';
import { VerifyCache } from '../controller/verification.ts';
import type { Limits } from '../api/limits.ts';
import { Transport } from '../oci/transport.ts';
import { CloudIdentity, FeatureGateObjectLevelWorkloadIdentity, type ServiceAccount } from '../oci/cloud/index.ts';
import { startArtifactServer, type ArtifactServer } from '../storage/server.ts';
import { Storage } from '../storage/store.ts';
import { makeLogger } from '../util/log.ts';
import { createProviders } from '../verify/providers.ts';
import { parse, parseAddr, parseSize, UsageError } from './args.ts';

export const runUsage = `Usage: oci-source-controller run [flags]

  --kubeconfig PATH                 kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)
  --context NAME                    kubeconfig context
  --watch-namespace NS              watch one namespace (default: all namespaces)
  --watch-label-selector SEL        only reconcile objects matching this label selector (sharding)
  --concurrent N                    parallel reconciles (default 4)
  --storage-path DIR                artifact storage directory (default /data)
  --storage-addr HOST:PORT          artifact HTTP server address (default :9090)
  --storage-adv-addr HOST[:PORT]    host in artifact URLs (default: derived from --storage-addr)
  --artifact-retention-records N    artifacts kept per object (default 2)
  --artifact-retention-ttl DUR      older artifacts are removed after this (default 1m)
  --artifact-max-size SIZE          max extracted size of an artifact, e.g. 512Mi; 0 = unlimited (default 512Mi)
  --artifact-cache-max-size SIZE    memory for serving small artifacts (up to 1Mi each) from RAM; 0 = off (default 64Mi)
  --verification-cache-max-size SIZE  memory for verification results (kept up to 1h per digest and trust material;
                                    0 = off, every interval verifies again) (default 16Mi)
  --max-signatures N                signatures tried per artifact (default 10)
  --manifest-max-size SIZE          max size of a manifest, index or referrers page (default 4Mi)
  --max-tags N                      max tags listed for a semver ref, all pages (default 100000)
  --tag-list-max-size SIZE          max bytes of tag-list answers, all pages (default 8Mi)
  --max-referrers N                 max referrers read for one artifact (default 1000)
  --tar-max-entries N               max tar entries in a layer, implied directories included (default 100000)
  --tar-max-size SIZE               max decompressed size of a layer's tar stream (gzip bombs; default 1Gi; 0 = unlimited)
  --min-retry-delay DUR             first backoff after a failure (default 750ms)
  --max-retry-delay DUR             backoff cap (default 15m)
  --interval-jitter-percentage N    ± jitter on spec.interval (default 5)
  --requeue-alignment DUR           requeues of ten times this or longer are rounded up to a multiple of it,
                                    so objects due in the same slot share one wake-up; 0 = exact (default 1s)
  --metrics-addr HOST:PORT          /metrics, /healthz, /readyz (default :8080; empty disables)
  --log-level LEVEL                 trace|debug|info|warn|error (default info)
  --tag-page-size N                 tags per page when listing for semver (default 1000)
  --enable-leader-election          only the replica holding the Lease reconciles and serves artifacts
  --leader-election-namespace NS    namespace of the Lease (default: $RUNTIME_NAMESPACE, the pod's namespace, or oci-source-system)
  --leader-election-lease-duration DUR   (default 35s)
  --leader-election-renew-deadline DUR   (default 30s)
  --leader-election-retry-period DUR     (default 5s)
  --feature-gates GATES             comma-separated NAME=BOOL; ObjectLevelWorkloadIdentity=true lets
                                    spec.serviceAccountName pick the cloud identity (default false)
  --default-service-account NAME    objects with a cloud provider and no spec.serviceAccountName use this
                                    ServiceAccount of their own namespace (needs ObjectLevelWorkloadIdentity)
  --token-cache-max-size N          cloud tokens cached (default 100; 0 disables the cache)
  --token-cache-max-duration DUR    longest a cloud token is cached, at most 1h (default 1h)
  --publish-external-artifacts[=BOOL]    maintain a Flux ExternalArtifact per OCIRepository when the cluster
                                    serves that API; false removes ours (default true)
  --external-artifact-discovery-interval DUR   how often to look for the ExternalArtifact API (default 1m)
  --shutdown-timeout DUR            SIGTERM to exit: in-flight reconciles are cancelled, and any still
                                    running after this less 2s (Lease release, servers) is abandoned (default 8s)
`;

export interface ControllerConfig {
  kubeconfig?: string;
  context?: string;
  watchNamespace?: string;
  labelSelector?: string;
  concurrent: number;
  storagePath: string;
  storageAddr: string;
  storageAdvAddr?: string;
  retentionRecords: number;
  retentionTTLms: number;
  artifactMaxSize: number;
  /** Bytes of small artifacts served from memory (0: off). */
  artifactCacheMaxSize?: number;
  verificationCacheMaxSize?: number;
  maxSignatures: number;
  /** Budgets set by flags other than the two above (src/api/limits.ts). */
  limits?: Partial<Limits>;
  minRetryMs: number;
  maxRetryMs: number;
  jitterPercent: number;
  requeueAlignMs: number;
  metricsAddr: string;
  logLevel: string;
  tagPageSize?: number;
  leaderElection?: { namespace: string; leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number };
  /** Workload identity (provider aws|azure|gcp); defaults: gate off, 100 tokens, 1h. */
  cloud?: { objectLevel: boolean; defaultServiceAccount?: string; cacheMaxSize: number; cacheMaxDurationMs: number };
  publishExternalArtifacts: boolean;
  externalArtifactDiscoveryMs: number;
  /** After SIGTERM: budget for stopping (default 8s). */
  shutdownTimeoutMs?: number;
}

export interface RunningController {
  manager: Manager;
  artifacts: ArtifactServer;
  storage: Storage;
  /** Stops within `timeoutMs`; resolves false when in-flight reconciles had to be abandoned. */
  stop(timeoutMs?: number): Promise<boolean>;
}

export function configFromArgs(argv: string[]): ControllerConfig {
  // Go-style boolean: a bare `--publish-external-artifacts` means true.
  argv = argv.map((a) => (a === '--publish-external-artifacts' ? `${a}=true` : a));
  const { values: v, positionals } = parse(argv, {
    kubeconfig: { type: 'string' },
    context: { type: 'string' },
    'watch-namespace': { type: 'string' },
    'watch-label-selector': { type: 'string' },
    concurrent: { type: 'string', default: '4' },
    'storage-path': { type: 'string', default: process.env.STORAGE_PATH ?? '/data' },
    'storage-addr': { type: 'string', default: process.env.STORAGE_ADDRESS ?? ':9090' },
    'storage-adv-addr': { type: 'string', ...(process.env.STORAGE_ADV_ADDR ? { default: process.env.STORAGE_ADV_ADDR } : {}) },
    'artifact-retention-records': { type: 'string', default: '2' },
    'artifact-retention-ttl': { type: 'string', default: '1m' },
    'artifact-max-size': { type: 'string', default: '512Mi' },
    'artifact-cache-max-size': { type: 'string', default: '64Mi' },
    'verification-cache-max-size': { type: 'string', default: '16Mi' },
    'max-signatures': { type: 'string', default: '10' },
    'manifest-max-size': { type: 'string' },
    'max-tags': { type: 'string' },
    'tag-list-max-size': { type: 'string' },
    'max-referrers': { type: 'string' },
    'tar-max-entries': { type: 'string' },
    'tar-max-size': { type: 'string' },
    'min-retry-delay': { type: 'string', default: '750ms' },
    'max-retry-delay': { type: 'string', default: '15m' },
    'interval-jitter-percentage': { type: 'string', default: '5' },
    'requeue-alignment': { type: 'string', default: '1s' },
    'metrics-addr': { type: 'string', default: ':8080' },
    'log-level': { type: 'string', default: 'info' },
    'tag-page-size': { type: 'string' },
    'enable-leader-election': { type: 'boolean', default: false },
    'leader-election-namespace': { type: 'string' },
    'leader-election-lease-duration': { type: 'string', default: '35s' },
    'leader-election-renew-deadline': { type: 'string', default: '30s' },
    'leader-election-retry-period': { type: 'string', default: '5s' },
    'feature-gates': { type: 'string', default: '' },
    'default-service-account': { type: 'string' },
    'token-cache-max-size': { type: 'string', default: '100' },
    'token-cache-max-duration': { type: 'string', default: '1h' },
    'publish-external-artifacts': { type: 'string', default: 'true' },
    'external-artifact-discovery-interval': { type: 'string', default: '1m' },
    'shutdown-timeout': { type: 'string', default: '8s' },
  });
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  const int = (name: string, s: string, min: number) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}`);
    return n;
  };
  const dur = (name: string, s: string) => {
    try {
      return parseDuration(s);
    } catch {
      throw new UsageError(`--${name}: invalid duration '${s}'`);
    }
  };
  const gates = parseFeatureGates(v['feature-gates']!);
  const objectLevel = gates[FeatureGateObjectLevelWorkloadIdentity] ?? false;
  if (v['default-service-account'] && !objectLevel) throw new UsageError(`--default-service-account needs --feature-gates=${FeatureGateObjectLevelWorkloadIdentity}=true`);
  const cacheMaxDurationMs = dur('token-cache-max-duration', v['token-cache-max-duration']!);
  if (cacheMaxDurationMs > 3_600_000) throw new UsageError('--token-cache-max-duration must be at most 1h');
  const bool = (name: string, s: string) => {
    if (s === 'true' || s === '1') return true;
    if (s === 'false' || s === '0') return false;
    throw new UsageError(`--${name} must be true or false`);
  };
  return {
    ...(v.kubeconfig ? { kubeconfig: v.kubeconfig } : {}),
    ...(v.context ? { context: v.context } : {}),
    ...(v['watch-namespace'] ? { watchNamespace: v['watch-namespace'] } : {}),
    ...(v['watch-label-selector'] ? { labelSelector: v['watch-label-selector'] } : {}),
    concurrent: int('concurrent', v.concurrent!, 1),
    storagePath: v['storage-path']!,
    storageAddr: v['storage-addr']!,
    ...(v['storage-adv-addr'] ? { storageAdvAddr: v['storage-adv-addr'] } : {}),
    retentionRecords: int('artifact-retention-records', v['artifact-retention-records']!, 1),
    retentionTTLms: dur('artifact-retention-ttl', v['artifact-retention-ttl']!),
    artifactMaxSize: parseSize(v['artifact-max-size']!),
    artifactCacheMaxSize: parseSize(v['artifact-cache-max-size']!),
    verificationCacheMaxSize: parseSize(v['verification-cache-max-size']!),
    maxSignatures: int('max-signatures', v['max-signatures']!, 1),
    limits: {
      ...(v['manifest-max-size'] ? { manifestMaxSize: parseSize(v['manifest-max-size']) } : {}),
      ...(v['max-tags'] ? { maxTags: int('max-tags', v['max-tags'], 1) } : {}),
      ...(v['tag-list-max-size'] ? { tagListMaxSize: parseSize(v['tag-list-max-size']) } : {}),
      ...(v['max-referrers'] ? { maxReferrers: int('max-referrers', v['max-referrers'], 1) } : {}),
      ...(v['tar-max-entries'] ? { tarMaxEntries: int('tar-max-entries', v['tar-max-entries'], 1) } : {}),
      ...(v['tar-max-size'] ? { tarMaxSize: parseSize(v['tar-max-size']) } : {}),
    },
    minRetryMs: dur('min-retry-delay', v['min-retry-delay']!),
    maxRetryMs: dur('max-retry-delay', v['max-retry-delay']!),
    jitterPercent: int('interval-jitter-percentage', v['interval-jitter-percentage']!, 0),
    requeueAlignMs: v['requeue-alignment'] === '0' ? 0 : dur('requeue-alignment', v['requeue-alignment']!),
    metricsAddr: v['metrics-addr']!,
    logLevel: v['log-level']!,
    ...(v['tag-page-size'] ? { tagPageSize: int('tag-page-size', v['tag-page-size'], 1) } : {}),
    publishExternalArtifacts: bool('publish-external-artifacts', v['publish-external-artifacts']!),
    externalArtifactDiscoveryMs: dur('external-artifact-discovery-interval', v['external-artifact-discovery-interval']!),
    ...(v['enable-leader-election']
      ? {
          leaderElection: {
            namespace: v['leader-election-namespace'] ?? defaultNamespace(),
            leaseDurationMs: dur('leader-election-lease-duration', v['leader-election-lease-duration']!),
            renewDeadlineMs: dur('leader-election-renew-deadline', v['leader-election-renew-deadline']!),
            retryPeriodMs: dur('leader-election-retry-period', v['leader-election-retry-period']!),
          },
        }
      : {}),
    cloud: {
      objectLevel,
      ...(v['default-service-account'] ? { defaultServiceAccount: v['default-service-account'] } : {}),
      cacheMaxSize: int('token-cache-max-size', v['token-cache-max-size']!, 0),
      cacheMaxDurationMs,
    },
    shutdownTimeoutMs: dur('shutdown-timeout', v['shutdown-timeout']!),
  };
}

const KnownFeatureGates = [FeatureGateObjectLevelWorkloadIdentity];

/** "A=true,B=false" as Kubernetes components take it; unknown gates are an error, as in Flux. */
export function parseFeatureGates(s: string): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  for (const part of s.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([A-Za-z0-9]+)=(true|false)$/i.exec(part);
    if (!m) throw new UsageError(`--feature-gates: '${part}' is not NAME=true|false`);
    if (!KnownFeatureGates.includes(m[1]!)) throw new UsageError(`--feature-gates: unknown feature gate '${m[1]}' (known: ${KnownFeatureGates.join(', ')})`);
    out[m[1]!] = m[2]!.toLowerCase() === 'true';
  }
  return out;
}

function defaultNamespace(): string {
  if (process.env.RUNTIME_NAMESPACE) return process.env.RUNTIME_NAMESPACE;
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim();
  } catch {
    return 'oci-source-system';
  }
}

/** The Lease name; sharded controllers (label selector) each get their own. */
export function leaseName(labelSelector: string | undefined): string {
  const base = 'oci-source-controller-leader-election';
  return labelSelector ? `${base}-${createHash('sha256').update(labelSelector).digest('hex').slice(0, 8)}` : base;
}

export async function startController(cfg: ControllerConfig, log: Logger, onLeadershipLost?: () => void): Promise<RunningController> {
  const kube = Kube.load({ ...(cfg.kubeconfig ? { kubeconfig: cfg.kubeconfig } : {}), ...(cfg.context ? { context: cfg.context } : {}) });
  // Health first (so a waiting replica is alive but not ready), then the election, then the rest.
  const metrics = new Metrics();
  let metricsServer: import('node:http').Server | undefined;
  if (cfg.metricsAddr) {
    const [mh, mp] = parseAddr(cfg.metricsAddr);
    const m = await metrics.listen(mh, mp);
    metricsServer = m.server;
    log.info({ addr: `${m.address.address}:${m.address.port}` }, 'metrics and health server listening');
  }
  let elector: LeaderElector | undefined;
  if (cfg.leaderElection) {
    elector = new LeaderElector(kube, { ...cfg.leaderElection, name: leaseName(cfg.labelSelector), log });
    log.info({ lease: `${cfg.leaderElection.namespace}/${leaseName(cfg.labelSelector)}`, identity: elector.identity }, 'waiting to become leader');
    await elector.acquire();
  }
  const [host, port] = parseAddr(cfg.storageAddr);
  // Storage needs the advertised address before the server starts; a port of 0 is resolved after.
  const storage = new Storage({ root: cfg.storagePath, retentionRecords: cfg.retentionRecords, retentionTTLms: cfg.retentionTTLms, advertisedAddr: cfg.storageAdvAddr ?? '' });
  const artifacts = await startArtifactServer(storage, host, port, cfg.artifactCacheMaxSize !== undefined ? { cacheMaxBytes: cfg.artifactCacheMaxSize } : {});
  if (!cfg.storageAdvAddr) {
    const advHost = host === '0.0.0.0' || host === '::' ? os.hostname() : host;
    storage.opts.advertisedAddr = `${advHost}:${artifacts.address.port}`;
  }
  log.info({ addr: `${artifacts.address.address}:${artifacts.address.port}`, advertised: storage.opts.advertisedAddr, storagePath: storage.root }, 'artifact server listening');
  let manager: Manager | undefined;
  const cloud = new CloudIdentity({
    ...(cfg.cloud ?? { objectLevel: false, cacheMaxSize: 100, cacheMaxDurationMs: 3_600_000 }),
    recorder: metrics.tokenCache,
    kube: {
      // The manager's watch-validated cache once it exists (it is built below, with this identity).
      getServiceAccount: (ns, name) => manager?.serviceAccountCache.get(ns, name) ?? getOrNull<ServiceAccount>(kube, `/api/v1/namespaces/${encodeURIComponent(ns)}/serviceaccounts/${encodeURIComponent(name)}`),
      createServiceAccountToken: async (ns, name, audience) => {
        // Short-lived (the minimum the apiserver allows): it is exchanged at once and never stored.
        const r = await kube.request<{ status?: { token?: string } }>('POST', `/api/v1/namespaces/${encodeURIComponent(ns)}/serviceaccounts/${encodeURIComponent(name)}/token`, {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: { audiences: [audience], expirationSeconds: 600 },
        });
        if (!r.status?.token) throw new Error('TokenRequest returned no token');
        return r.status.token;
      },
    },
  });
  const transport = new Transport();
  metrics.observeTransport(transport);
  const verifyCache = new VerifyCache(undefined, cfg.verificationCacheMaxSize);
  metrics.observeCaches({ artifacts: () => artifacts.cache.stats(), verification: () => verifyCache.stats() });
  manager = new Manager({
    kube,
    storage,
    log,
    providers: createProviders(),
    verifyCache,
    metrics,
    cloud,
    transport,
    opts: {
      ...(cfg.watchNamespace ? { watchNamespace: cfg.watchNamespace } : {}),
      ...(cfg.labelSelector ? { labelSelector: cfg.labelSelector } : {}),
      concurrent: cfg.concurrent,
      minRetryMs: cfg.minRetryMs,
      maxRetryMs: cfg.maxRetryMs,
      requeueAlignMs: cfg.requeueAlignMs,
      reconcile: { maxSignatures: cfg.maxSignatures, artifactMaxSize: cfg.artifactMaxSize, ...(cfg.limits ? { limits: cfg.limits } : {}), jitterPercent: cfg.jitterPercent, userAgent: 'oci-source-controller/0.1', ...(cfg.tagPageSize ? { tagPageSize: cfg.tagPageSize } : {}) },
      externalArtifacts: { enabled: cfg.publishExternalArtifacts, discoveryIntervalMs: cfg.externalArtifactDiscoveryMs },
    },
  });
  await manager.start();
  metrics.ready = true;
  elector?.keepRenewing(() => {
    // Stop acting at once: another replica may hold the lease after leaseDuration.
    manager.stopLeading();
    metrics.ready = false;
    onLeadershipLost?.();
  });
  return {
    manager,
    artifacts,
    storage,
    stop: async (timeoutMs = cfg.shutdownTimeoutMs ?? 8000) => {
      const deadline = Date.now() + timeoutMs;
      const left = (reserveMs: number) => Math.max(0, deadline - Date.now() - reserveMs);
      metrics.ready = false;
      // manager.stop() cancels in-flight reconciles; one still running when the budget less 2s is
      // spent is abandoned, which is safe: artifacts are renamed into place only when complete
      // (nothing partial is ever served) and work files under storage are removed at the next start.
      const drained = await within(manager.stop(), left(2000));
      if (!drained) log.warn('shutdown: in-flight reconciles abandoned');
      // Released, the Lease lets another replica take over at once instead of after its duration.
      if (elector && !(await within(elector.release(), left(500)))) log.warn('shutdown: leader lease release timed out');
      await within(artifacts.close(), left(0));
      metricsServer?.closeAllConnections();
      await within(new Promise<void>((r) => (metricsServer ? metricsServer.close(() => r()) : r())), left(0));
      kube.close();
      await within(cloud.close(), left(0));
      // The manager closes it; if the manager was abandoned above, its connections go now.
      await within(transport.close(), left(0));
      return drained;
    },
  };
}

/** True when `p` settles within `ms` (a rejection counts as settled: shutdown goes on). */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([p.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export async function runCommand(argv: string[]): Promise<number> {
  const cfg = configFromArgs(argv);
  const log = makeLogger(cfg.logLevel);
  // Last line of defence: a bug in one reconcile must not take the controller (and the served
  // artifacts) down. Such errors are logged loudly; they mean a fix is needed.
  process.on('unhandledRejection', (err) => log.error({ err: String((err as Error)?.stack ?? err) }, 'unhandled promise rejection'));
  process.on('uncaughtException', (err) => log.error({ err: String(err.stack ?? err) }, 'uncaught exception'));
  let running: RunningController | undefined;
  let lost = false;
  const stopSignal = new Promise<'stop'>((resolve) => {
    process.once('SIGTERM', () => resolve('stop'));
    process.once('SIGINT', () => resolve('stop'));
  });
  let onLost!: () => void;
  const lostSignal = new Promise<'lost'>((resolve) => (onLost = () => resolve('lost')));
  const started = startController(cfg, log, () => {
    lost = true;
    onLost();
  });
  started.then((r) => (running = r)).catch(() => undefined);
  // Start-up errors end the command; a signal while waiting for the lease ends it at once.
  const why = await Promise.race([stopSignal, lostSignal, started.then(() => new Promise<never>(() => {}))]);
  log.info(why === 'lost' ? 'leadership lost; exiting so a new process can campaign' : 'shutting down');
  if (!running) process.exit(0);
  const code = lost ? 1 : 0;
  const drained = await running.stop();
  log.info({ drained }, 'shutdown complete');
  // Abandoned reconciles still hold sockets and timers: end the process now rather than let them
  // write on (as PID 1 in a container, this is what makes SIGTERM exit promptly). pino flushes
  // its buffered lines on exit.
  process.exit(code);
}
