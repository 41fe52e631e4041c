// One reconcile of one OCIRepository: (object, dependencies) → (status, outcome).
// Steps of one shape run in order, each owning its condition: storage (the recorded artifact is
// intact) → source (credentials, resolve the ref to a digest) → verify (SourceVerified) →
// artifact (pull by digest, store). Whatever a step throws — timeouts, aborts, budget hits,
// errors nobody anticipated — becomes that step's condition with a reason from our vocabulary.
// Ready is computed once, at the end. The function never throws, sleeps or retries: the manager
// writes the status once and the queue applies interval, jitter and backoff to the outcome.
import type { Logger } from 'pino';
import { ConditionType as CT, Reason, findCondition, rfc3339, setCondition, sortConditions, summarizeReady } from '../api/conditions.ts';
import { LimitError, type Limits } from '../api/limits.ts';
import { ReconcileRequestAnnotation } from '../api/names.ts';
import type { Condition, OCIRepository, OCIRepositoryStatus } from '../api/schema.ts';
import type { ClientOptions } from '../oci/client.ts';
import { RegistryError } from '../oci/errors.ts';
import type { RegistrySession } from '../oci/reader.ts';
import { InvalidURLError, parseRepositoryURL, type RepositoryRef } from '../oci/reference.ts';
import { ResolveError, resolveRef, type Resolved } from '../oci/resolve.ts';
import { BuildError, buildArtifact } from '../storage/build.ts';
import { StorageError, type Storage } from '../storage/store.ts';
import { VerifyConfigError, type Provider, type ProviderName } from '../verify/types.ts';
import { deadline } from '../util/deadline.ts';
import { cloneJSON } from '../util/json.ts';
import { formatDuration, jitter, parseDuration } from './queue.ts';
import { AuthConfigError, clientOptions, type KubeReader } from './secrets.ts';
import { providerLabel, runVerification, type VerifyCache } from './verification.ts';

export interface ReconcileOptions {
  maxSignatures: number;
  artifactMaxSize: number;
  /** The other budgets of src/api/limits.ts (registry answers, tarballs); defaults where unset. */
  limits?: Partial<Limits>;
  jitterPercent: number;
  userAgent: string;
  /** Page size for tag listing (default 1000); small values exercise pagination in tests. */
  tagPageSize?: number;
}

/** What a reconcile reads and writes besides the object itself. */
export interface ReconcileDeps {
  storage: Storage;
  kube: KubeReader;
  /** A registry session with the object's client options (the manager's transport backs it). */
  connect(ref: RepositoryRef, options: Omit<ClientOptions, 'transport'>): RegistrySession;
  providers: Record<ProviderName, Provider>;
  verifyCache: VerifyCache;
  options: ReconcileOptions;
  log: Logger;
  now(): Date;
  /** Cancels the reconcile (shutdown, leadership lost); a cancelled reconcile writes nothing. */
  signal?: AbortSignal;
  /**
   * Artifact paths of the object that storage GC must keep besides its current one, because they
   * are still handed out elsewhere (the published ExternalArtifact's, see external-artifact.ts).
   */
  keepArtifacts(namespace: string, name: string): readonly string[];
}

export type Outcome = { requeueAfterMs?: number } | { error: Error };

export interface ReconcileResult {
  status: OCIRepositoryStatus;
  outcome: Outcome;
  /** The reconcile was cancelled: its status must not be written. */
  cancelled: boolean;
  /** What the status does not carry but notify() needs: checks a permissive policy only logged. */
  loggedFailures?: LoggedFailures;
}

/** Checks that failed for a verified revision but that the trust policy only logs. */
export interface LoggedFailures {
  revision: string;
  failures: string[];
}

type FailureCondition = typeof CT.FetchFailed | typeof CT.StorageOperationFailed | typeof CT.SourceVerified;

/** How a step failed: the condition it sets, a reason from our vocabulary, a message for people. */
export class StepFailure extends Error {
  readonly condition: FailureCondition;
  readonly reason: string;
  constructor(condition: FailureCondition, reason: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StepFailure';
    this.condition = condition;
    this.reason = reason;
  }
}

type StepName = 'storage' | 'source' | 'verify' | 'artifact';

export async function reconcile(obj: OCIRepository, deps: ReconcileDeps): Promise<ReconcileResult> {
  return new Run(obj, deps).run();
}

class Run {
  readonly obj: OCIRepository;
  readonly deps: ReconcileDeps;
  readonly gen: number | undefined;
  readonly status: OCIRepositoryStatus;
  readonly prevConds: readonly Condition[];
  conds: Condition[];
  loggedFailures: LoggedFailures | undefined;
  step: StepName = 'storage';
  progress = 'reconciliation in progress';
  timeoutMs = 60_000;
  intervalMs = 0;
  deadline: AbortSignal | undefined;
  ref: RepositoryRef | undefined;
  session: RegistrySession | undefined;
  resolved: Resolved | undefined;

  constructor(obj: OCIRepository, deps: ReconcileDeps) {
    this.obj = obj;
    this.deps = deps;
    this.gen = obj.metadata.generation;
    this.status = cloneJSON(obj.status ?? {});
    this.prevConds = this.status.conditions ?? [];
    this.conds = [...this.prevConds];
  }

  get log(): Logger {
    return this.deps.log;
  }

  get limits(): Partial<Limits> {
    const o = this.deps.options;
    return { ...o.limits, artifactMaxSize: o.artifactMaxSize, maxSignatures: o.maxSignatures };
  }

  /** Sets a condition; lastTransitionTime is kept from the previous status when the status is unchanged. */
  set(type: string, status: Condition['status'], reason: string, message: string): void {
    const prev = findCondition(this.prevConds, type);
    const base = prev && !findCondition(this.conds, type) ? [...this.conds, prev] : this.conds;
    this.conds = setCondition(base, type, status, reason, message, this.gen, this.deps.now());
  }
  del(...types: string[]): void {
    this.conds = this.conds.filter((c) => !types.includes(c.type));
  }

  async run(): Promise<ReconcileResult> {
    const spec = this.obj.spec;
    const requested = this.obj.metadata.annotations?.[ReconcileRequestAnnotation];
    if (requested) this.status.lastHandledReconcileAt = requested;
    if (this.status.observedGeneration !== this.gen) this.progress = `processing object: new generation ${this.status.observedGeneration ?? 0} -> ${this.gen}`;
    // This run decides the failure conditions afresh; a False SourceVerified is re-decided too,
    // while a True one describes the stored artifact until a new revision is verified.
    this.del(CT.FetchFailed, CT.StorageOperationFailed);
    if (!spec.verify || findCondition(this.conds, CT.SourceVerified)?.status === 'False') this.del(CT.SourceVerified);

    // Spec problems a retry cannot fix: Stalled, no requeue until the spec changes.
    try {
      this.intervalMs = parseDuration(spec.interval);
      this.timeoutMs = parseDuration(spec.timeout ?? '60s');
    } catch (err) {
      return this.stalled(Reason.InvalidSpec, (err as Error).message);
    }
    try {
      this.ref = parseRepositoryURL(spec.url);
    } catch (err) {
      if (err instanceof InvalidURLError) return this.stalled(Reason.URLInvalid, err.message);
      return this.failed(this.classify(err));
    }
    this.del(CT.Stalled);

    const limit = deadline(this.timeoutMs, this.deps.signal);
    this.deadline = limit.signal;
    const steps: [StepName, () => Promise<void>][] = [
      ['storage', () => this.reconcileStorage()],
      ['source', () => this.reconcileSource()],
      ['verify', () => this.reconcileVerification()],
      ['artifact', () => this.reconcileArtifact()],
    ];
    try {
      for (const [name, fn] of steps) {
        this.step = name;
        await fn();
      }
    } catch (err) {
      if (this.deps.signal?.aborted) return { status: this.status, outcome: {}, cancelled: true };
      return this.failed(this.classify(err));
    } finally {
      limit.dispose();
    }
    return this.succeeded();
  }

  /** Ready is computed here, from the other conditions, and nowhere else. */
  summarize(outcome: Outcome, observed: boolean): ReconcileResult {
    this.conds = summarizeReady(this.conds, this.gen, this.deps.now());
    this.status.conditions = sortConditions(this.conds);
    if (observed && this.gen !== undefined) this.status.observedGeneration = this.gen;
    return { status: this.status, outcome, cancelled: false, ...(this.loggedFailures ? { loggedFailures: this.loggedFailures } : {}) };
  }

  succeeded(): ReconcileResult {
    this.del(CT.Reconciling, CT.ArtifactOutdated);
    // An interval pass that found nothing new logs at debug: at a thousand objects an info line
    // per pass is a thousand lines a minute of noise and a tenth of the steady-state CPU.
    // The registry request count is how tests check that an unchanged artifact costs one HEAD.
    const unchanged = this.obj.status?.artifact?.revision === this.status.artifact?.revision && findCondition(this.prevConds, CT.Ready)?.status === 'True';
    this.log[unchanged ? 'debug' : 'info']({ revision: this.status.artifact?.revision, registryRequests: this.session?.requests }, 'reconciled');
    return this.summarize({ requeueAfterMs: jitter(this.intervalMs, this.deps.options.jitterPercent) }, true);
  }

  failed(f: StepFailure): ReconcileResult {
    this.set(f.condition, f.condition === CT.SourceVerified ? 'False' : 'True', f.reason, f.message);
    this.set(CT.Reconciling, 'True', Reason.ProgressingWithRetry, this.progress);
    this.log.info({ step: this.step, reason: f.reason, condition: f.condition }, f.message);
    return this.summarize({ error: f }, false);
  }

  stalled(reason: string, message: string): ReconcileResult {
    this.set(CT.Stalled, 'True', reason, message);
    this.del(CT.Reconciling);
    return this.summarize({}, true);
  }

  /** Maps anything a step threw to that step's condition; unanticipated errors are logged as bugs. */
  classify(err: unknown): StepFailure {
    if (err instanceof StepFailure) return err;
    const e = err instanceof Error ? err : new Error(String(err));
    const spec = this.obj.spec;
    const where = this.ref ? `${this.ref.registry}/${this.ref.repository}` : spec.url;
    const digest = this.resolved?.descriptor.digest;
    const semver = !!spec.ref?.semver && !spec.ref.digest;
    const timedOut = !!this.deadline?.aborted && !this.deps.signal?.aborted;
    const within = `did not finish within spec.timeout ${formatDuration(this.timeoutMs)}`;
    const anticipated = e instanceof RegistryError || e instanceof LimitError || e instanceof StorageError || e instanceof BuildError || e instanceof ResolveError || e instanceof AuthConfigError || e instanceof VerifyConfigError;
    if (!timedOut && !anticipated) this.log.error({ step: this.step, err: e.stack ?? e.message }, 'unexpected error in reconcile step');
    switch (this.step) {
      case 'storage':
        return new StepFailure(CT.StorageOperationFailed, e instanceof StorageError ? e.reason : Reason.StatOperationFailed, `failed to check the stored artifact: ${e.message}`, { cause: e });
      case 'source': {
        const reason = e instanceof AuthConfigError || (e instanceof RegistryError && e.isAuth) ? Reason.AuthenticationFailed : semver ? Reason.ReadOperationFailed : Reason.OCIArtifactPullFailed;
        if (timedOut) return new StepFailure(CT.FetchFailed, reason, `resolving ${describeRef(spec.ref)} in ${where} ${within}`, { cause: e });
        if (e instanceof AuthConfigError) return new StepFailure(CT.FetchFailed, reason, e.message, { cause: e });
        const prefix = semver ? 'failed to determine the artifact tag' : 'failed to determine artifact digest';
        return new StepFailure(CT.FetchFailed, reason, `${prefix} for '${spec.url}': ${e.message}`, { cause: e });
      }
      case 'verify': {
        const msg = timedOut ? `signature discovery and verification for ${where}@${digest} ${within}` : e instanceof RegistryError ? `cannot read signatures from ${where}: ${e.message}` : e.message;
        return new StepFailure(CT.SourceVerified, Reason.VerificationError, `failed to verify the signature using provider '${providerLabel(this.obj)}': ${msg}`, { cause: e });
      }
      case 'artifact': {
        if (timedOut) return new StepFailure(CT.FetchFailed, Reason.OCIArtifactPullFailed, `pulling ${where}@${digest} ${within}`, { cause: e });
        if (e instanceof StorageError) return new StepFailure(CT.StorageOperationFailed, e.reason, e.message, { cause: e });
        if (e instanceof BuildError) {
          if (e.stage === 'pull') return new StepFailure(CT.FetchFailed, e.cause instanceof RegistryError && e.cause.isAuth ? Reason.AuthenticationFailed : Reason.OCIArtifactPullFailed, e.message, { cause: e });
          if (e.stage === 'layer') return new StepFailure(CT.FetchFailed, Reason.OCIArtifactLayerOperationFailed, e.message, { cause: e });
          return new StepFailure(CT.StorageOperationFailed, Reason.ArchiveOperationFailed, e.message, { cause: e });
        }
        if (e instanceof LimitError) return new StepFailure(CT.FetchFailed, Reason.OCIArtifactLayerOperationFailed, e.message, { cause: e });
        return new StepFailure(CT.FetchFailed, Reason.OCIArtifactPullFailed, `failed to pull ${where}@${digest}: ${e.message}`, { cause: e });
      }
    }
  }

  /** What storage GC keeps: the current artifact and whatever is still handed out elsewhere. */
  keep(current: string | undefined): string[] {
    return keptArtifacts(this.deps, this.obj, current);
  }

  /** The recorded artifact must exist with its digest; otherwise forget it and rebuild. */
  async reconcileStorage(): Promise<void> {
    const { storage } = this.deps;
    const a = this.status.artifact;
    const ns = this.obj.metadata.namespace;
    const name = this.obj.metadata.name;
    const dir = storage.objectDir(ns, name); // validates the names before any path is built from them
    if (a) {
      if (!(await storage.intact(a.path, a.digest))) {
        this.log.warn({ path: a.path, digest: a.digest }, 'stored artifact is missing or does not match its digest; rebuilding');
        delete this.status.artifact;
        delete this.status.url;
        this.del(CT.ArtifactInStorage);
        this.progress = 'building artifact: disappeared from storage';
      } else {
        a.url = storage.url(a.path);
        this.status.url = storage.url(`${dir}/latest.tar.gz`);
      }
    }
    await storage.garbageCollect(ns, name, this.keep(this.status.artifact?.path)).catch(() => []);
  }

  async reconcileSource(): Promise<void> {
    const { obj, deps } = this;
    const spec = obj.spec;
    const ref = this.ref!;
    const options = await clientOptions(obj, ref.registry, deps.kube);
    this.session = deps.connect(ref, {
      ...options,
      // The object holds one connection pool: a rotated TLS or proxy Secret replaces it.
      poolOwner: `${obj.metadata.namespace}/${obj.metadata.name}`,
      limits: this.limits,
      signal: this.deadline!,
      userAgent: deps.options.userAgent,
      ...(deps.options.tagPageSize ? { tagPageSize: deps.options.tagPageSize } : {}),
    });
    this.resolved = await resolveRef(this.session, spec.ref, spec.layerSelector?.mediaType);
    const st = this.status;
    if (st.artifact && st.artifact.revision !== this.resolved.revision) {
      const msg = `new revision '${this.resolved.revision}' for '${spec.url}'`;
      this.set(CT.ArtifactOutdated, 'True', Reason.NewRevision, msg);
      this.progress = `building artifact: ${msg}`;
    }
  }

  async reconcileVerification(): Promise<void> {
    const { obj, deps } = this;
    if (!obj.spec.verify) return;
    const resolved = this.resolved!;
    const step = await runVerification({
      obj,
      getter: deps.kube,
      providers: deps.providers,
      cache: deps.verifyCache,
      client: this.session!,
      descriptor: resolved.descriptor,
      ...(resolved.tag ? { tag: resolved.tag } : {}),
      limits: this.limits,
      signal: this.deadline!,
      deadline: `spec.timeout ${formatDuration(this.timeoutMs)}`,
      log: this.log,
    });
    const { outcome, prepared } = step;
    if (prepared?.notes.length && !step.cached) this.log.info({ notes: prepared.notes }, 'verification configuration notes');
    const notes = prepared?.notes.length ? ` (${prepared.notes.join('; ')})` : '';
    const warnings = outcome.warnings.length ? `; warnings: ${outcome.warnings.join('; ')}` : '';
    if (outcome.status === 'failed') throw new StepFailure(CT.SourceVerified, Reason.VerificationError, `failed to verify the signature using provider '${providerLabel(obj)}': ${outcome.message}`);
    if (outcome.status === 'skipped') {
      this.set(CT.SourceVerified, 'Unknown', Reason.VerificationSkipped, `verification of revision ${resolved.revision} skipped: ${outcome.message}`);
    } else if (outcome.authenticity === 'audited') {
      this.set(CT.SourceVerified, 'Unknown', Reason.VerificationAudited, `signature of revision ${resolved.revision} is not authenticated; stored because the trust policy only audits: ${outcome.message}${warnings}`);
    } else {
      this.set(CT.SourceVerified, 'True', Reason.Succeeded, `verified signature of revision ${resolved.revision}: ${outcome.message}${notes}${warnings}`);
      if (outcome.warnings.length) this.loggedFailures = { revision: resolved.revision, failures: outcome.warnings };
    }
  }

  async reconcileArtifact(): Promise<void> {
    const { obj, deps } = this;
    const spec = obj.spec;
    const resolved = this.resolved!;
    const ns = obj.metadata.namespace;
    const name = obj.metadata.name;
    const st = this.status;
    const sameSelector = JSON.stringify(st.observedLayerSelector ?? null) === JSON.stringify(spec.layerSelector ?? null);
    const contentChanged = (st.observedIgnore ?? undefined) !== (spec.ignore ?? undefined) || !sameSelector;
    if (st.artifact && st.artifact.revision === resolved.revision && !contentChanged) {
      this.set(CT.ArtifactInStorage, 'True', Reason.Succeeded, `stored artifact for digest '${resolved.revision}'`);
      return;
    }
    if (!findCondition(this.conds, CT.ArtifactOutdated)) this.progress = `building artifact: new revision '${resolved.revision}' for '${spec.url}'`;
    const target = deps.storage.artifactPath(ns, name, resolved.descriptor.digest);
    const built = await buildArtifact({
      client: this.session!,
      manifestDigest: resolved.descriptor.digest,
      ...(spec.layerSelector ? { layerSelector: spec.layerSelector } : {}),
      ...(spec.ignore !== undefined ? { ignore: spec.ignore } : {}),
      storage: deps.storage,
      target,
      limits: this.limits,
    });
    const latest = await deps.storage.setLatest(target).catch(() => undefined);
    st.artifact = {
      path: target,
      url: deps.storage.url(target),
      revision: resolved.revision,
      digest: built.file.digest,
      lastUpdateTime: rfc3339(deps.now()),
      size: built.file.size,
      ...(built.manifest.annotations && Object.keys(built.manifest.annotations).length ? { metadata: built.manifest.annotations } : {}),
    };
    if (latest) st.url = deps.storage.url(latest);
    if (spec.ignore !== undefined) st.observedIgnore = spec.ignore;
    else delete st.observedIgnore;
    if (spec.layerSelector) st.observedLayerSelector = spec.layerSelector;
    else delete st.observedLayerSelector;
    this.del(CT.ArtifactOutdated);
    this.set(CT.ArtifactInStorage, 'True', Reason.Succeeded, `stored artifact for digest '${resolved.revision}'`);
    if (built.droppedLinks?.length) this.log.info({ links: built.droppedLinks.slice(0, 20), count: built.droppedLinks.length }, 'symbolic and hard links inside the artifact were dropped; the stored archive holds regular files only');
    // The recorded artifact stays until a status naming the new one is written (the next pass
    // collects it): if that write fails, the recorded one is still what consumers fetch.
    const recorded = obj.status?.artifact?.path;
    await deps.storage.garbageCollect(ns, name, [...this.keep(target), ...(recorded ? [recorded] : [])]).catch(() => []);
  }
}

/** What storage GC keeps for an object: `current` and whatever is still handed out elsewhere. */
export function keptArtifacts(deps: Pick<ReconcileDeps, 'keepArtifacts'>, obj: OCIRepository, current: string | undefined): string[] {
  const others = deps.keepArtifacts(obj.metadata.namespace, obj.metadata.name);
  return current ? [current, ...others] : [...others];
}

function describeRef(ref: OCIRepository['spec']['ref']): string {
  if (ref?.digest) return `digest '${ref.digest}'`;
  if (ref?.semver) return `semver '${ref.semver}'`;
  return `tag '${ref?.tag ?? 'latest'}'`;
}
