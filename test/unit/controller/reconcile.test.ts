// Table-driven tests of reconcile(): a fake dependency object (in-memory repository, Secrets,
// signature providers) with a real Storage in a temp dir and a fixed clock. Every step's
// failure is checked for the conditions it leaves, Ready, the outcome, and the events that
// notify() derives from the status difference — the way Flux's reconcileSource tests do it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import type { Condition, OCIRepository, OCIRepositoryStatus } from '../../../src/api/schema.ts';
import { notify } from '../../../src/controller/events.ts';
import { progressing } from '../../../src/controller/manager.ts';
import { reconcile, type ReconcileDeps } from '../../../src/controller/reconcile.ts';
import type { Secret } from '../../../src/controller/secrets.ts';
import { VerifyCache } from '../../../src/controller/verification.ts';
import { RegistryError } from '../../../src/oci/errors.ts';
import { Storage } from '../../../src/storage/store.ts';
import type { Provider, ProviderName, VerificationOutcome, VerifyOptions } from '../../../src/verify/types.ts';
import { makeTempDir } from '../../harness/proc.ts';
import { FakeRepository } from '../../helpers/fake-registry.ts';

const log = pino({ level: 'silent' });
const NOW = new Date('2026-06-01T12:00:00Z');

type Verdict = (opts: VerifyOptions) => Promise<VerificationOutcome>;

const verified: Verdict = async () => ({ status: 'verified', provider: 'cosign', authenticity: 'established', signature: 'sha256:sig', message: 'cosign signature by key cosign.pub', details: {}, warnings: [], attempts: [] });

function fakeProviders(verdict: () => Verdict): Record<ProviderName, Provider> {
  const make = (name: ProviderName): Provider => ({
    name,
    async prepare() {
      return { provider: name, fingerprint: `fp-${Math.random()}`, notes: [], verify: (_t, opts) => verdict()(opts) };
    },
  });
  return { cosign: make('cosign'), notation: make('notation') };
}

interface World {
  repo: FakeRepository;
  secrets: Map<string, Secret>;
  verdict: Verdict;
  storage: Storage;
  deps: ReconcileDeps;
  abort: AbortController;
}

function world(): World {
  const repo = new FakeRepository();
  const secrets = new Map<string, Secret>();
  secrets.set('default/cosign-keys', { metadata: { name: 'cosign-keys', resourceVersion: '1' }, data: { 'cosign.pub': Buffer.from('key').toString('base64') } });
  const root = makeTempDir('osc-reconcile-');
  const storage = new Storage({ root, retentionRecords: 2, retentionTTLms: 60_000, advertisedAddr: 'storage.test' });
  const abort = new AbortController();
  const w = { repo, secrets, verdict: verified, storage, abort } as World;
  w.deps = {
    storage,
    kube: {
      getSecret: async (ns, name) => secrets.get(`${ns}/${name}`) ?? null,
      getServiceAccount: async () => null,
    },
    connect: (_ref, options) => repo.session(options.signal),
    providers: fakeProviders(() => w.verdict),
    verifyCache: new VerifyCache(),
    options: { maxSignatures: 10, artifactMaxSize: 1 << 20, jitterPercent: 0, userAgent: 'test' },
    log,
    now: () => NOW,
    signal: abort.signal,
    keepArtifacts: () => [],
  };
  return w;
}

function object(spec: Partial<OCIRepository['spec']> = {}, status?: OCIRepositoryStatus): OCIRepository {
  return {
    apiVersion: 'source.ocisource.dev/v1',
    kind: 'OCIRepository',
    metadata: { name: 'app', namespace: 'default', generation: 1, uid: 'u1', resourceVersion: '1' },
    spec: { url: 'oci://registry.test/org/app', interval: '1m', ref: { tag: 'v1' }, ...spec },
    ...(status ? { status } : {}),
  } as OCIRepository;
}

const cond = (s: OCIRepositoryStatus, type: string): Condition | undefined => s.conditions?.find((c) => c.type === type);

/** Runs one reconcile as the manager does (progress write first on a new generation) and returns status, outcome and events. */
async function pass(w: World, obj: OCIRepository) {
  const before = obj.status;
  const start = obj.status?.observedGeneration !== obj.metadata.generation ? { ...obj, status: progressing(obj, NOW) } : obj;
  const r = await reconcile(start, w.deps);
  return { ...r, events: notify(obj, before, r.status, r.loggedFailures) };
}

/** An object that is Ready on tag v1 (verified when `verify`), as the starting point of a case. */
async function readyObject(w: World, verify: boolean): Promise<OCIRepository> {
  await w.repo.push('v1', { 'app.yaml': 'v: 1' });
  const obj = object(verify ? { verify: { provider: 'cosign', secretRef: { name: 'cosign-keys' } } } : {});
  const r = await pass(w, obj);
  assert.equal(cond(r.status, 'Ready')?.status, 'True', JSON.stringify(r.status.conditions));
  return { ...obj, status: r.status };
}

interface Case {
  name: string;
  /** Start from an object already Ready on v1 (then change the world) rather than from nothing. */
  fromReady?: boolean;
  verify?: boolean;
  spec?: Partial<OCIRepository['spec']>;
  arrange?(w: World): Promise<void> | void;
  want: {
    conditions: Record<string, [Condition['status'], string, RegExp?]>;
    absent?: string[];
    events: string[];
    outcome: 'requeue' | 'error' | 'none';
    /** The previous artifact (v1) is still the recorded one. */
    keepsArtifact?: boolean;
  };
}

const cases: Case[] = [
  {
    name: 'new object: resolved, verified, stored',
    verify: true,
    arrange: async (w) => void (await w.repo.push('v1', { 'a.yaml': 'x' }, { annotations: { 'org.opencontainers.image.source': 'https://git.test/app', 'org.opencontainers.image.revision': 'abc' } })),
    want: {
      conditions: { Ready: ['True', 'Succeeded', /stored artifact for digest 'v1@sha256:/], ArtifactInStorage: ['True', 'Succeeded'], SourceVerified: ['True', 'Succeeded', /verified signature of revision v1@sha256:.*cosign\.pub/] },
      absent: ['Reconciling', 'FetchFailed', 'Stalled', 'ArtifactOutdated'],
      events: ['NewArtifact'],
      outcome: 'requeue',
    },
  },
  {
    name: 'unchanged artifact: nothing new, no event',
    fromReady: true,
    verify: true,
    want: { conditions: { Ready: ['True', 'Succeeded'], SourceVerified: ['True', 'Succeeded'] }, absent: ['Reconciling'], events: [], outcome: 'requeue', keepsArtifact: true },
  },
  {
    name: 'invalid URL stalls without requeue',
    spec: { url: 'oci://' },
    want: { conditions: { Stalled: ['True', 'URLInvalid'], Ready: ['False', 'URLInvalid'] }, events: ['URLInvalid'], outcome: 'none' },
  },
  {
    name: 'invalid interval stalls',
    spec: { interval: 'soon' },
    want: { conditions: { Stalled: ['True', 'InvalidSpec', /invalid duration 'soon'/], Ready: ['False', 'InvalidSpec'] }, events: ['InvalidSpec'], outcome: 'none' },
  },
  {
    name: 'missing auth Secret: AuthenticationFailed naming the Secret',
    spec: { secretRef: { name: 'nope' } },
    want: { conditions: { FetchFailed: ['True', 'AuthenticationFailed', /auth secret 'default\/nope' not found/], Ready: ['False', 'AuthenticationFailed'], Reconciling: ['True', 'ProgressingWithRetry'] }, events: ['AuthenticationFailed'], outcome: 'error' },
  },
  {
    name: 'registry answers 401 on resolve: AuthenticationFailed',
    arrange: (w) => void (w.repo.fail.head = new RegistryError('HEAD manifest v1: 401 UNAUTHORIZED', 401, 'UNAUTHORIZED')),
    want: { conditions: { FetchFailed: ['True', 'AuthenticationFailed', /401/], Ready: ['False', 'AuthenticationFailed'] }, events: ['AuthenticationFailed'], outcome: 'error' },
  },
  {
    name: 'tag not found lists the tags there are',
    arrange: async (w) => void (await w.repo.push('v0', { a: 'b' })),
    want: { conditions: { FetchFailed: ['True', 'OCIArtifactPullFailed', /tag v1 not found .*tags: v0/], Ready: ['False', 'OCIArtifactPullFailed'] }, events: ['OCIArtifactPullFailed'], outcome: 'error' },
  },
  {
    name: 'semver without a match: ReadOperationFailed',
    spec: { ref: { semver: '>=2.0.0' } },
    arrange: async (w) => void (await w.repo.push('1.0.0', { a: 'b' })),
    want: { conditions: { FetchFailed: ['True', 'ReadOperationFailed', /no tag .* matches semver '>=2.0.0'/] }, events: ['ReadOperationFailed'], outcome: 'error' },
  },
  {
    name: 'malformed tag list is a typed read failure, not a crash',
    spec: { ref: { semver: '>=1.0.0' } },
    arrange: (w) => void (w.repo.fail.tags = new RegistryError('tag list is not valid JSON')),
    want: { conditions: { FetchFailed: ['True', 'ReadOperationFailed', /tag list is not valid JSON/] }, events: ['ReadOperationFailed'], outcome: 'error' },
  },
  {
    name: 'an error nobody anticipated in resolve still ends as a condition',
    arrange: (w) => void (w.repo.fail.head = new TypeError("Cannot read properties of undefined (reading 'digest')")),
    want: { conditions: { FetchFailed: ['True', 'OCIArtifactPullFailed', /Cannot read properties of undefined/], Ready: ['False', 'OCIArtifactPullFailed'] }, events: ['OCIArtifactPullFailed'], outcome: 'error' },
  },
  {
    name: 'resolve hangs past spec.timeout: says which step and the timeout',
    spec: { timeout: '150ms' },
    arrange: (w) => void (w.repo.fail.head = 'hang'),
    want: { conditions: { FetchFailed: ['True', 'OCIArtifactPullFailed', /resolving tag 'v1' in registry.test\/org\/app did not finish within spec.timeout 150ms/] }, events: ['OCIArtifactPullFailed'], outcome: 'error' },
  },
  {
    name: 'new revision fails verification: old artifact kept, Ready False with the reason',
    fromReady: true,
    verify: true,
    arrange: async (w) => {
      await w.repo.push('v1', { 'app.yaml': 'v: 2' });
      w.verdict = async () => ({ status: 'failed', provider: 'cosign', code: 'all-failed', message: 'no signature verified: signature 1: key mismatch', details: {}, warnings: [], attempts: [] });
    },
    want: {
      conditions: { SourceVerified: ['False', 'VerificationError', /failed to verify the signature using provider 'cosign': no signature verified/], Ready: ['False', 'VerificationError'], ArtifactOutdated: ['True', 'NewRevision'], ArtifactInStorage: ['True', 'Succeeded'], Reconciling: ['True', 'ProgressingWithRetry', /building artifact: new revision/] },
      events: ['VerificationError'],
      outcome: 'error',
      keepsArtifact: true,
    },
  },
  {
    name: 'verification throws an untyped error: SourceVerified False, not a crash',
    verify: true,
    arrange: async (w) => {
      await w.repo.push('v1', { a: 'b' });
      w.verdict = async () => {
        throw new Error('unsupported digest algorithm sha384');
      };
    },
    want: { conditions: { SourceVerified: ['False', 'VerificationError', /unsupported digest algorithm sha384/], Ready: ['False', 'VerificationError'] }, absent: ['ArtifactInStorage'], events: ['VerificationError'], outcome: 'error' },
  },
  {
    name: 'signature discovery hangs past spec.timeout: the message names it',
    fromReady: true,
    verify: true,
    spec: { timeout: '150ms' },
    arrange: async (w) => {
      await w.repo.push('v1', { 'app.yaml': 'v: 2' });
      w.verdict = (opts) => new Promise((_, reject) => opts.signal!.addEventListener('abort', () => reject(opts.signal!.reason), { once: true }));
    },
    want: {
      conditions: { SourceVerified: ['False', 'VerificationError', /signature discovery and verification for registry.test\/org\/app@sha256:[0-9a-f]{64} did not finish within spec.timeout 150ms/], Ready: ['False', 'VerificationError'] },
      events: ['VerificationError'],
      outcome: 'error',
      keepsArtifact: true,
    },
  },
  {
    name: 'trust policy skip: SourceVerified Unknown, stored, Ready',
    verify: true,
    arrange: async (w) => {
      await w.repo.push('v1', { a: 'b' });
      w.verdict = async () => ({ status: 'skipped', provider: 'notation', authenticity: 'skipped', message: "trust policy 'dev' skips verification", details: {}, warnings: [], attempts: [] });
    },
    want: { conditions: { SourceVerified: ['Unknown', 'VerificationSkipped'], Ready: ['True', 'Succeeded'] }, events: ['NewArtifact'], outcome: 'requeue' },
  },
  {
    name: 'audit level with failed authenticity: stored, SourceVerified Unknown, a Warning',
    verify: true,
    arrange: async (w) => {
      await w.repo.push('v1', { a: 'b' });
      w.verdict = async () => ({ status: 'verified', provider: 'notation', authenticity: 'audited', signature: 'sha256:sig', message: 'notation JWS signature by CN=x', details: {}, warnings: ['authenticity: not trusted'], attempts: [] });
    },
    want: { conditions: { SourceVerified: ['Unknown', 'VerificationAudited', /not authenticated/], Ready: ['True', 'Succeeded'] }, events: ['NewArtifact', 'VerificationAudited'], outcome: 'requeue' },
  },
  {
    name: 'permissive level with a logged expiry: verified, and a VerificationWarning event',
    verify: true,
    arrange: async (w) => {
      await w.repo.push('v1', { a: 'b' });
      w.verdict = async () => ({ status: 'verified', provider: 'notation', authenticity: 'established', signature: 'sha256:sig', message: 'notation JWS signature by CN=x', details: {}, warnings: ['expiry validation failed'], attempts: [] });
    },
    want: { conditions: { SourceVerified: ['True', 'Succeeded', /warnings: expiry validation failed/], Ready: ['True', 'Succeeded'] }, events: ['NewArtifact', 'VerificationWarning'], outcome: 'requeue' },
  },
  {
    name: 'a swapped layer fails its digest check: FetchFailed, old artifact kept',
    fromReady: true,
    arrange: async (w) => {
      const d = await w.repo.push('v1', { 'app.yaml': 'v: 2' });
      w.repo.blobs.set(w.repo.layerOf(d).digest, Buffer.from('not the layer'));
    },
    want: { conditions: { FetchFailed: ['True', 'OCIArtifactPullFailed'], Ready: ['False', 'OCIArtifactPullFailed'], ArtifactOutdated: ['True', 'NewRevision'] }, events: ['OCIArtifactPullFailed'], outcome: 'error', keepsArtifact: true },
  },
  {
    name: 'no layer of the selected media type: OCIArtifactLayerOperationFailed',
    spec: { layerSelector: { mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip' } },
    arrange: async (w) => void (await w.repo.push('v1', { a: 'b' })),
    want: { conditions: { FetchFailed: ['True', 'OCIArtifactLayerOperationFailed', /failed to find layer with media type/] }, events: ['OCIArtifactLayerOperationFailed'], outcome: 'error' },
  },
  {
    name: 'storage cannot be written: StorageOperationFailed',
    arrange: async (w) => {
      await w.repo.push('v1', { a: 'b' });
      rmSync(w.storage.root, { recursive: true, force: true });
      writeFileSync(w.storage.root, 'a file where the storage directory should be');
    },
    want: { conditions: { StorageOperationFailed: ['True', 'ArchiveOperationFailed', /failed to create a work directory/], Ready: ['False', 'ArchiveOperationFailed'] }, events: ['ArchiveOperationFailed'], outcome: 'error' },
  },
  {
    name: 'the stored file vanished: rebuilt from the registry',
    fromReady: true,
    arrange: (w) => rmSync(path.join(w.storage.root, 'ocirepository'), { recursive: true, force: true }),
    want: { conditions: { Ready: ['True', 'Succeeded'], ArtifactInStorage: ['True', 'Succeeded'] }, events: [], outcome: 'requeue' },
  },
];

for (const c of cases) {
  test(`reconcile: ${c.name}`, async () => {
    const w = world();
    let obj = c.fromReady ? await readyObject(w, !!c.verify) : object(c.verify ? { verify: { provider: 'cosign', secretRef: { name: 'cosign-keys' } } } : {});
    const before = obj.status?.artifact;
    if (c.spec) obj = { ...obj, spec: { ...obj.spec, ...c.spec } };
    await c.arrange?.(w);
    const r = await pass(w, obj);
    assert.equal(r.cancelled, false);
    for (const [type, [status, reason, message]] of Object.entries(c.want.conditions)) {
      const got = cond(r.status, type);
      assert.ok(got, `${type} missing: ${JSON.stringify(r.status.conditions)}`);
      assert.equal(got.status, status, `${type}: ${JSON.stringify(got)}`);
      if (reason) assert.equal(got.reason, reason, `${type}: ${JSON.stringify(got)}`);
      if (message) assert.match(got.message, message);
      assert.ok(got.message.length > 0, `${type} has a message a user can act on`);
    }
    for (const type of c.want.absent ?? []) assert.equal(cond(r.status, type), undefined, `${type} should be absent: ${JSON.stringify(cond(r.status, type))}`);
    const ready = cond(r.status, 'Ready')!;
    assert.notEqual(ready.message, 'reconciliation in progress', 'the in-progress mark is never the last word');
    assert.equal(r.status.conditions!.filter((x) => x.type === 'Ready').length, 1);
    const reasons = r.events.map((e) => e.reason);
    assert.deepEqual(reasons.sort(), [...c.want.events].sort());
    const kind = 'error' in r.outcome ? 'error' : r.outcome.requeueAfterMs !== undefined ? 'requeue' : 'none';
    assert.equal(kind, c.want.outcome);
    if (kind === 'requeue') assert.equal((r.outcome as { requeueAfterMs: number }).requeueAfterMs, 60_000);
    if (c.want.keepsArtifact) {
      assert.deepEqual(r.status.artifact, before, 'the last good artifact stays recorded');
      assert.ok(existsSync(path.join(w.storage.root, before!.path)), 'and stays on disk');
    }
    if (kind !== 'error' && kind !== 'none') assert.equal(r.status.observedGeneration, 1);
  });
}

test('reconcile: recovery after a failure clears it and announces Succeeded once', async () => {
  const w = world();
  const ready = await readyObject(w, false);
  w.repo.fail.head = new RegistryError('HEAD manifest v1: connection reset');
  const failed = await pass(w, ready);
  assert.equal(cond(failed.status, 'Ready')?.status, 'False');
  assert.deepEqual(failed.events.map((e) => e.reason), ['OCIArtifactPullFailed']);
  const again = await pass(w, { ...ready, status: failed.status });
  assert.deepEqual(again.events, [], 'the same failure again is not announced again');
  assert.deepEqual(again.status, failed.status, 'and the status is identical, so nothing is written');
  delete w.repo.fail.head;
  const recovered = await pass(w, { ...ready, status: failed.status });
  assert.equal(cond(recovered.status, 'Ready')?.status, 'True');
  assert.equal(cond(recovered.status, 'FetchFailed'), undefined);
  assert.equal(cond(recovered.status, 'Reconciling'), undefined);
  assert.deepEqual(recovered.events.map((e) => e.reason), ['Succeeded']);
  const failedAt = cond(failed.status, 'FetchFailed')!.lastTransitionTime;
  assert.equal(cond(again.status, 'FetchFailed')!.lastTransitionTime, failedAt, 'lastTransitionTime kept while the failure persists');
});

test('reconcile: cancelled (shutdown or lost leadership) writes nothing', async () => {
  const w = world();
  await w.repo.push('v1', { a: 'b' });
  w.repo.fail.head = 'hang';
  const running = reconcile(object(), w.deps);
  setTimeout(() => w.abort.abort(new Error('stopped leading')), 20);
  const r = await running;
  assert.equal(r.cancelled, true);
});
