// A Manager wired to an apiserver stand-in that holds one OCIRepository, one Secret and maybe
// one ServiceAccount: it applies PATCHes as merge patches, counts reads and keeps every status
// patch, for unit tests of what the manager reads and writes per pass.
import pino from 'pino';
import { ApiVersion, Kind, ReconcileRequestAnnotation } from '../../src/api/names.ts';
import type { OCIRepository } from '../../src/api/schema.ts';
import type { Kube } from '../../src/controller/kube.ts';
import { Manager } from '../../src/controller/manager.ts';
import type { Secret, ServiceAccount } from '../../src/controller/secrets.ts';
import { VerifyCache } from '../../src/controller/verification.ts';
import { Storage } from '../../src/storage/store.ts';
import type { Provider, ProviderName } from '../../src/verify/types.ts';
import { makeTempDir } from '../harness/proc.ts';

export const b64 = (s: string) => Buffer.from(s).toString('base64');
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
  const state = { obj, secret, account, secretGets: 0, accountGets: 0, statusPatches: [] as NonNullable<OCIRepository['status']>[] };
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
        state.statusPatches.push(structuredClone(body?.status ?? {}));
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

/**
 * The manager and the stand-in's state. By default the object's registry is 127.0.0.1:1, where
 * nothing listens: every pass ends at once in a fetch failure after reading the Secret.
 */
export function setupManager(opts: { viaAccount?: boolean; url?: string; timeout?: string } = {}) {
  const viaAccount = !!opts.viaAccount;
  const obj = {
    apiVersion: ApiVersion,
    kind: Kind,
    metadata: { name: 'app', namespace: 'team', uid: 'u1', generation: 1, resourceVersion: '10' },
    spec: { url: opts.url ?? 'oci://127.0.0.1:1/app', interval: '1m', timeout: opts.timeout ?? '5s', insecure: true, ref: { tag: 'v1' }, ...(viaAccount ? { serviceAccountName: 'puller' } : { secretRef: { name: 'pull' } }) },
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

type Bed = ReturnType<typeof setupManager>;

/**
 * The object's generation as observed (as after a successful pass), then two interval passes:
 * the steady state, in which nothing should be read.
 */
export async function steadyPasses({ manager, state }: Bed): Promise<void> {
  const observed = manager.objects.cache.get('team/app')!;
  state.obj = { ...observed, status: { ...observed.status, observedGeneration: 1 } };
  manager.objects.cache.set('team/app', state.obj);
  await manager.process('team/app');
  await manager.process('team/app');
}

/** A user's reconcile request (`token` in the annotation) as the watch shows it, and the pass it asks for. */
export async function requestReconcile({ manager, state }: Bed, token: string): Promise<void> {
  const current = manager.objects.cache.get('team/app')!;
  state.obj = { ...current, metadata: { ...current.metadata, annotations: { [ReconcileRequestAnnotation]: token } } };
  manager.objects.cache.set('team/app', state.obj);
  await manager.process('team/app');
}
