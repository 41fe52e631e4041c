// Wires informers, the work queue and the reconciler: finalizers, status patches (only when
// changed, with conflict retry), events, and re-triggers on Secret changes.
import type { Logger } from 'pino';
import { ConditionType as CT, Reason, setCondition, sortConditions, summarizeReady } from '../api/conditions.ts';
import { ApiVersion, Finalizer, Group, Kind, Plural, ReconcileRequestAnnotation, Version, type OCIRepository, type OCIRepositoryStatus } from '../api/schema.ts';
import type { Storage } from '../storage/store.ts';
import { Informer, keyOf } from './informer.ts';
import type { Kube } from './kube.ts';
import { getOrNull, patchFinalizers, patchStatus } from './objects.ts';
import type { Metrics } from './metrics.ts';
import { WorkQueue, type Outcome } from './queue.ts';
import { reconcile, type KubeEvent, type ReconcileOptions, type World } from './reconcile.ts';
import { referencedSecrets, type Secret } from './secrets.ts';
import type { VerifyCache } from './verification.ts';
import type { Provider, ProviderName } from '../verify/types.ts';

export interface ManagerOptions {
  watchNamespace?: string;
  labelSelector?: string;
  concurrent: number;
  minRetryMs: number;
  maxRetryMs: number;
  reconcile: ReconcileOptions;
}

interface SecretMeta {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
}

export class Manager {
  readonly kube: Kube;
  readonly storage: Storage;
  readonly log: Logger;
  readonly opts: ManagerOptions;
  readonly objects: Informer<OCIRepository>;
  readonly secrets: Informer<SecretMeta>;
  readonly queue: WorkQueue;
  readonly world: World;
  readonly metrics: Metrics | undefined;
  #reconcileCount = 0;

  constructor(args: { kube: Kube; storage: Storage; log: Logger; opts: ManagerOptions; providers: Record<ProviderName, Provider>; verifyCache: VerifyCache; metrics?: Metrics }) {
    this.kube = args.kube;
    this.storage = args.storage;
    this.log = args.log;
    this.opts = args.opts;
    this.metrics = args.metrics;
    const ns = args.opts.watchNamespace;
    const base = `/apis/${Group}/${Version}`;
    this.objects = new Informer<OCIRepository>(
      this.kube,
      { path: ns ? `${base}/namespaces/${ns}/${Plural}` : `${base}/${Plural}`, ...(args.opts.labelSelector ? { labelSelector: args.opts.labelSelector } : {}), log: this.log },
      {
        onAdd: (o) => this.queue.add(keyOf(o)),
        onUpdate: (prev, o) => {
          if (needsReconcile(prev, o)) this.queue.add(keyOf(o));
        },
        onDelete: (o) => {
          // Deleted without our finalizer (e.g. forced): still drop its files.
          this.queue.forget(keyOf(o));
          void this.storage.removeObject(o.metadata.namespace, o.metadata.name).catch(() => undefined);
        },
      },
    );
    // Secrets are watched by metadata only: a change of resourceVersion re-triggers the objects
    // that reference the Secret (key rotation), without caching Secret contents in memory.
    this.secrets = new Informer<SecretMeta>(
      this.kube,
      {
        path: ns ? `/api/v1/namespaces/${ns}/secrets` : '/api/v1/secrets',
        accept: 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1',
        listAccept: 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1',
        log: this.log,
      },
      {
        onAdd: (s) => this.#secretChanged(s),
        onUpdate: (_p, s) => this.#secretChanged(s),
        onDelete: (s) => this.#secretChanged(s),
      },
    );
    this.queue = new WorkQueue({ workers: args.opts.concurrent, minRetryMs: args.opts.minRetryMs, maxRetryMs: args.opts.maxRetryMs }, (key) => this.process(key));
    this.world = {
      storage: this.storage,
      providers: args.providers,
      verifyCache: args.verifyCache,
      options: args.opts.reconcile,
      log: this.log,
      now: () => new Date(),
      getSecret: (namespace, name) => this.#get<Secret>(`/api/v1/namespaces/${namespace}/secrets/${name}`),
      getServiceAccount: (namespace, name) => this.#get<{ imagePullSecrets?: { name: string }[] }>(`/api/v1/namespaces/${namespace}/serviceaccounts/${name}`),
    };
  }

  #secretsSynced = false;
  #secretChanged(s: SecretMeta): void {
    if (!this.#secretsSynced) return; // the initial list adds every object anyway
    const ns = s.metadata.namespace;
    for (const o of this.objects.cache.values()) {
      if (o.metadata.namespace === ns && referencedSecrets(o).includes(s.metadata.name)) {
        this.log.info({ object: keyOf(o), secret: `${ns}/${s.metadata.name}` }, 'referenced secret changed; reconciling');
        this.queue.add(keyOf(o));
      }
    }
  }

  async start(): Promise<void> {
    await this.storage.cleanWork();
    this.objects.start();
    this.secrets.start();
    await Promise.all([this.objects.synced(), this.secrets.synced()]);
    this.#secretsSynced = true;
    this.queue.start();
    this.log.info({ objects: this.objects.cache.size, namespace: this.opts.watchNamespace ?? '(all)' }, 'controller started');
  }

  async stop(): Promise<void> {
    await Promise.all([this.objects.stop(), this.secrets.stop()]);
    await this.queue.stop();
  }

  get reconciles(): number {
    return this.#reconcileCount;
  }

  #get<T>(path: string): Promise<T | null> {
    return getOrNull<T>(this.kube, path);
  }

  async process(key: string): Promise<Outcome> {
    let obj = this.objects.cache.get(key);
    if (!obj) return {};
    const log = this.log.child({ ocirepository: key, reconcileID: Math.random().toString(36).slice(2, 10) });
    const started = performance.now();
    this.#reconcileCount++;
    try {
      if (obj.metadata.deletionTimestamp) {
        if (obj.metadata.finalizers?.includes(Finalizer)) {
          await this.storage.removeObject(obj.metadata.namespace, obj.metadata.name);
          await this.#patchFinalizers(obj, (obj.metadata.finalizers ?? []).filter((f) => f !== Finalizer));
          log.info('artifacts removed; finalizer released');
        }
        this.queue.forget(key);
        return {};
      }
      if (!obj.metadata.finalizers?.includes(Finalizer)) {
        obj = await this.#patchFinalizers(obj, [...(obj.metadata.finalizers ?? []), Finalizer]);
      }
      if (obj.spec.suspend) {
        log.info('reconciliation is suspended for this object');
        return {};
      }
      // New generation or requested reconcile: say so before the (possibly long) work.
      const requested = obj.metadata.annotations?.[ReconcileRequestAnnotation];
      if (obj.status?.observedGeneration !== obj.metadata.generation || (requested && requested !== obj.status?.lastHandledReconcileAt)) {
        obj = await this.#markProgressing(obj);
      }
      const result = await reconcile(obj, { ...this.world, log });
      await this.#patchStatus(obj, result.status);
      for (const e of result.events) void this.#event(obj, e);
      if ('error' in result.outcome) log.debug({ err: result.outcome.error.message }, 'reconcile failed; backing off');
      return result.outcome;
    } catch (err) {
      log.error({ err: (err as Error).message }, 'reconcile error');
      return { error: err as Error };
    } finally {
      this.metrics?.observeReconcile(obj.metadata.namespace, obj.metadata.name, (performance.now() - started) / 1000);
    }
  }

  async #markProgressing(obj: OCIRepository): Promise<OCIRepository> {
    const gen = obj.metadata.generation;
    const msg = obj.status?.observedGeneration !== gen ? `processing object: new generation ${obj.status?.observedGeneration ?? 0} -> ${gen}` : 'reconciliation in progress';
    let conds = setCondition(obj.status?.conditions ?? [], CT.Reconciling, 'True', Reason.Progressing, msg, gen);
    conds = summarizeReady(conds, gen);
    return this.#patchStatus(obj, { ...(obj.status ?? {}), conditions: sortConditions(conds) });
  }

  async #patchStatus(obj: OCIRepository, status: OCIRepositoryStatus): Promise<OCIRepository> {
    const updated = await patchStatus(this.kube, obj, status);
    this.#remember(updated);
    return updated;
  }

  async #patchFinalizers(obj: OCIRepository, finalizers: string[]): Promise<OCIRepository> {
    const updated = await patchFinalizers(this.kube, obj, finalizers);
    this.#remember(updated);
    return updated;
  }

  /** Keeps the cache current with our own writes, so the next step sees them. */
  #remember(o: OCIRepository): void {
    const k = keyOf(o);
    const prev = this.objects.cache.get(k);
    if (!prev || Number(prev.metadata.resourceVersion) <= Number(o.metadata.resourceVersion)) this.objects.cache.set(k, o);
  }

  async #event(obj: OCIRepository, e: KubeEvent): Promise<void> {
    const now = new Date().toISOString();
    const ns = obj.metadata.namespace;
    try {
      await this.kube.request('POST', `/api/v1/namespaces/${ns}/events`, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { generateName: `${obj.metadata.name}.`, namespace: ns, ...(e.annotations ? { annotations: e.annotations } : {}) },
        involvedObject: { apiVersion: ApiVersion, kind: Kind, name: obj.metadata.name, namespace: ns, uid: obj.metadata.uid, resourceVersion: obj.metadata.resourceVersion },
        reason: e.reason,
        message: e.message.slice(0, 1024),
        type: e.type,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
        source: { component: 'oci-source-controller' },
        reportingComponent: 'oci-source-controller',
      });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'failed to record event');
    }
  }
}

/** Spec changes, reconcile requests and deletions trigger work; our own status writes do not. */
export function needsReconcile(prev: OCIRepository, o: OCIRepository): boolean {
  if (prev.metadata.generation !== o.metadata.generation) return true;
  if (!prev.metadata.deletionTimestamp && o.metadata.deletionTimestamp) return true;
  const a = prev.metadata.annotations?.[ReconcileRequestAnnotation];
  const b = o.metadata.annotations?.[ReconcileRequestAnnotation];
  return a !== b;
}

