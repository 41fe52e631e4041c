// Which Secret contents a reconcile sees. The Secret watch and the OCIRepository watch are separate
// streams, so a user who updates a Secret and then requests a reconcile can have the request
// reach the manager first: that reconcile must read the Secret from the apiserver, while an
// interval reconcile uses the watch-validated cache and reads nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { b64, requestReconcile, setupManager, steadyPasses } from '../../helpers/manager-bed.ts';

test('a requested reconcile reads referenced Secrets from the apiserver even before their watch event; interval reconciles read nothing', async () => {
  const bed = setupManager();
  const { manager, state } = bed;
  try {
    // First pass (new generation): reads the Secret once, though clientOptions may ask for it more than once.
    await manager.process('team/app');
    assert.equal(state.secretGets, 1);
    assert.match(JSON.stringify(state.obj.status?.conditions), /FetchFailed|AuthenticationFailed/);
    // A failed pass does not observe the generation (as in Flux), so its retry counts as asked too.
    await manager.process('team/app');
    assert.equal(state.secretGets, 2);
    // Interval passes of an observed generation: the watch still reports resourceVersion 5, the cache answers.
    await steadyPasses(bed);
    assert.equal(state.secretGets, 2, 'steady state: no Secret reads');

    // The user replaces the Secret with one lacking the docker config, then requests a reconcile;
    // the request arrives before the Secret's watch event (the cache still says resourceVersion 5).
    state.secret = { metadata: { name: 'pull', namespace: 'team', resourceVersion: '6' }, data: { other: b64('x') } };
    const token = '2026-12-02T06:00:00Z';
    await requestReconcile(bed, token);
    assert.equal(state.secretGets, 3);
    assert.equal(state.obj.status?.lastHandledReconcileAt, token);
    const ready = state.obj.status?.conditions?.find((c) => c.type === 'Ready');
    assert.match(ready?.message ?? '', /secret 'team\/pull' has no '\.dockerconfigjson' key/, 'the requested reconcile saw the updated Secret');
  } finally {
    await manager.transport.close();
  }
});

test('spec.serviceAccountName: the account is read once per change the watch reports, and afresh for a requested reconcile', async () => {
  const bed = setupManager({ viaAccount: true });
  const { manager, state } = bed;
  try {
    await manager.process('team/app');
    assert.equal(state.accountGets, 1);
    assert.match(JSON.stringify(state.obj.status?.conditions), /FetchFailed/);
    await steadyPasses(bed);
    assert.equal(state.accountGets, 1, 'steady state: no ServiceAccount reads');
    // The account loses its imagePullSecrets; a reconcile is requested before the watch says so.
    state.account = { metadata: { name: 'puller', namespace: 'team', resourceVersion: '4' }, imagePullSecrets: [] };
    await requestReconcile(bed, 'now');
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
