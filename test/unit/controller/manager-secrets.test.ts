// Which Secret contents a reconcile sees. The Secret watch and the OCIRepository watch are separate
// streams, so a user who updates a Secret and then requests a reconcile can have the request
// reach the manager first: that reconcile must read the Secret from the apiserver, while an
// interval reconcile uses the watch-validated cache and reads nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { ApiVersion, Kind, ReconcileRequestAnnotation } from '../../../src/api/names.ts';
import type { OCIRepository } from '../../../src/api/schema.ts';
import type { Kube } from '../../../src/controller/kube.ts';
import { Manager } from '../../../src/controller/manager.ts';
import type { Secret, ServiceAccount } from '../../../src/controller/secrets.ts';
import { VerifyCache } from '../../../src/controller/verification.ts';
import { Storage } from '../../../src/storage/store.ts';
import type { Provider, ProviderName } from '../../../src/verify/types.ts';
import { makeTempDir } from '../../harness/proc.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const dockerConfig = (user: string) => ({ '.dockerconfigjson': b64(JSON.stringify({ auths: { '127.0.0.1:1': { auth: b64(`${user}:pw`) } } })) });

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** An apiserver holding one object and one Secret; counts Secret GETs, applies PATCHes. */
function fakeKube(obj: OCIRepository, secret: Secret, account?: ServiceAccount) {
  const state = { obj, secret, account, secretGets: 0, accountGets: 0 };
  const kube = {
    async request(method: string, path: string, body?: { metadata?: { finalizers?: string[] }; status?: OCIRepository['status'] }) {
      if (method === 'GET' && path === `/api/v1/namespaces/team/secrets/${secret.metadata.name}`) {
        state.secretGets++;
        return structuredClone(state.secret);
      }
      if (method === 'GET' && account && path === `/api/v1/namespaces/team/serviceaccounts/${account.metadata.name}`) {
        state.accountGets++;
        return structuredClone(state.account);
      }
      if (method === 'PATCH' && path.endsWith('/status')) {
        state.obj = { ...state.obj, status: mergePatch(state.obj.status ?? {}, body?.status ?? {}) as OCIRepository['status'], metadata: { ...state.obj.metadata, resourceVersion: String(Number(state.obj.metadata.resourceVersion) + 1) } };
        return structuredClone(state.obj);
      }
      if (method === 'PATCH') {
        state.obj = { ...state.obj, metadata: { ...state.obj.metadata, finalizers: body?.metadata?.finalizers ?? [], resourceVersion: String(Number(state.obj.metadata.resourceVersion) + 1) } };
        return structuredClone(state.obj);
      }
      if (method === 'POST' && path.endsWith('/events')) return {};
      throw new Error(`unexpected ${method} ${path}`);
    },
  } as unknown as Kube;
  return { kube, state };
}

function setup(viaAccount = false) {
  const obj = {
    apiVersion: ApiVersion,
    kind: Kind,
    metadata: { name: 'app', namespace: 'team', uid: 'u1', generation: 1, resourceVersion: '10' },
    // Nothing listens on port 1: every pass ends in a fetch failure after reading the Secret.
    spec: { url: 'oci://127.0.0.1:1/app', interval: '1m', timeout: '5s', insecure: true, ref: { tag: 'v1' }, ...(viaAccount ? { serviceAccountName: 'puller' } : { secretRef: { name: 'pull' } }) },
  } as OCIRepository;
  const secret: Secret = { metadata: { name: 'pull', namespace: 'team', resourceVersion: '5' }, data: dockerConfig('alice') };
  const account: ServiceAccount | undefined = viaAccount ? { metadata: { name: 'puller', namespace: 'team', resourceVersion: '3' }, imagePullSecrets: [{ name: 'pull' }] } : undefined;
  const { kube, state } = fakeKube(obj, secret, account);
  const storage = new Storage({ root: makeTempDir('mgr-secrets-'), retentionRecords: 2, retentionTTLms: 60_000, advertisedAddr: 'storage.test' });
  const manager = new Manager({
    kube,
    storage,
    log: pino({ level: 'silent' }),
    providers: {} as Record<ProviderName, Provider>,
    verifyCache: new VerifyCache(),
    opts: {
      concurrent: 1,
      minRetryMs: 10,
      maxRetryMs: 100,
      reconcile: { maxSignatures: 10, artifactMaxSize: 1 << 20, jitterPercent: 0, userAgent: 'test' },
      externalArtifacts: { enabled: false, discoveryIntervalMs: 60_000 },
    },
  });
  // What the informers would hold: the object, and the Secret's metadata at resourceVersion 5.
  manager.objects.cache.set('team/app', obj);
  manager.secrets.cache.set('team/pull', { metadata: { name: 'pull', namespace: 'team', resourceVersion: '5' } });
  manager.serviceAccounts.cache.set('team/puller', { metadata: { name: 'puller', namespace: 'team', resourceVersion: '3' } });
  return { manager, state };
}

test('a requested reconcile reads referenced Secrets from the apiserver even before their watch event; interval reconciles read nothing', async () => {
  const { manager, state } = setup();
  try {
    // First pass (new generation): reads the Secret once, though clientOptions may ask for it more than once.
    await manager.process('team/app');
    assert.equal(state.secretGets, 1);
    assert.match(JSON.stringify(state.obj.status?.conditions), /FetchFailed|AuthenticationFailed/);
    // A failed pass does not observe the generation (as in Flux), so its retry counts as asked too.
    await manager.process('team/app');
    assert.equal(state.secretGets, 2);
    // Interval passes of an observed generation: the watch still reports resourceVersion 5, the cache answers.
    const observed = manager.objects.cache.get('team/app')!;
    state.obj = { ...observed, status: { ...observed.status, observedGeneration: 1 } };
    manager.objects.cache.set('team/app', state.obj);
    await manager.process('team/app');
    await manager.process('team/app');
    assert.equal(state.secretGets, 2, 'steady state: no Secret reads');

    // The user replaces the Secret with one lacking the docker config, then requests a reconcile;
    // the request arrives before the Secret's watch event (the cache still says resourceVersion 5).
    state.secret = { metadata: { name: 'pull', namespace: 'team', resourceVersion: '6' }, data: { other: b64('x') } };
    const token = '2026-12-02T06:00:00Z';
    const current = manager.objects.cache.get('team/app')!;
    state.obj = { ...current, metadata: { ...current.metadata, annotations: { [ReconcileRequestAnnotation]: token } } };
    manager.objects.cache.set('team/app', state.obj);
    await manager.process('team/app');
    assert.equal(state.secretGets, 3);
    assert.equal(state.obj.status?.lastHandledReconcileAt, token);
    const ready = state.obj.status?.conditions?.find((c) => c.type === 'Ready');
    assert.match(ready?.message ?? '', /secret 'team\/pull' has no '\.dockerconfigjson' key/, 'the requested reconcile saw the updated Secret');
  } finally {
    await manager.transport.close();
  }
});

test('spec.serviceAccountName: the account is read once per change the watch reports, and afresh for a requested reconcile', async () => {
  const { manager, state } = setup(true);
  try {
    await manager.process('team/app');
    assert.equal(state.accountGets, 1);
    assert.match(JSON.stringify(state.obj.status?.conditions), /FetchFailed/);
    const observed = manager.objects.cache.get('team/app')!;
    state.obj = { ...observed, status: { ...observed.status, observedGeneration: 1 } };
    manager.objects.cache.set('team/app', state.obj);
    await manager.process('team/app');
    await manager.process('team/app');
    assert.equal(state.accountGets, 1, 'steady state: no ServiceAccount reads');
    // The account loses its imagePullSecrets; a reconcile is requested before the watch says so.
    state.account = { metadata: { name: 'puller', namespace: 'team', resourceVersion: '4' }, imagePullSecrets: [] };
    state.obj = { ...state.obj, metadata: { ...state.obj.metadata, annotations: { [ReconcileRequestAnnotation]: 'now' } } };
    manager.objects.cache.set('team/app', state.obj);
    await manager.process('team/app');
    assert.equal(state.accountGets, 2);
    assert.equal(state.obj.status?.lastHandledReconcileAt, 'now');
    // The watch reports the change: the next interval pass reads the account once more, then holds it.
    manager.serviceAccounts.cache.set('team/puller', { metadata: { name: 'puller', namespace: 'team', resourceVersion: '4' } });
    manager.serviceAccountCache.invalidate('team', 'puller');
    await manager.process('team/app');
    await manager.process('team/app');
    assert.equal(state.accountGets, 3);
  } finally {
    await manager.transport.close();
  }
});
