// Publishes each OCIRepository as a Flux ExternalArtifact (source.toolkit.fluxcd.io/v1, RFC-0012)
// of the same name, so kustomize-controller and helm-controller can apply what we verified.
// Flux reads `status.artifact` only (download the url, check the digest); Ready and
// SourceVerified are for people. The invariant this module keeps: with `spec.verify`, the
// ExternalArtifact only ever points at an artifact whose signatures verified; a newer revision
// that fails (or is only audited) leaves it on the last verified one, with Ready False saying why.
//
// The manager owns one publisher: start() after the informers synced (discovery, and the
// ExternalArtifact cache that keep() reads), sync() after reconcile computed the final status
// and before the one status write, remove() in the finalizer path.
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { ConditionType as CT, Reason, findCondition, removeCondition, setCondition, sortConditions } from '../api/conditions.ts';
import { ApiVersion as OurApiVersion, Group as OurGroup, Kind as OurKind } from '../api/names.ts';
import type { Artifact, Condition, OCIRepository, OCIRepositoryStatus } from '../api/schema.ts';
import { Informer, keyOf, stripManagedFields } from './informer.ts';
import { KubeError, type Kube } from './kube.ts';

export const Group = 'source.toolkit.fluxcd.io';
export const Version = 'v1';
export const Kind = 'ExternalArtifact';
export const Plural = 'externalartifacts';
export const ApiVersion = `${Group}/${Version}`;
const ManagedBy = { 'app.kubernetes.io/managed-by': 'oci-source-controller' };

/** Condition on the OCIRepository: do we maintain its ExternalArtifact (True), or why not (False). */
export const PublishedCondition = 'ExternalArtifactPublished';
export const PublishReason = {
  /** An ExternalArtifact of that name exists with another sourceRef; we leave it alone. */
  Conflict: 'ExternalArtifactConflict',
  /** The API server refused a write (RBAC, admission, outage); retried with backoff. */
  WriteFailed: 'ExternalArtifactWriteFailed',
} as const;
/** ExternalArtifact Ready reasons when the newest revision does not reach Flux. */
export const EAReason = {
  VerificationFailed: 'VerificationFailed',
  FetchFailed: 'FetchFailed',
  StorageOperationFailed: 'StorageOperationFailed',
} as const;

export interface SourceReference {
  apiVersion?: string;
  kind: string;
  name: string;
  namespace?: string;
}

export interface ExternalArtifactStatus {
  artifact?: Artifact;
  conditions?: Condition[];
}

export interface ExternalArtifact {
  apiVersion: typeof ApiVersion;
  kind: typeof Kind;
  metadata: {
    name: string;
    namespace: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    deletionTimestamp?: string;
    labels?: Record<string, string>;
    ownerReferences?: OwnerReference[];
  };
  spec?: { sourceRef?: SourceReference };
  status?: ExternalArtifactStatus;
}

interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface PublisherOptions {
  /** --publish-external-artifacts: false removes the ExternalArtifacts we maintain. */
  enabled: boolean;
  /** How often to look for the ExternalArtifact API (it may be installed after us, or removed). */
  discoveryIntervalMs: number;
  watchNamespace?: string;
  /** With label-selector sharding, objects outside our cache may belong to another shard. */
  sharded: boolean;
}

/** What the manager needs to hand the publisher. */
export interface PublisherHooks {
  /** Whether this process reconciles the OCIRepository ns/name. */
  knows(key: string): boolean;
  /** Reconcile one object again (its ExternalArtifact was changed or deleted by someone else). */
  requeue(key: string): void;
  /** Reconcile every object again (the ExternalArtifact API appeared or went away). */
  requeueAll(): void;
  /** The URL of a stored artifact as currently advertised. */
  urlOf(path: string): string;
  /** Whether `artifact` is a file of ns/name in our storage with that digest. */
  stored(namespace: string, name: string, artifact: Artifact): Promise<boolean>;
}

/**
 * What sync() asks the manager to merge into the OCIRepository's one status write (events then
 * follow from the status difference: a False condition is announced when it appears or changes).
 */
export interface SyncResult {
  /** ExternalArtifactPublished to set; undefined removes it (publishing off or API absent). */
  condition?: { status: Condition['status']; reason: string; message: string };
  /** A failed write: the manager reports the reconcile as failed so it is retried with backoff. */
  error?: Error;
}

const isMissing = (err: unknown) => err instanceof KubeError && err.status === 404;
const isConflict = (err: unknown) => err instanceof KubeError && err.status === 409;
const groupOf = (apiVersion: string | undefined) => apiVersion?.split('/')[0];

/** Ours: the sourceRef names this very OCIRepository (of our group, same name, same namespace). */
export function isOurs(ea: ExternalArtifact): boolean {
  const ref = ea.spec?.sourceRef;
  return !!ref && ref.kind === OurKind && groupOf(ref.apiVersion) === OurGroup && ref.name === ea.metadata.name && (!ref.namespace || ref.namespace === ea.metadata.namespace);
}

function describeRef(ref: SourceReference | undefined): string {
  if (!ref) return 'no sourceRef';
  return `sourceRef ${ref.apiVersion ? `${ref.apiVersion} ` : ''}${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`;
}

/** Why the newest revision does not reach Flux, from our final conditions. */
function holdReason(status: OCIRepositoryStatus, verify: boolean): { status: Condition['status']; reason: string; message: string } {
  const conds = status.conditions ?? [];
  const ready = findCondition(conds, CT.Ready);
  const sv = findCondition(conds, CT.SourceVerified);
  // Ready carries the reason and message of the condition that decided it (summarizeReady).
  const decided = (type: string) => {
    const c = findCondition(conds, type);
    return !!c && !!ready && c.reason === ready.reason && c.message === ready.message;
  };
  if (ready?.status === 'False') {
    if (sv?.status === 'False' && decided(CT.SourceVerified)) return { status: 'False', reason: EAReason.VerificationFailed, message: ready.message };
    if (decided(CT.StorageOperationFailed)) return { status: 'False', reason: EAReason.StorageOperationFailed, message: ready.message };
    if (decided(CT.FetchFailed)) return { status: 'False', reason: EAReason.FetchFailed, message: ready.message };
    return { status: 'False', reason: ready.reason, message: ready.message };
  }
  if (verify && sv?.status !== 'True') {
    // Audited (authenticity failed under `audit`) or skipped by the trust policy: stored, not verified.
    const message = sv?.message ?? `signatures of revision '${status.artifact?.revision ?? 'unknown'}' were not verified`;
    return { status: 'False', reason: EAReason.VerificationFailed, message };
  }
  return { status: 'Unknown', reason: Reason.Progressing, message: ready?.message ?? 'reconciliation in progress' };
}

/**
 * What we last published for an object: the publisher's own memory, never read back from the
 * ExternalArtifact (anyone with write access there could have changed it).
 */
export interface Held {
  artifact: Artifact;
  /** Our SourceVerified message for it, when its signatures verified. */
  verifiedMessage?: string;
}

/**
 * The ExternalArtifact status for the OCIRepository's final status. Pure: `held` is what we last
 * published, `current` the ExternalArtifact's status now (only its condition times carry over).
 */
export function desiredStatus(args: {
  obj: OCIRepository;
  status: OCIRepositoryStatus;
  held: Held | undefined;
  current: ExternalArtifactStatus | undefined;
  generation: number | undefined;
  now: Date;
  urlOf(path: string): string;
}): ExternalArtifactStatus {
  const { obj, status, held, current, generation, now } = args;
  const verify = !!obj.spec.verify;
  const ours = status.conditions ?? [];
  const ready = findCondition(ours, CT.Ready);
  const sv = findCondition(ours, CT.SourceVerified);
  // Ready True comes only from a reconcile that got to the end: with spec.verify it verified
  // exactly the revision in status.artifact (verification runs before the pull, by digest).
  const newest = status.artifact && ready?.status === 'True' && (!verify || sv?.status === 'True') ? status.artifact : undefined;
  let conds = current?.conditions ?? [];
  let artifact: Artifact | undefined;
  if (newest) {
    artifact = newest;
    conds = verify ? setCondition(conds, CT.SourceVerified, 'True', Reason.Succeeded, sv!.message, generation, now) : removeCondition(conds, CT.SourceVerified);
  } else if (verify) {
    // Keep the last verified artifact; one published before spec.verify was set is withdrawn.
    artifact = held?.verifiedMessage ? held.artifact : undefined;
    conds = held?.verifiedMessage ? setCondition(conds, CT.SourceVerified, 'True', Reason.Succeeded, held.verifiedMessage, generation, now) : removeCondition(conds, CT.SourceVerified);
  } else {
    // Without verification the last stored artifact is the last good one.
    artifact = status.artifact ?? held?.artifact;
    conds = removeCondition(conds, CT.SourceVerified);
  }
  if (artifact) artifact = { ...artifact, url: args.urlOf(artifact.path) };
  const upToDate = !!artifact && !!newest && artifact.path === newest.path && artifact.digest === newest.digest;
  if (upToDate) {
    conds = setCondition(conds, CT.Ready, 'True', Reason.Succeeded, `stored artifact for revision '${artifact!.revision}'`, generation, now);
  } else {
    const why = holdReason(status, verify);
    conds = setCondition(conds, CT.Ready, why.status, why.reason, why.message, generation, now);
  }
  return { ...(artifact ? { artifact: copyArtifact(artifact) } : {}), conditions: sortConditions(conds) };
}

/** Exactly the fields of Flux's Artifact (the CRD prunes anything else). */
function copyArtifact(a: Artifact): Artifact {
  return {
    digest: a.digest,
    lastUpdateTime: a.lastUpdateTime,
    path: a.path,
    revision: a.revision,
    ...(a.size !== undefined ? { size: a.size } : {}),
    url: a.url,
    ...(a.metadata && Object.keys(a.metadata).length ? { metadata: a.metadata } : {}),
  };
}

/** Merges a sync() result into the status the manager writes once. */
export function withPublication(status: OCIRepositoryStatus, r: SyncResult, generation: number | undefined, now: Date): OCIRepositoryStatus {
  const conds = status.conditions ?? [];
  if (!r.condition && !findCondition(conds, PublishedCondition)) return status;
  const next = r.condition ? setCondition(conds, PublishedCondition, r.condition.status, r.condition.reason, r.condition.message, generation, now) : removeCondition(conds, PublishedCondition);
  return { ...status, conditions: sortConditions(next) };
}

const plain = (v: unknown): unknown => JSON.parse(JSON.stringify(v ?? {}));

export class ExternalArtifactPublisher {
  readonly kube: Kube;
  readonly log: Logger;
  readonly opts: PublisherOptions;
  readonly hooks: PublisherHooks;
  readonly now: () => Date;
  #informer: Informer<ExternalArtifact> | undefined;
  #active = false;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #discovering: Promise<void> | undefined;
  /** Served but unusable (e.g. RBAC without externalartifacts): reported on every object. */
  #blocked: string | undefined;
  /** What our last writes set, per key: watch events showing it are ours, not drift. */
  #sent = new Map<string, unknown[]>();
  /** What each ExternalArtifact of ours holds, as we decided it. */
  #held = new Map<string, Held>();

  constructor(args: { kube: Kube; log: Logger; opts: PublisherOptions; hooks: PublisherHooks; now?: () => Date }) {
    this.kube = args.kube;
    this.log = args.log.child({ publisher: 'externalartifact' });
    this.opts = args.opts;
    this.hooks = args.hooks;
    this.now = args.now ?? (() => new Date());
  }

  /** True while the ExternalArtifact API is served, publishing is on and the cache is synced. */
  get active(): boolean {
    return this.#active;
  }

  #collection(namespace?: string): string {
    const ns = namespace ?? this.opts.watchNamespace;
    return ns ? `/apis/${Group}/${Version}/namespaces/${ns}/${Plural}` : `/apis/${Group}/${Version}/${Plural}`;
  }
  #path(namespace: string, name: string): string {
    return `${this.#collection(namespace)}/${name}`;
  }

  /** Discovery (via the API group document, readable by every authenticated user). */
  async #served(): Promise<boolean> {
    try {
      const doc = await this.kube.request<{ resources?: { name: string }[] }>('GET', `/apis/${Group}/${Version}`);
      return (doc.resources ?? []).some((r) => r.name === Plural);
    } catch (err) {
      if (isMissing(err)) return false;
      throw err;
    }
  }

  /** Called once the OCIRepository cache is synced and before the work queue starts. */
  async start(): Promise<void> {
    let served: boolean;
    try {
      served = await this.#served();
    } catch (err) {
      const next = this.opts.enabled ? 'retrying later' : 'ExternalArtifacts we published before are not removed';
      this.log.warn({ err: (err as Error).message }, `ExternalArtifact API discovery failed; ${next}`);
      served = false;
    }
    if (!this.opts.enabled) {
      if (served) await this.#removeAllOurs();
      return;
    }
    if (served) await this.#activate();
    else this.log.info({ api: ApiVersion }, 'ExternalArtifact API not served; OCIRepositories are not published to Flux until it appears');
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#discovering;
    await this.#informer?.stop();
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#discovering = this.#rediscover().finally(() => this.#schedule());
    }, this.opts.discoveryIntervalMs);
    this.#timer.unref?.();
  }

  async #rediscover(): Promise<void> {
    let served: boolean;
    try {
      served = await this.#served();
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'ExternalArtifact API discovery failed');
      return;
    }
    if (this.#stopped) return;
    const blockedBefore = this.#blocked;
    if (served && !this.#active) {
      await this.#activate();
      if (this.#active) this.log.info({ api: ApiVersion }, 'ExternalArtifact API available; publishing every OCIRepository');
      if (this.#active || this.#blocked !== blockedBefore) this.hooks.requeueAll();
    } else if (!served && (this.#active || blockedBefore)) {
      this.log.info({ api: ApiVersion }, 'ExternalArtifact API went away; publishing paused');
      this.#active = false;
      this.#blocked = undefined;
      this.#held.clear();
      await this.#informer?.stop();
      this.#informer = undefined;
      this.hooks.requeueAll();
    }
  }

  async #activate(): Promise<void> {
    // One list first: a cluster whose RBAC lacks our externalartifacts rules must not hang start-up.
    try {
      await this.kube.request('GET', `${this.#collection()}?limit=1`);
    } catch (err) {
      this.#blocked = `cannot list ExternalArtifacts (check the externalartifacts rules of config/rbac): ${(err as Error).message}`;
      this.log.warn({ err: (err as Error).message }, 'ExternalArtifact API is served but not usable; retrying at the next discovery');
      return;
    }
    this.#blocked = undefined;
    const informer = new Informer<ExternalArtifact>(this.kube, { path: this.#collection(), log: this.log }, {
      onAdd: (ea) => this.#observed(ea),
      onUpdate: (_prev, ea) => this.#observed(ea),
      onDelete: (ea) => {
        if (isOurs(ea) && this.hooks.knows(keyOf(ea))) this.hooks.requeue(keyOf(ea));
      },
    });
    this.#informer = informer;
    informer.start();
    await informer.synced();
    if (this.#stopped) return;
    for (const ea of [...informer.cache.values()]) {
      if (!isOurs(ea)) continue;
      if (this.hooks.knows(keyOf(ea))) await this.#recall(ea);
      // An OCIRepository deleted while we were away (or forced, on a cluster without a garbage
      // collector) leaves its ExternalArtifact behind: remove it.
      else if (!this.opts.sharded) await this.#delete(ea).catch((err) => this.log.warn({ externalartifact: keyOf(ea), err: (err as Error).message }, 'failed to remove orphaned ExternalArtifact'));
    }
    this.#active = true;
  }

  /**
   * After a restart our memory is empty: take what the ExternalArtifact holds, if it is a file of
   * that object in our storage with that digest (otherwise it is not ours to hand out).
   */
  async #recall(ea: ExternalArtifact): Promise<void> {
    const a = ea.status?.artifact;
    if (!a || !(await this.hooks.stored(ea.metadata.namespace, ea.metadata.name, a).catch(() => false))) return;
    const sv = findCondition(ea.status?.conditions, CT.SourceVerified);
    this.#held.set(keyOf(ea), { artifact: a, ...(sv?.status === 'True' ? { verifiedMessage: sv.message } : {}) });
  }

  /** Someone else changed one of ours: reconcile its OCIRepository so it is put right. */
  #observed(ea: ExternalArtifact): void {
    if (!this.#active || !isOurs(ea)) return;
    const key = keyOf(ea);
    // Compared by content, not resourceVersion: the event may arrive before our write returns.
    const seen = fingerprint(ea);
    if (this.#sent.get(key)?.some((f) => isDeepStrictEqual(f, seen))) return;
    if (this.hooks.knows(key)) this.hooks.requeue(key);
  }

  #sending(key: string, sourceRef: SourceReference | undefined, status: ExternalArtifactStatus | undefined): void {
    this.#sent.set(key, [...(this.#sent.get(key) ?? []), fingerprint({ spec: { sourceRef }, status })].slice(-4));
  }

  /** Keeps the cache current with our own writes, so the next step sees them. */
  #remember(ea: ExternalArtifact): ExternalArtifact {
    const key = keyOf(ea);
    const cache = this.#informer?.cache;
    const prev = cache?.get(key);
    if (cache && (!prev || Number(prev.metadata.resourceVersion) <= Number(ea.metadata.resourceVersion))) cache.set(key, stripManagedFields(ea));
    return ea;
  }

  /** Artifact paths of ns/name that storage GC must keep: the one our ExternalArtifact points at. */
  keep(namespace: string, name: string): string[] {
    const p = this.#active ? this.#held.get(`${namespace}/${name}`)?.artifact.path : undefined;
    return p ? [p] : [];
  }

  /**
   * Brings the ExternalArtifact of `obj` in line with `status`, the final status this reconcile
   * computed (before it is written). Never throws: failures come back as a condition + error.
   */
  async sync(obj: OCIRepository, status: OCIRepositoryStatus): Promise<SyncResult> {
    const key = keyOf(obj);
    const failed = (reason: string, message: string, error?: Error): SyncResult => ({ condition: { status: 'False', reason, message }, ...(error ? { error } : {}) });
    if (this.#blocked) return failed(PublishReason.WriteFailed, this.#blocked);
    if (!this.#active) return {};
    try {
      let ea = this.#informer?.cache.get(key);
      if (ea && !isOurs(ea)) return failed(PublishReason.Conflict, conflictMessage(ea));
      if (ea?.metadata.deletionTimestamp) return { condition: { status: 'Unknown', reason: Reason.Progressing, message: `ExternalArtifact ${key} is being deleted; it is created again once gone` } };
      ea = ea ? await this.#ensureMeta(obj, ea) : await this.#create(obj);
      if (!isOurs(ea)) return failed(PublishReason.Conflict, conflictMessage(ea));
      ea = await this.#writeStatus(obj, status, ea);
      if (!isOurs(ea)) return failed(PublishReason.Conflict, conflictMessage(ea));
      const a = ea.status?.artifact;
      const sv = findCondition(ea.status?.conditions, CT.SourceVerified);
      if (a) this.#held.set(key, { artifact: a, ...(sv?.status === 'True' ? { verifiedMessage: sv.message } : {}) });
      else this.#held.delete(key);
      const held = a ? `holds revision '${a.revision}'` : 'holds no artifact yet';
      return { condition: { status: 'True', reason: Reason.Succeeded, message: `ExternalArtifact ${key} ${held}` } };
    } catch (err) {
      const message = `failed to write ExternalArtifact ${key}: ${(err as Error).message}`;
      this.log.warn({ externalartifact: key, err: (err as Error).message }, 'ExternalArtifact write failed');
      return failed(PublishReason.WriteFailed, message, err as Error);
    }
  }

  /** Finalizer path: deletes our ExternalArtifact of `obj` (an unrelated one is left alone). */
  async remove(obj: OCIRepository): Promise<void> {
    if (!this.#active) return;
    const ea = this.#informer?.cache.get(keyOf(obj));
    if (ea && isOurs(ea)) await this.#delete(ea);
  }

  async #delete(ea: ExternalArtifact): Promise<void> {
    const key = keyOf(ea);
    try {
      await this.kube.request('DELETE', this.#path(ea.metadata.namespace, ea.metadata.name), { apiVersion: 'v1', kind: 'DeleteOptions', ...(ea.metadata.uid ? { preconditions: { uid: ea.metadata.uid } } : {}) });
      this.log.info({ externalartifact: key }, 'ExternalArtifact removed');
    } catch (err) {
      // Gone already, or replaced by a newer object (uid precondition): nothing of ours to delete.
      if (!isMissing(err) && !isConflict(err)) throw err;
    }
    this.#informer?.cache.delete(key);
    this.#sent.delete(key);
    this.#held.delete(key);
  }

  /** --publish-external-artifacts=false: removes every ExternalArtifact we maintain (in our shard). */
  async #removeAllOurs(): Promise<void> {
    let list: { items?: ExternalArtifact[] };
    try {
      list = await this.kube.request<{ items?: ExternalArtifact[] }>('GET', this.#collection());
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot list ExternalArtifacts to remove ours');
      return;
    }
    let removed = 0;
    for (const ea of list.items ?? []) {
      if (!isOurs(ea) || (this.opts.sharded && !this.hooks.knows(keyOf(ea)))) continue;
      try {
        await this.#delete(ea);
        removed++;
      } catch (err) {
        this.log.warn({ externalartifact: keyOf(ea), err: (err as Error).message }, 'failed to remove ExternalArtifact');
      }
    }
    this.log.info({ removed }, 'publishing to Flux is off (--publish-external-artifacts=false); our ExternalArtifacts were removed');
  }

  #desiredMeta(obj: OCIRepository, ea?: ExternalArtifact): { labels: Record<string, string>; ownerReferences: OwnerReference[]; sourceRef: SourceReference } {
    const others = (ea?.metadata.ownerReferences ?? []).filter((r) => !(groupOf(r.apiVersion) === OurGroup && r.kind === OurKind));
    const owner: OwnerReference[] = obj.metadata.uid ? [{ apiVersion: OurApiVersion, kind: OurKind, name: obj.metadata.name, uid: obj.metadata.uid, controller: true, blockOwnerDeletion: true }] : [];
    return {
      labels: { ...(ea?.metadata.labels ?? {}), ...ManagedBy },
      ownerReferences: [...others, ...owner],
      sourceRef: { apiVersion: OurApiVersion, kind: OurKind, name: obj.metadata.name },
    };
  }

  async #create(obj: OCIRepository): Promise<ExternalArtifact> {
    const m = this.#desiredMeta(obj);
    const body = { apiVersion: ApiVersion, kind: Kind, metadata: { name: obj.metadata.name, namespace: obj.metadata.namespace, labels: m.labels, ownerReferences: m.ownerReferences }, spec: { sourceRef: m.sourceRef } };
    this.#sending(`${obj.metadata.namespace}/${obj.metadata.name}`, m.sourceRef, undefined);
    try {
      const created = await this.kube.request<ExternalArtifact>('POST', this.#collection(obj.metadata.namespace), body);
      this.log.info({ externalartifact: keyOf(created) }, 'ExternalArtifact created');
      return this.#remember(created);
    } catch (err) {
      // Created meanwhile by someone (our cache had not seen it yet): decide on the real one.
      if (!isConflict(err)) throw err;
      const existing = await this.kube.request<ExternalArtifact>('GET', this.#path(obj.metadata.namespace, obj.metadata.name));
      return isOurs(existing) ? this.#ensureMeta(obj, existing) : existing;
    }
  }

  /** Our label, owner reference (the OCIRepository may have been re-created) and exact sourceRef. */
  async #ensureMeta(obj: OCIRepository, ea: ExternalArtifact): Promise<ExternalArtifact> {
    const m = this.#desiredMeta(obj, ea);
    const same = isDeepStrictEqual(plain(ea.metadata.labels), plain(m.labels)) && isDeepStrictEqual(plain(ea.metadata.ownerReferences ?? []), plain(m.ownerReferences)) && isDeepStrictEqual(plain(ea.spec?.sourceRef), plain(m.sourceRef));
    if (same) return ea;
    const patch = { metadata: { resourceVersion: ea.metadata.resourceVersion, labels: m.labels, ownerReferences: m.ownerReferences }, spec: { sourceRef: m.sourceRef } };
    this.#sending(keyOf(ea), m.sourceRef, ea.status);
    return this.#remember(await this.kube.request<ExternalArtifact>('PATCH', this.#path(ea.metadata.namespace, ea.metadata.name), patch, 'application/merge-patch+json'));
  }

  /** Status through the status subresource, only when it changed; re-read and redo on a conflict. */
  async #writeStatus(obj: OCIRepository, status: OCIRepositoryStatus, ea: ExternalArtifact): Promise<ExternalArtifact> {
    let current = ea;
    for (let attempt = 0; attempt < 5; attempt++) {
      const next = desiredStatus({ obj, status, held: this.#held.get(keyOf(obj)), current: current.status, generation: current.metadata.generation, now: this.now(), urlOf: this.hooks.urlOf });
      if (isDeepStrictEqual(plain(current.status), plain(next))) return current;
      this.#sending(keyOf(current), current.spec?.sourceRef, next);
      try {
        const updated = await this.kube.request<ExternalArtifact>('PUT', `${this.#path(current.metadata.namespace, current.metadata.name)}/status`, { ...current, status: next });
        if (updated.status?.artifact?.revision !== current.status?.artifact?.revision) {
          this.log.info({ externalartifact: keyOf(updated), revision: updated.status?.artifact?.revision ?? null }, 'ExternalArtifact artifact changed');
        }
        return this.#remember(updated);
      } catch (err) {
        if (!isConflict(err)) throw err;
        current = await this.kube.request<ExternalArtifact>('GET', this.#path(current.metadata.namespace, current.metadata.name));
        if (!isOurs(current)) return current;
      }
    }
    throw new Error(`status update of ExternalArtifact ${keyOf(ea)} kept conflicting`);
  }
}

/** The parts of an ExternalArtifact we write (sourceRef and status), as plain data. */
function fingerprint(ea: { spec?: { sourceRef?: SourceReference | undefined }; status?: ExternalArtifactStatus | undefined }): unknown {
  return plain({ sourceRef: ea.spec?.sourceRef ?? null, status: ea.status ?? {} });
}

function conflictMessage(ea: ExternalArtifact): string {
  return `ExternalArtifact ${keyOf(ea)} already exists with ${describeRef(ea.spec?.sourceRef)}; it is left alone and this OCIRepository is not published to Flux (rename one of them)`;
}
