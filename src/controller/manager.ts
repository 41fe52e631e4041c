// Wires informers, the work queue, the worker loop and the reconciler. Per key, one pass is:
// finalizer → reconcile() (its "in progress" status written when it takes over a second, on a new
// generation or a requested reconcile)
// → one status write → events from the status difference. Changes of Secrets and ServiceAccounts
// re-trigger the objects that reference them.
import type { Logger } from 'pino';
import { ConditionType as CT, Reason, setCondition, sortConditions, summarizeReady } from '../api/conditions.ts';
import { ApiVersion, Finalizer, Group, Kind, Plural, ReconcileRequestAnnotation, Version } from '../api/names.ts';
import type { OCIRepository, OCIRepositoryStatus } from '../api/schema.ts';
import { RegistryClient } from '../oci/client.ts';
import { Transport } from '../oci/transport.ts';
import { retryAfterOf } from '../oci/errors.ts';
import type { Storage } from '../storage/store.ts';
import type { Provider, ProviderName } from '../verify/types.ts';
import { lazyChild } from '../util/log.ts';
import { notify, type KubeEvent } from './events.ts';
import { ExternalArtifactPublisher, withPublication, type PublisherOptions } from './external-artifact.ts';
import { Informer, keyOf, stripManagedFields } from './informer.ts';
import type { Kube } from './kube.ts';
import type { Metrics } from './metrics.ts';
import { getOrNull, patchFinalizers, patchStatus } from './objects.ts';
import { ExponentialRateLimiter, WorkQueue, realClock, type Clock } from './queue.ts';
import { keptArtifacts, reconcile, type ReconcileDeps, type ReconcileOptions } from './reconcile.ts';
import { ContentCache, referencedSecrets, type KubeReader, type Secret, type ServiceAccount } from './secrets.ts';
import type { VerifyCache } from './verification.ts';
import type { CloudIdentity } from '../oci/cloud/index.ts';

export interface ManagerOptions {
  watchNamespace?: string;
  labelSelector?: string;
  concurrent: number;
  minRetryMs: number;
  maxRetryMs: number;
  /** Requeue alignment (see QueueOptions.alignMs); 0 or unset: exact. */
  requeueAlignMs?: number;
  reconcile: ReconcileOptions;
  externalArtifacts: Omit<PublisherOptions, 'watchNamespace' | 'sharded'>;
}

/** What the metadata watches of Secrets and ServiceAccounts carry. */
interface ObjectMeta {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
}

export class Manager {
  readonly kube: Kube;
  readonly storage: Storage;
  readonly log: Logger;
  readonly opts: ManagerOptions;
  readonly objects: Informer<OCIRepository>;
  readonly secrets: Informer<ObjectMeta>;
  readonly secretCache: ContentCache<Secret>;
  readonly serviceAccounts: Informer<ObjectMeta>;
  /** imagePullSecrets and workload identity annotations of spec.serviceAccountName. */
  readonly serviceAccountCache: ContentCache<ServiceAccount>;
  readonly queue: WorkQueue;
  readonly deps: ReconcileDeps;
  readonly metrics: Metrics | undefined;
  readonly publisher: ExternalArtifactPublisher;
  /** Registry connections, tokens and challenges of every reconcile; closed by stop(). */
  readonly transport: Transport;
  /** Aborted on stop or when leadership is lost: in-flight reconciles end and nothing more is written. */
  readonly #cancel = new AbortController();
  #workers: Promise<void>[] = [];
  #synced = false;
  #reconcileCount = 0;
  /** When the watch last showed each object's spec change or reconcile request (performance.now()). */
  readonly #triggeredAt = new Map<string, number>();

  constructor(args: { kube: Kube; storage: Storage; log: Logger; opts: ManagerOptions; providers: Record<ProviderName, Provider>; verifyCache: VerifyCache; metrics?: Metrics; clock?: Clock; cloud?: CloudIdentity; transport?: Transport }) {
    this.kube = args.kube;
    this.transport = args.transport ?? new Transport();
    this.storage = args.storage;
    this.log = args.log;
    this.opts = args.opts;
    this.metrics = args.metrics;
    const clock = args.clock ?? realClock;
    const ns = args.opts.watchNamespace;
    const base = `/apis/${Group}/${Version}`;
    this.objects = new Informer<OCIRepository>(
      this.kube,
      { path: ns ? `${base}/namespaces/${ns}/${Plural}` : `${base}/${Plural}`, ...(args.opts.labelSelector ? { labelSelector: args.opts.labelSelector } : {}), log: this.log },
      {
        onAdd: (o) => this.#trigger(keyOf(o)),
        onUpdate: (prev, o) => {
          if (needsReconcile(prev, o)) this.#trigger(keyOf(o));
        },
        onDelete: (o) => {
          this.#triggeredAt.delete(keyOf(o));
          // Deleted without our finalizer (e.g. forced): still drop its files. An object that only
          // left our shard keeps its ExternalArtifact: the shard that took it over maintains it.
          this.queue.remove(keyOf(o));
          this.transport.release(keyOf(o));
          this.metrics?.forgetObject(o.metadata.namespace, o.metadata.name);
          void this.storage.removeObject(o.metadata.namespace, o.metadata.name).catch(() => undefined);
          if (!args.opts.labelSelector) void this.publisher.remove(o).catch((err) => this.log.warn({ err: (err as Error).message }, 'failed to remove ExternalArtifact'));
        },
      },
    );
    // Secrets and ServiceAccounts are watched by metadata only: a new resourceVersion drops the
    // cached contents and re-triggers the objects that reference the object (key rotation).
    const metadataWatch = (resource: string, changed: (o: ObjectMeta) => void) =>
      new Informer<ObjectMeta>(
        this.kube,
        {
          path: ns ? `/api/v1/namespaces/${ns}/${resource}` : `/api/v1/${resource}`,
          accept: 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1',
          listAccept: 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1',
          log: this.log,
        },
        { onAdd: changed, onUpdate: (_p, o) => changed(o), onDelete: changed },
      );
    this.secrets = metadataWatch('secrets', (s) => this.#referenceChanged('secret', this.secretCache, s, referencedSecrets));
    this.secretCache = new ContentCache<Secret>(
      (namespace, name) => getOrNull<Secret>(this.kube, `/api/v1/namespaces/${namespace}/secrets/${name}`),
      (namespace, name) => this.secrets.cache.get(`${namespace}/${name}`)?.metadata.resourceVersion,
    );
    this.serviceAccounts = metadataWatch('serviceaccounts', (sa) => this.#referenceChanged('service account', this.serviceAccountCache, sa, (o) => (o.spec.serviceAccountName ? [o.spec.serviceAccountName] : [])));
    this.serviceAccountCache = new ContentCache<ServiceAccount>(
      (namespace, name) => getOrNull<ServiceAccount>(this.kube, `/api/v1/namespaces/${namespace}/serviceaccounts/${name}`),
      (namespace, name) => this.serviceAccounts.cache.get(`${namespace}/${name}`)?.metadata.resourceVersion,
    );
    this.publisher = new ExternalArtifactPublisher({
      kube: this.kube,
      log: this.log,
      opts: { ...args.opts.externalArtifacts, ...(ns ? { watchNamespace: ns } : {}), sharded: !!args.opts.labelSelector },
      hooks: {
        knows: (key) => this.objects.cache.has(key),
        requeue: (key) => this.queue.add(key),
        requeueAll: () => {
          for (const key of this.objects.cache.keys()) this.queue.add(key);
        },
        urlOf: (p) => this.storage.url(p),
        stored: async (namespace, name, a) => a.path.startsWith(`${this.storage.objectDir(namespace, name)}/`) && (await this.storage.intact(a.path, a.digest)),
      },
      now: () => new Date(clock.now()),
    });
    this.queue = new WorkQueue({ rateLimiter: new ExponentialRateLimiter(args.opts.minRetryMs, args.opts.maxRetryMs), clock, alignMs: args.opts.requeueAlignMs ?? 0, ...(args.metrics ? { metrics: args.metrics.queue } : {}) });
    this.deps = {
      storage: this.storage,
      kube: {
        getSecret: (namespace, name) => this.secretCache.get(namespace, name),
        getServiceAccount: (namespace, name) => this.serviceAccountCache.get(namespace, name),
        ...(args.cloud ? { cloud: args.cloud } : {}),
      },
      connect: (ref, options) => new RegistryClient(ref, { ...options, transport: this.transport }),
      providers: args.providers,
      verifyCache: args.verifyCache,
      options: args.opts.reconcile,
      log: this.log,
      now: () => new Date(clock.now()),
      signal: this.#cancel.signal,
      keepArtifacts: (namespace, name) => this.publisher.keep(namespace, name),
    };
  }

  /** Queues a key for a change seen on the watch, remembering when: see #freshReader. */
  #trigger(key: string): void {
    this.#triggeredAt.set(key, performance.now());
    this.queue.add(key);
  }

  /**
   * A watched Secret or ServiceAccount changed: its cached contents go, and the objects that
   * reference it reconcile with the new ones (rotated keys, new imagePullSecrets or identity).
   */
  #referenceChanged(what: 'secret' | 'service account', cache: ContentCache<Secret> | ContentCache<ServiceAccount>, changed: ObjectMeta, references: (o: OCIRepository) => string[]): void {
    const ns = changed.metadata.namespace ?? '';
    const name = changed.metadata.name;
    cache.invalidate(ns, name);
    if (!this.#synced) return; // the initial list adds every object anyway
    for (const o of this.objects.cache.values()) {
      if (o.metadata.namespace === ns && references(o).includes(name)) {
        this.log.info({ object: keyOf(o), [what === 'secret' ? 'secret' : 'serviceAccount']: `${ns}/${name}` }, `referenced ${what} changed; reconciling`);
        this.queue.add(keyOf(o));
      }
    }
  }

  async start(): Promise<void> {
    await this.storage.cleanWork();
    this.objects.start();
    this.secrets.start();
    this.serviceAccounts.start();
    await Promise.all([this.objects.synced(), this.secrets.synced(), this.serviceAccounts.synced()]);
    this.#synced = true;
    // Before any reconcile: GC must already know which artifacts ExternalArtifacts point at.
    await this.publisher.start();
    for (let i = 0; i < this.opts.concurrent; i++) this.#workers.push(this.#worker());
    this.log.info({ objects: this.objects.cache.size, namespace: this.opts.watchNamespace ?? '(all)' }, 'controller started');
  }

  /**
   * Stops at once: no new work, in-flight reconciles are cancelled (their partial work stays in
   * the work directory, which is cleaned at the next start) and write nothing more.
   */
  stopLeading(): void {
    this.#cancel.abort(new Error('stopped leading'));
    this.queue.shutDown();
  }

  async stop(): Promise<void> {
    this.stopLeading();
    await Promise.all([this.objects.stop(), this.secrets.stop(), this.serviceAccounts.stop(), this.publisher.stop()]);
    await Promise.all(this.#workers);
    await this.transport.close();
  }

  get reconciles(): number {
    return this.#reconcileCount;
  }

  /** The worker loop: take a key, process it, schedule the next pass from the outcome. */
  async #worker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        const outcome = await this.process(key).catch((err: Error) => {
          if (!this.#cancel.signal.aborted) this.log.warn({ ocirepository: key, err: err.message }, 'reconcile could not be recorded; retrying with backoff');
          return { error: err };
        });
        if ('error' in outcome) {
          this.metrics?.countReconcile('error');
          // A registry's Retry-After (429/503) is honoured: the next attempt comes no sooner.
          this.queue.addRateLimited(key, retryAfterOf(outcome.error) ?? 0);
        } else {
          this.queue.forget(key);
          this.metrics?.countReconcile(outcome.requeueAfterMs !== undefined ? 'requeue_after' : 'success');
          if (outcome.requeueAfterMs !== undefined) this.queue.addAfter(key, outcome.requeueAfterMs);
        }
      } finally {
        this.queue.done(key);
      }
    }
  }

  /** One pass over one key. Throws only when the apiserver cannot take our writes. */
  async process(key: string): Promise<{ requeueAfterMs?: number } | { error: Error }> {
    let obj = this.objects.cache.get(key);
    if (!obj) return {};
    const log = lazyChild(this.log, { ocirepository: key, reconcileID: Math.random().toString(36).slice(2, 10) });
    const started = performance.now();
    this.#reconcileCount++;
    try {
      if (obj.metadata.deletionTimestamp) {
        if (obj.metadata.finalizers?.includes(Finalizer)) {
          this.#guard();
          await this.publisher.remove(obj);
          await this.storage.removeObject(obj.metadata.namespace, obj.metadata.name);
          this.#guard();
          await this.#patchFinalizers(obj, (obj.metadata.finalizers ?? []).filter((f) => f !== Finalizer));
          log.info('artifacts removed; finalizer released');
        }
        this.queue.remove(key);
        this.transport.release(key);
        return {};
      }
      this.#guard();
      if (!obj.metadata.finalizers?.includes(Finalizer)) obj = await this.#patchFinalizers(obj, [...(obj.metadata.finalizers ?? []), Finalizer]);
      if (obj.spec.suspend) {
        log.info('reconciliation is suspended for this object');
        return {};
      }
      // New generation or requested reconcile: the work starts from an "in progress" status
      // (Reconciling, Ready Unknown), which is written when the work takes long enough for anyone
      // to look. A quick reconcile goes straight to its final status: the extra write was a
      // quarter of the apiserver writes for a burst of new objects. The final status is the same
      // either way; it is never the in-progress one.
      const requested = obj.metadata.annotations?.[ReconcileRequestAnnotation];
      const asked = obj.status?.observedGeneration !== obj.metadata.generation || (!!requested && requested !== obj.status?.lastHandledReconcileAt);
      const base: OCIRepository = asked ? { ...obj, status: progressing(obj) } : obj;
      const running = reconcile(base, { ...this.deps, ...(asked ? { kube: this.#freshReader(this.#triggeredAt.get(key) ?? started) } : {}), log });
      if (asked && (await slowerThan(running, ProgressWriteAfterMs))) {
        const generation = obj.metadata.generation;
        try {
          this.#guard();
          obj = await this.#patchStatus(obj, base.status!);
        } catch (err) {
          await running; // one reconcile per object at a time, even when the write failed
          throw err;
        }
        // The spec moved on while we wrote (a conflict returned a newer object): that change has
        // its own watch event, which queues this key again; this pass must not record a result
        // for a spec it has not checked (e.g. a new suspend).
        if (obj.metadata.generation !== generation) {
          await running;
          return {};
        }
      }
      const result = await running;
      if (result.cancelled) return {};
      this.#guard();
      // The ExternalArtifact follows the final status; its condition joins the one status write.
      const published = await this.publisher.sync(obj, result.status);
      const status = withPublication(result.status, published, obj.metadata.generation, this.deps.now());
      await this.#patchStatus(obj, status);
      // The artifact step kept the previously recorded artifact until this write named the new
      // one; now it can go (retention permitting) instead of waiting for the next interval.
      const current = status.artifact?.path;
      if (current && current !== obj.status?.artifact?.path) {
        await this.deps.storage.garbageCollect(obj.metadata.namespace, obj.metadata.name, keptArtifacts(this.deps, obj, current)).catch(() => []);
      }
      for (const e of notify(obj, base.status, status, result.loggedFailures)) void this.#event(obj, e);
      return published.error && !('error' in result.outcome) ? { error: published.error } : result.outcome;
    } finally {
      this.metrics?.observeReconcile(obj.metadata.namespace, obj.metadata.name, (performance.now() - started) / 1000);
    }
  }

  /**
   * For a reconcile the user asked for (new generation, reconcile request): Secrets and
   * ServiceAccounts as the apiserver had them after the watch showed the request (`since`), so a
   * Secret changed just before the request is seen even when its own watch event has not arrived
   * yet. Interval reconciles use the watch-validated cache.
   */
  #freshReader(since: number): KubeReader {
    return {
      ...this.deps.kube,
      getSecret: (namespace, name) => this.secretCache.read(namespace, name, since),
      getServiceAccount: (namespace, name) => this.serviceAccountCache.read(namespace, name, since),
    };
  }

  /** No apiserver write once we stopped leading. */
  #guard(): void {
    if (this.#cancel.signal.aborted) throw new Error('not leading: write skipped');
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
    if (!prev || Number(prev.metadata.resourceVersion) <= Number(o.metadata.resourceVersion)) this.objects.cache.set(k, stripManagedFields(o));
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

/** A reconcile that has not finished by then gets its "in progress" status written. */
const ProgressWriteAfterMs = 1000;

/** True when `p` is still running after `ms` (then at once); false as soon as it settles first. */
function slowerThan(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(true), ms);
    const settled = () => {
      clearTimeout(timer);
      resolve(false);
    };
    p.then(settled, settled);
  });
}

/** The status that says the work has started: Reconciling, and Ready derived from it. */
export function progressing(obj: OCIRepository, now = new Date()): OCIRepositoryStatus {
  const gen = obj.metadata.generation;
  const msg = obj.status?.observedGeneration !== gen ? `processing object: new generation ${obj.status?.observedGeneration ?? 0} -> ${gen}` : 'reconciliation in progress';
  const conds = setCondition(obj.status?.conditions ?? [], CT.Reconciling, 'True', Reason.Progressing, msg, gen, now);
  return { ...(obj.status ?? {}), conditions: sortConditions(summarizeReady(conds, gen, now)) };
}

/** Spec changes, reconcile requests and deletions trigger work; our own status writes do not. */
export function needsReconcile(prev: OCIRepository, o: OCIRepository): boolean {
  if (prev.metadata.generation !== o.metadata.generation) return true;
  if (!prev.metadata.deletionTimestamp && o.metadata.deletionTimestamp) return true;
  const a = prev.metadata.annotations?.[ReconcileRequestAnnotation];
  const b = o.metadata.annotations?.[ReconcileRequestAnnotation];
  return a !== b;
}
