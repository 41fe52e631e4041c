// One reconcile of one OCIRepository: (object, world) → (status, outcome, events).
// Steps in order, each owning its condition: storage check → source (credentials, resolve) →
// verify (SourceVerified) → artifact (pull by digest, store) → Ready summary. The function never
// sleeps or retries; the queue applies interval, jitter and backoff to the outcome it returns.
import type { Logger } from 'pino';
import { ConditionType as CT, Reason, findCondition, removeCondition, rfc3339, setCondition, sortConditions, summarizeReady } from '../api/conditions.ts';
import { ReconcileRequestAnnotation, type Condition, type OCIRepository, type OCIRepositoryStatus } from '../api/schema.ts';
import { RegistryClient } from '../oci/client.ts';
import { RegistryError } from '../oci/errors.ts';
import { InvalidURLError, parseRepositoryURL } from '../oci/reference.ts';
import { ResolveError, resolveRef, type Resolved } from '../oci/resolve.ts';
import { BuildError, buildArtifact } from '../storage/build.ts';
import { StorageError, type Storage } from '../storage/store.ts';
import { VerifyConfigError, type Provider, type ProviderName } from '../verify/types.ts';
import { jitter, parseDuration, type Outcome } from './queue.ts';
import { AuthConfigError, clientOptions, type SecretGetter } from './secrets.ts';
import { providerLabel, runVerification, type VerifyCache } from './verification.ts';

export interface ReconcileOptions {
  maxSignatures: number;
  artifactMaxSize: number;
  jitterPercent: number;
  userAgent: string;
  /** Page size for tag listing (default 1000); small values exercise pagination in tests. */
  tagPageSize?: number;
}

export interface World extends SecretGetter {
  storage: Storage;
  providers: Record<ProviderName, Provider>;
  verifyCache: VerifyCache;
  options: ReconcileOptions;
  log: Logger;
  now(): Date;
}

export interface KubeEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  annotations?: Record<string, string>;
}

export interface ReconcileResult {
  status: OCIRepositoryStatus;
  outcome: Outcome;
  events: KubeEvent[];
}

/** A failure of one step: which condition it sets, with which reason. */
class StepFailure extends Error {
  readonly type: string;
  readonly reason: string;
  constructor(type: string, reason: string, message: string) {
    super(message);
    this.type = type;
    this.reason = reason;
  }
}

export async function reconcile(obj: OCIRepository, w: World): Promise<ReconcileResult> {
  const r = new Run(obj, w);
  return r.run();
}

class Run {
  readonly obj: OCIRepository;
  readonly w: World;
  readonly gen: number | undefined;
  status: OCIRepositoryStatus;
  conds: Condition[];
  events: KubeEvent[] = [];
  readonly prevConds: Condition[];

  constructor(obj: OCIRepository, w: World) {
    this.obj = obj;
    this.w = w;
    this.gen = obj.metadata.generation;
    this.status = structuredClone(obj.status ?? {});
    this.prevConds = this.status.conditions ?? [];
    this.conds = [...this.prevConds];
  }

  set(type: string, status: Condition['status'], reason: string, message: string): void {
    this.conds = setCondition(this.conds, type, status, reason, message, this.gen, this.w.now());
  }
  del(...types: string[]): void {
    for (const t of types) this.conds = removeCondition(this.conds, t);
  }

  finish(outcome: Outcome, observed: boolean): ReconcileResult {
    this.conds = summarizeReady(this.conds, this.gen, this.w.now());
    this.status.conditions = sortConditions(this.conds);
    if (observed && this.gen !== undefined) this.status.observedGeneration = this.gen;
    return { status: this.status, outcome, events: this.events };
  }

  /** Records a step failure; emits a Warning event only when the message is new. */
  fail(f: StepFailure): ReconcileResult {
    const prev = findCondition(this.prevConds, f.type);
    this.set(f.type, f.type === CT.SourceVerified ? 'False' : 'True', f.reason, f.message);
    this.set(CT.Reconciling, 'True', Reason.ProgressingWithRetry, this.progressMessage ?? 'reconciliation in progress');
    if (!prev || prev.message !== f.message || prev.reason !== f.reason) this.events.push({ type: 'Warning', reason: f.reason, message: f.message });
    this.w.log.info({ reason: f.reason, condition: f.type }, f.message);
    return this.finish({ error: f }, false);
  }

  progressMessage: string | undefined;
  client: RegistryClient | undefined;

  async run(): Promise<ReconcileResult> {
    const { obj, w } = this;
    const spec = obj.spec;
    const requested = obj.metadata.annotations?.[ReconcileRequestAnnotation];
    if (requested) this.status.lastHandledReconcileAt = requested;
    // A False SourceVerified is re-decided by this run; a True one stands until re-verified.
    if (!spec.verify || findCondition(this.conds, CT.SourceVerified)?.status === 'False') this.del(CT.SourceVerified);
    if (this.status.observedGeneration !== this.gen) this.progressMessage = `processing object: new generation ${this.status.observedGeneration ?? 0} -> ${this.gen}`;

    // Spec problems a retry cannot fix: Stalled, no requeue until the spec changes.
    let ref;
    let intervalMs: number;
    let timeoutMs: number;
    try {
      intervalMs = parseDuration(spec.interval);
      timeoutMs = parseDuration(spec.timeout ?? '60s');
    } catch (err) {
      return this.stall(Reason.InvalidSpec, (err as Error).message);
    }
    try {
      ref = parseRepositoryURL(spec.url);
    } catch (err) {
      if (err instanceof InvalidURLError) return this.stall(Reason.URLInvalid, err.message);
      throw err;
    }
    this.del(CT.Stalled);

    try {
      await this.checkStorage();
      const signal = AbortSignal.timeout(timeoutMs);
      let options;
      try {
        options = await clientOptions(obj, ref.registry, w);
      } catch (err) {
        if (err instanceof AuthConfigError) throw new StepFailure(CT.FetchFailed, Reason.AuthenticationFailed, err.message);
        throw err;
      }
      const client = new RegistryClient(ref, { ...options, signal, userAgent: w.options.userAgent, ...(w.options.tagPageSize ? { tagPageSize: w.options.tagPageSize } : {}) });
      this.client = client;
      const resolved = await this.resolve(client);
      if (spec.verify) await this.verify(client, resolved, signal);
      await this.storeArtifact(client, resolved);
    } catch (err) {
      if (err instanceof StepFailure) return this.fail(err);
      if (err instanceof StorageError) return this.fail(new StepFailure(CT.StorageOperationFailed, err.reason, err.message));
      throw err;
    }

    this.del(CT.FetchFailed, CT.StorageOperationFailed, CT.Reconciling, CT.ArtifactOutdated);
    const result = this.finish({ requeueAfterMs: jitter(intervalMs, w.options.jitterPercent) }, true);
    // The registry request count is how we check that an unchanged artifact costs one HEAD.
    w.log.info({ revision: this.status.artifact?.revision, registryRequests: this.client?.requests }, 'reconciled');
    const recovered = this.prevConds.some((c) => (c.type === CT.FetchFailed || c.type === CT.StorageOperationFailed) && c.status === 'True');
    if (recovered && this.status.artifact && !this.events.some((e) => e.reason === 'NewArtifact')) {
      this.events.push({ type: 'Normal', reason: Reason.Succeeded, message: `stored artifact with revision '${this.status.artifact.revision}' from '${spec.url}'` });
    }
    return result;
  }

  stall(reason: string, message: string): ReconcileResult {
    this.set(CT.Stalled, 'True', reason, message);
    this.del(CT.Reconciling);
    const prev = findCondition(this.prevConds, CT.Stalled);
    if (prev?.message !== message) this.events.push({ type: 'Warning', reason, message });
    return this.finish({}, true);
  }

  /** The recorded artifact must exist with its digest; otherwise forget it and rebuild. */
  async checkStorage(): Promise<void> {
    const { storage } = this.w;
    const a = this.status.artifact;
    const ns = this.obj.metadata.namespace;
    const name = this.obj.metadata.name;
    storage.objectDir(ns, name); // validates the names before any path is built from them
    if (a) {
      if (!(await storage.intact(a.path, a.digest))) {
        this.events.push({ type: 'Warning', reason: 'ArtifactVerificationFailed', message: `stored artifact ${a.path} is missing or does not match digest ${a.digest}; rebuilding` });
        delete this.status.artifact;
        delete this.status.url;
        this.del(CT.ArtifactInStorage);
        this.progressMessage = 'building artifact: disappeared from storage';
      } else {
        a.url = storage.url(a.path);
        this.status.url = storage.url(`${storage.objectDir(ns, name)}/latest.tar.gz`);
      }
    }
    await storage.garbageCollect(ns, name, this.status.artifact?.path).catch(() => []);
  }

  async resolve(client: RegistryClient): Promise<Resolved> {
    const spec = this.obj.spec;
    try {
      return await resolveRef(client, spec.ref, spec.layerSelector?.mediaType);
    } catch (err) {
      if (err instanceof ResolveError) {
        const reason = spec.ref?.semver && !spec.ref.digest ? Reason.ReadOperationFailed : Reason.OCIArtifactPullFailed;
        const prefix = reason === Reason.ReadOperationFailed ? 'failed to determine the artifact tag' : 'failed to determine artifact digest';
        throw new StepFailure(CT.FetchFailed, reason, `${prefix}: ${err.message}`);
      }
      if (err instanceof RegistryError) {
        const reason = err.isAuth ? Reason.AuthenticationFailed : Reason.OCIArtifactPullFailed;
        throw new StepFailure(CT.FetchFailed, reason, `failed to determine artifact digest for '${spec.url}': ${err.message}`);
      }
      throw err;
    }
  }

  async verify(client: RegistryClient, resolved: Resolved, signal: AbortSignal): Promise<void> {
    const { obj, w } = this;
    const label = providerLabel(obj);
    const failMsg = (m: string) => `failed to verify the signature using provider '${label}': ${m}`;
    let step;
    try {
      step = await runVerification({
        obj,
        getter: w,
        providers: w.providers,
        cache: w.verifyCache,
        client,
        descriptor: resolved.descriptor,
        ...(resolved.tag ? { tag: resolved.tag } : {}),
        maxSignatures: w.options.maxSignatures,
        signal,
        log: w.log,
      });
    } catch (err) {
      if (err instanceof VerifyConfigError) throw new StepFailure(CT.SourceVerified, Reason.VerificationError, failMsg(err.message));
      if (err instanceof RegistryError) {
        throw new StepFailure(CT.SourceVerified, Reason.VerificationError, failMsg(`cannot read signatures from ${client.registry}/${client.repository}: ${err.message}`));
      }
      throw err;
    }
    const { outcome, prepared } = step;
    if (prepared?.notes.length && !step.cached) w.log.info({ notes: prepared.notes }, 'verification configuration notes');
    const notes = prepared?.notes.length ? ` (${prepared.notes.join('; ')})` : '';
    const warnings = outcome.warnings.length ? `; warnings: ${outcome.warnings.join('; ')}` : '';
    if (outcome.status === 'failed') throw new StepFailure(CT.SourceVerified, Reason.VerificationError, failMsg(outcome.message));
    const prev = findCondition(this.prevConds, CT.SourceVerified);
    if (outcome.status === 'skipped') {
      this.set(CT.SourceVerified, 'Unknown', Reason.VerificationSkipped, `verification of revision ${resolved.revision} skipped: ${outcome.message}`);
      return;
    }
    if (outcome.details.authenticityEstablished === false) {
      const msg = `signature of revision ${resolved.revision} is not authenticated; stored because the trust policy only audits: ${outcome.message}${warnings}`;
      this.set(CT.SourceVerified, 'Unknown', Reason.VerificationAudited, msg);
      if (!step.cached && prev?.message !== msg) this.events.push({ type: 'Warning', reason: Reason.VerificationAudited, message: msg });
      return;
    }
    const message = `verified signature of revision ${resolved.revision}: ${outcome.message}${notes}${warnings}`;
    this.set(CT.SourceVerified, 'True', Reason.Succeeded, message);
    if (!step.cached && outcome.warnings.length && prev?.message !== message) {
      this.events.push({ type: 'Warning', reason: 'VerificationWarning', message: `signature of revision ${resolved.revision} passed with logged failures: ${outcome.warnings.join('; ')}` });
    }
  }

  async storeArtifact(client: RegistryClient, resolved: Resolved): Promise<void> {
    const { obj, w } = this;
    const spec = obj.spec;
    const ns = obj.metadata.namespace;
    const name = obj.metadata.name;
    const st = this.status;
    const sameSelector = JSON.stringify(st.observedLayerSelector ?? null) === JSON.stringify(spec.layerSelector ?? null);
    const contentChanged = (st.observedIgnore ?? undefined) !== (spec.ignore ?? undefined) || !sameSelector;
    if (st.artifact && st.artifact.revision === resolved.revision && !contentChanged) {
      this.set(CT.ArtifactInStorage, 'True', Reason.Succeeded, `stored artifact for digest '${resolved.revision}'`);
      return;
    }
    const msg = `new revision '${resolved.revision}' for '${spec.url}'`;
    if (st.artifact) this.set(CT.ArtifactOutdated, 'True', Reason.NewRevision, msg);
    this.progressMessage = `building artifact: ${msg}`;
    const target = w.storage.artifactPath(ns, name, resolved.descriptor.digest);
    let built;
    try {
      built = await buildArtifact({ client, manifestDigest: resolved.descriptor.digest, ...(spec.layerSelector ? { layerSelector: spec.layerSelector } : {}), ...(spec.ignore !== undefined ? { ignore: spec.ignore } : {}), storage: w.storage, target, maxBytes: w.options.artifactMaxSize });
    } catch (err) {
      if (err instanceof BuildError) {
        if (err.stage === 'pull') {
          const auth = err.cause instanceof RegistryError && err.cause.isAuth;
          throw new StepFailure(CT.FetchFailed, auth ? Reason.AuthenticationFailed : Reason.OCIArtifactPullFailed, err.message);
        }
        if (err.stage === 'layer') throw new StepFailure(CT.FetchFailed, Reason.OCIArtifactLayerOperationFailed, err.message);
        throw new StepFailure(CT.StorageOperationFailed, Reason.ArchiveOperationFailed, err.message);
      }
      throw err;
    }
    const latest = await w.storage.setLatest(target).catch(() => undefined);
    const prevDigest = st.artifact?.digest;
    st.artifact = {
      path: target,
      url: w.storage.url(target),
      revision: resolved.revision,
      digest: built.file.digest,
      lastUpdateTime: rfc3339(w.now()),
      size: built.file.size,
      ...(built.manifest.annotations && Object.keys(built.manifest.annotations).length ? { metadata: built.manifest.annotations } : {}),
    };
    if (latest) st.url = w.storage.url(latest);
    if (spec.ignore !== undefined) st.observedIgnore = spec.ignore;
    else delete st.observedIgnore;
    if (spec.layerSelector) st.observedLayerSelector = spec.layerSelector;
    else delete st.observedLayerSelector;
    this.del(CT.ArtifactOutdated);
    this.set(CT.ArtifactInStorage, 'True', Reason.Succeeded, `stored artifact for digest '${resolved.revision}'`);
    if (prevDigest !== built.file.digest) {
      const a = built.manifest.annotations ?? {};
      const origin = a['org.opencontainers.image.source'] && a['org.opencontainers.image.revision'] ? `, origin source '${a['org.opencontainers.image.source']}', origin revision '${a['org.opencontainers.image.revision']}'` : '';
      this.events.push({
        type: 'Normal',
        reason: 'NewArtifact',
        message: `stored artifact with revision '${resolved.revision}' from '${spec.url}'${origin}`,
        annotations: { 'source.ocisource.dev/revision': resolved.revision, 'source.ocisource.dev/digest': built.file.digest },
      });
    }
    if (built.droppedLinks?.length) w.log.info({ links: built.droppedLinks.slice(0, 20), count: built.droppedLinks.length }, 'symbolic and hard links inside the artifact were dropped; the stored archive holds regular files only');
    await w.storage.garbageCollect(ns, name, target).catch(() => []);
  }
}
