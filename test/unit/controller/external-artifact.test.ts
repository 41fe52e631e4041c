// What an ExternalArtifact holds for each final OCIRepository status: only verified artifacts
// reach it under spec.verify, a failing newer revision keeps the last verified one with Ready
// False and the step's reason, and unchanged inputs give an identical status (no write).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { summarizeReady, setCondition, sortConditions } from '../../../src/api/conditions.ts';
import type { Artifact, Condition, OCIRepository, OCIRepositoryStatus } from '../../../src/api/schema.ts';
import { desiredStatus, isOurs, withPublication, PublishedCondition, type ExternalArtifact, type ExternalArtifactStatus, type Held } from '../../../src/controller/external-artifact.ts';

const now = new Date('2026-08-01T10:00:00Z');
const later = new Date('2026-08-01T11:00:00Z');
const urlOf = (p: string) => `http://osc.example.svc./${p}`;

function repo(verify: boolean): OCIRepository {
  return {
    apiVersion: 'source.ocisource.dev/v1',
    kind: 'OCIRepository',
    metadata: { name: 'app', namespace: 'default', generation: 2, uid: 'u1' },
    spec: { url: 'oci://r.test/app', interval: '5m', ...(verify ? { verify: { provider: 'cosign', secretRef: { name: 'keys' } } } : {}) },
  };
}

function artifact(n: number): Artifact {
  const hex = String(n).repeat(64);
  return { path: `ocirepository/default/app/sha256:${hex}.tar.gz`, url: `http://old-host/ocirepository/default/app/sha256:${hex}.tar.gz`, revision: `v${n}@sha256:${hex}`, digest: `sha256:${'f'.repeat(63)}${n}`, lastUpdateTime: '2026-08-01T09:00:00Z', size: 100 + n, metadata: { 'org.opencontainers.image.revision': `r${n}` } };
}

/** An OCIRepository status as the reconcile leaves it: conditions set, then Ready summarized. */
function status(a: Artifact | undefined, conds: [string, Condition['status'], string, string][]): OCIRepositoryStatus {
  let c: Condition[] = [];
  for (const [type, st, reason, message] of conds) c = setCondition(c, type, st, reason, message, 2, now);
  return { ...(a ? { artifact: a } : {}), conditions: sortConditions(summarizeReady(c, 2, now)) };
}

const cond = (s: ExternalArtifactStatus | undefined, type: string) => s?.conditions?.find((c) => c.type === type);
/** What the publisher remembers after writing `s`. */
const heldOf = (s: ExternalArtifactStatus): Held | undefined => (s.artifact ? { artifact: s.artifact, ...(cond(s, 'SourceVerified')?.status === 'True' ? { verifiedMessage: cond(s, 'SourceVerified')!.message } : {}) } : undefined);
const verified = (n: number) => status(artifact(n), [['ArtifactInStorage', 'True', 'Succeeded', `stored artifact for digest 'v${n}'`], ['SourceVerified', 'True', 'Succeeded', `verified signature of revision v${n}: cosign key signature`]]);

test('a verified artifact is published with Ready and SourceVerified True, URL as advertised now', () => {
  const s = desiredStatus({ obj: repo(true), status: verified(1), held: undefined, current: undefined, generation: 1, now, urlOf });
  assert.deepEqual(s.artifact, { ...artifact(1), url: urlOf(artifact(1).path) });
  assert.equal(cond(s, 'Ready')?.status, 'True');
  assert.equal(cond(s, 'Ready')?.message, `stored artifact for revision '${artifact(1).revision}'`);
  assert.equal(cond(s, 'SourceVerified')?.status, 'True');
  assert.match(cond(s, 'SourceVerified')!.message, /verified signature of revision v1: cosign key signature/);
  assert.equal(cond(s, 'Ready')?.observedGeneration, 1);
  // Nothing changed: an identical status, transition times kept (no API write).
  assert.deepEqual(desiredStatus({ obj: repo(true), status: verified(1), held: heldOf(s), current: s, generation: 1, now: later, urlOf }), s);
});

test('a newer revision that fails keeps the last verified artifact; Ready says which step and why', () => {
  const held = desiredStatus({ obj: repo(true), status: verified(1), held: undefined, current: undefined, generation: 1, now, urlOf });
  const cases: [string, OCIRepositoryStatus, string][] = [
    ['verification', status(artifact(1), [['ArtifactInStorage', 'True', 'Succeeded', 's'], ['SourceVerified', 'False', 'VerificationError', 'failed to verify the signature using provider \'cosign\': no signature']]), 'VerificationFailed'],
    ['fetch', status(artifact(1), [['ArtifactInStorage', 'True', 'Succeeded', 's'], ['SourceVerified', 'True', 'Succeeded', 'v1 ok'], ['FetchFailed', 'True', 'OCIArtifactPullFailed', 'tag v2 not found']]), 'FetchFailed'],
    ['storage', status(artifact(1), [['ArtifactInStorage', 'True', 'Succeeded', 's'], ['SourceVerified', 'True', 'Succeeded', 'v2 ok'], ['StorageOperationFailed', 'True', 'ArchiveOperationFailed', 'disk full']]), 'StorageOperationFailed'],
    // The artifact moved on under `audit`: stored by us, never published.
    ['audit', status(artifact(2), [['ArtifactInStorage', 'True', 'Succeeded', 's'], ['SourceVerified', 'Unknown', 'VerificationAudited', 'signature of revision v2 is not authenticated; stored because the trust policy only audits']]), 'VerificationFailed'],
  ];
  for (const [name, st, reason] of cases) {
    const s = desiredStatus({ obj: repo(true), status: st, held: heldOf(held), current: held, generation: 1, now: later, urlOf });
    assert.equal(s.artifact?.revision, artifact(1).revision, name);
    assert.equal(cond(s, 'Ready')?.status, 'False', name);
    assert.equal(cond(s, 'Ready')?.reason, reason, name);
    const ours = st.conditions!.find((c) => c.type === (name === 'audit' ? 'SourceVerified' : 'Ready'))!;
    assert.equal(cond(s, 'Ready')?.message, ours.message, name);
    // SourceVerified speaks about the artifact held, which did verify.
    assert.deepEqual(cond(s, 'SourceVerified'), cond(held, 'SourceVerified'), name);
  }
});

test('an unverified artifact never reaches Flux: audited first revision, and one published before spec.verify was set', () => {
  const audited = status(artifact(1), [['ArtifactInStorage', 'True', 'Succeeded', 's'], ['SourceVerified', 'Unknown', 'VerificationAudited', 'not authenticated']]);
  const s = desiredStatus({ obj: repo(true), status: audited, held: undefined, current: undefined, generation: 1, now, urlOf });
  assert.equal(s.artifact, undefined);
  assert.equal(cond(s, 'Ready')?.reason, 'VerificationFailed');
  const skipped = status(artifact(1), [['ArtifactInStorage', 'True', 'Succeeded', 's'], ['SourceVerified', 'Unknown', 'VerificationSkipped', 'skipped']]);
  assert.equal(desiredStatus({ obj: repo(true), status: skipped, held: undefined, current: undefined, generation: 1, now, urlOf }).artifact, undefined);
  // Published unsigned, then spec.verify added and the first verification fails: withdrawn.
  const unsigned = desiredStatus({ obj: repo(false), status: verified(1), held: undefined, current: undefined, generation: 1, now, urlOf });
  assert.equal(unsigned.artifact?.revision, artifact(1).revision);
  assert.equal(cond(unsigned, 'SourceVerified'), undefined);
  const failing = status(artifact(1), [['ArtifactInStorage', 'True', 'Succeeded', 's'], ['SourceVerified', 'False', 'VerificationError', 'no signature']]);
  const withdrawn = desiredStatus({ obj: repo(true), status: failing, held: heldOf(unsigned), current: unsigned, generation: 1, now, urlOf });
  assert.equal(withdrawn.artifact, undefined);
  assert.equal(cond(withdrawn, 'Ready')?.reason, 'VerificationFailed');
});

test('what we hold comes from our memory: an ExternalArtifact edited by someone else is put back', () => {
  const ours = desiredStatus({ obj: repo(true), status: verified(2), held: undefined, current: undefined, generation: 1, now, urlOf });
  // Someone points it at another file (say an audited one) and marks it verified.
  const forged: ExternalArtifactStatus = { ...ours, artifact: { ...artifact(3), url: 'http://evil/' } };
  const failing = status(artifact(3), [['ArtifactInStorage', 'True', 'Succeeded', 's'], ['SourceVerified', 'Unknown', 'VerificationAudited', 'not authenticated']]);
  const s = desiredStatus({ obj: repo(true), status: failing, held: heldOf(ours), current: forged, generation: 1, now: later, urlOf });
  assert.equal(s.artifact?.path, artifact(2).path);
  assert.equal(s.artifact?.url, urlOf(artifact(2).path));
  // Without memory (say after a restart that could not confirm the file), nothing is handed out.
  assert.equal(desiredStatus({ obj: repo(true), status: failing, held: undefined, current: forged, generation: 1, now: later, urlOf }).artifact, undefined);
});

test('without spec.verify the last stored artifact is published, and kept while a newer one fails', () => {
  const failing = status(artifact(1), [['ArtifactInStorage', 'True', 'Succeeded', 's'], ['FetchFailed', 'True', 'AuthenticationFailed', 'unauthorized']]);
  const s = desiredStatus({ obj: repo(false), status: failing, held: undefined, current: undefined, generation: 1, now, urlOf });
  assert.equal(s.artifact?.revision, artifact(1).revision);
  assert.equal(cond(s, 'Ready')?.status, 'False');
  assert.equal(cond(s, 'Ready')?.reason, 'FetchFailed');
  assert.equal(cond(s, 'Ready')?.message, 'unauthorized');
  const stalled = status(undefined, [['Stalled', 'True', 'URLInvalid', 'URL must not contain a tag']]);
  const st = desiredStatus({ obj: repo(false), status: stalled, held: undefined, current: undefined, generation: 1, now, urlOf });
  assert.equal(st.artifact, undefined);
  assert.equal(cond(st, 'Ready')?.reason, 'URLInvalid');
});

test('ownership is the exact sourceRef; the publication condition merges into the status', () => {
  const ea = (ref: Record<string, string>): ExternalArtifact => ({ apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'ExternalArtifact', metadata: { name: 'app', namespace: 'default' }, spec: { sourceRef: ref as never } });
  assert.equal(isOurs(ea({ apiVersion: 'source.ocisource.dev/v1', kind: 'OCIRepository', name: 'app' })), true);
  assert.equal(isOurs(ea({ apiVersion: 'source.ocisource.dev/v1', kind: 'OCIRepository', name: 'app', namespace: 'default' })), true);
  assert.equal(isOurs(ea({ apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'OCIRepository', name: 'app' })), false);
  assert.equal(isOurs(ea({ kind: 'OCIRepository', name: 'app' })), false);
  assert.equal(isOurs(ea({ apiVersion: 'source.ocisource.dev/v1', kind: 'OCIRepository', name: 'other' })), false);
  assert.equal(isOurs(ea({ apiVersion: 'source.ocisource.dev/v1', kind: 'OCIRepository', name: 'app', namespace: 'elsewhere' })), false);

  const base = verified(1);
  const set = withPublication(base, { condition: { status: 'False', reason: 'ExternalArtifactConflict', message: 'taken' } }, 2, now);
  assert.equal(set.conditions!.find((c) => c.type === PublishedCondition)?.reason, 'ExternalArtifactConflict');
  assert.equal(set.conditions![0]!.type, 'Ready');
  assert.deepEqual(withPublication(set, {}, 2, later), base);
});

test('discovery: no API means no publishing and no condition; an API we may not list is reported on every object', async () => {
  const { ExternalArtifactPublisher } = await import('../../../src/controller/external-artifact.ts');
  const { KubeError } = await import('../../../src/controller/kube.ts');
  const pino = (await import('pino')).default;
  const calls: string[] = [];
  let served = false;
  const kube = {
    request: async (method: string, p: string) => {
      calls.push(`${method} ${p}`);
      if (p === '/apis/source.toolkit.fluxcd.io/v1') {
        if (!served) throw new KubeError(404, 'not found');
        return { resources: [{ name: 'externalartifacts' }, { name: 'externalartifacts/status' }] };
      }
      if (method === 'GET' && p.startsWith('/apis/source.toolkit.fluxcd.io/v1/externalartifacts')) throw new KubeError(403, `${method} ${p}: 403 externalartifacts.source.toolkit.fluxcd.io is forbidden`);
      throw new Error(`unexpected ${method} ${p}`);
    },
  } as unknown as import('../../../src/controller/kube.ts').Kube;
  let requeued = 0;
  const hooks = { knows: () => true, requeue: () => undefined, requeueAll: () => void requeued++, urlOf, stored: async () => true };
  const publisher = new ExternalArtifactPublisher({ kube, log: pino({ level: 'silent' }), opts: { enabled: true, discoveryIntervalMs: 10, sharded: false }, hooks });
  await publisher.start();
  assert.equal(publisher.active, false);
  assert.deepEqual(await publisher.sync(repo(true), verified(1)), {});
  assert.deepEqual(publisher.keep('default', 'app'), []);
  served = true; // Flux installed, our RBAC not updated
  const deadline = Date.now() + 5000;
  let r = await publisher.sync(repo(true), verified(1));
  while (!r.condition && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 20));
    r = await publisher.sync(repo(true), verified(1));
  }
  await publisher.stop();
  assert.equal(publisher.active, false);
  assert.equal(r.condition?.status, 'False');
  assert.equal(r.condition?.reason, 'ExternalArtifactWriteFailed');
  assert.match(r.condition!.message, /cannot list ExternalArtifacts \(check the externalartifacts rules of config\/rbac\): .*forbidden/);
  assert.equal(r.error, undefined, 'retried at the next discovery, not by backoff');
  assert.ok(requeued >= 1, 'objects are reconciled again to show it');
  assert.ok(!calls.some((c) => !c.startsWith('GET ')), calls.join('\n'));
});
