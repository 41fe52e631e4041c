// Kubernetes API mechanics against a real kube-apiserver: watch resume, 410 relists, label
// selectors (sharding), and status/finalizer writes with conflict retry.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Finalizer, type OCIRepository } from '../../src/api/schema.ts';
import { Informer } from '../../src/controller/informer.ts';
import { patchFinalizers, patchStatus } from '../../src/controller/objects.ts';
import { projectRoot } from '../helpers/shared.ts';
import { Kube } from '../../src/controller/kube.ts';
import { makeLogger } from '../../src/util/log.ts';
import { makeTempDir, runOk, startCluster, type Cluster } from '../harness/index.ts';

interface CM {
  metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
  data?: Record<string, string>;
}

describe('informer against a real apiserver', { timeout: 900_000 }, () => {
  let cluster: Cluster;
  let kube: Kube;
  const dir = makeTempDir('osc-informer-');
  const log = makeLogger('silent');
  before(async () => {
    // Without the watch cache, watches are served by etcd, so a compacted revision is really
    // gone and the apiserver answers 410 (a busy cluster's small cache window does the same).
    cluster = await startCluster({ extraApiserverArgs: ['--watch-cache=false'] });
    kube = Kube.load({ kubeconfig: cluster.writeKubeconfig(dir, cluster.adminToken) });
  });
  after(async () => {
    kube?.close();
    await cluster?.stop();
  });

  const create = (name: string, labels: Record<string, string> = {}) =>
    cluster.request('POST', '/api/v1/namespaces/default/configmaps', { body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, labels }, data: { v: '1' } } });
  const until = async (pred: () => boolean, what: string) => {
    const deadline = Date.now() + 30_000;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  test('events keep flowing across watch timeouts, and a 410 triggers a relist without losing objects', async () => {
    const seen = new Map<string, string>();
    const deleted: string[] = [];
    const inf = new Informer<CM>(kube, { path: '/api/v1/namespaces/default/configmaps', log, watchTimeoutSeconds: 1 }, {
      onAdd: (o) => seen.set(o.metadata.name, o.data?.v ?? ''),
      onUpdate: (_p, o) => seen.set(o.metadata.name, o.data?.v ?? ''),
      onDelete: (o) => deleted.push(o.metadata.name),
    });
    inf.start();
    await inf.synced();
    await create('a');
    await until(() => seen.has('a'), 'add a');
    // Let several server-side watch timeouts pass, changing things in between.
    const watches = inf.watches;
    await new Promise((r) => setTimeout(r, 2500));
    await create('b');
    await cluster.request('PATCH', '/api/v1/namespaces/default/configmaps/a', { body: { data: { v: '2' } }, contentType: 'application/merge-patch+json' });
    await until(() => seen.get('a') === '2' && seen.has('b'), 'update a, add b after reconnects');
    assert.ok(inf.watches > watches + 1, `watch was resumed (${inf.watches - watches} watches)`);
    // The apiserver sends managedFields; the cache does not keep them (they are never read).
    const sent = await cluster.request<{ metadata: { managedFields?: unknown[] } }>('GET', '/api/v1/namespaces/default/configmaps/a');
    assert.ok(sent.body.metadata.managedFields?.length, 'the apiserver tracks managed fields');
    assert.equal((inf.cache.get('default/a')!.metadata as { managedFields?: unknown }).managedFields, undefined);

    // An expired resourceVersion: the apiserver answers 410 Gone; the informer relists, and a
    // deletion that happened meanwhile is still reported.
    // Compact etcd so that old revisions are really gone, then plant a stale resourceVersion
    // while the watch is idle; the next watch (after its 1 s timeout) gets 410 Gone.
    const status = JSON.parse((await runOk('etcdctl', ['--endpoints', cluster.etcdUrl, 'endpoint', 'status', '-w', 'json'])).toString()) as { Status: { header: { revision: number } } }[];
    await runOk('etcdctl', ['--endpoints', cluster.etcdUrl, 'compact', String(status[0]!.Status.header.revision)]);
    const lists = inf.lists;
    inf.resourceVersion = '2';
    await until(() => inf.lists > lists, 'relist after 410');
    await cluster.request('DELETE', '/api/v1/namespaces/default/configmaps/b');
    await create('c');
    await until(() => seen.has('c') && deleted.includes('b'), 'events after the relist');
    assert.equal(inf.cache.has('default/b'), false);
    await inf.stop();
  });

  test('an event whose handler throws is delivered again, and no later event overtakes it', async () => {
    const order: string[] = [];
    let failuresLeft = 2;
    const inf = new Informer<CM>(kube, { path: '/api/v1/namespaces/default/configmaps', labelSelector: 'test=handler', log }, {
      onAdd: (o) => {
        if (o.metadata.name === 'flaky' && failuresLeft-- > 0) throw new Error('handler bug');
        order.push(`add:${o.metadata.name}`);
      },
      onUpdate: (_p, o) => order.push(`update:${o.metadata.name}:${o.data?.v}`),
      onDelete: (o) => order.push(`delete:${o.metadata.name}`),
    });
    inf.start();
    await inf.synced();
    await create('flaky', { test: 'handler' });
    await create('after', { test: 'handler' });
    await until(() => order.includes('add:after'), 'both adds delivered');
    assert.equal(inf.handlerErrors, 2);
    assert.deepEqual(order.slice(0, 2), ['add:flaky', 'add:after'], 'the failed event is delivered before the events after it');
    assert.equal(inf.cache.get('default/flaky')?.metadata.name, 'flaky');
    await inf.stop();
  });

  test('status and finalizer writes survive conflicts with a stale resourceVersion', async () => {
    await cluster.kubectlOk(['apply', '-f', path.join(projectRoot, 'crds')]);
    await cluster.kubectlOk(['wait', '--for=condition=Established', 'crd/ocirepositories.source.ocisource.dev']);
    const created = await cluster.request<OCIRepository>('POST', '/apis/source.ocisource.dev/v1/namespaces/default/ocirepositories', {
      body: { apiVersion: 'source.ocisource.dev/v1', kind: 'OCIRepository', metadata: { name: 'conflict', finalizers: ['other.example/keep'] }, spec: { url: 'oci://r.test/a', interval: '1m' } },
    });
    assert.equal(created.status, 201, created.text);
    const stale = created.body;
    // Someone else writes first: our copy is now stale.
    await cluster.request('PATCH', '/apis/source.ocisource.dev/v1/namespaces/default/ocirepositories/conflict', { body: { metadata: { labels: { touched: 'yes' } } }, contentType: 'application/merge-patch+json' });
    const withStatus = await patchStatus(kube, stale, { observedGeneration: 1, conditions: [{ type: 'Ready', status: 'True', reason: 'Succeeded', message: 'ok', lastTransitionTime: '2026-01-01T00:00:00Z' }] });
    assert.equal(withStatus.status?.conditions?.[0]?.message, 'ok');
    assert.equal(withStatus.metadata.labels?.touched, 'yes');
    // Unchanged status: no write at all (same resourceVersion back).
    assert.equal((await patchStatus(kube, withStatus, withStatus.status!)).metadata.resourceVersion, withStatus.metadata.resourceVersion);
    // Finalizers from a stale copy: ours is added, the other controller's is kept.
    const fin = await patchFinalizers(kube, stale, ['other.example/keep', Finalizer]);
    assert.deepEqual(fin.metadata.finalizers, ['other.example/keep', Finalizer]);
    const removed = await patchFinalizers(kube, stale, ['other.example/keep']);
    assert.deepEqual(removed.metadata.finalizers, ['other.example/keep']);
    // A spec change in between: the stale status is dropped, not forced onto the new generation.
    await cluster.request('PATCH', '/apis/source.ocisource.dev/v1/namespaces/default/ocirepositories/conflict', { body: { spec: { interval: '2m' } }, contentType: 'application/merge-patch+json' });
    const dropped = await patchStatus(kube, withStatus, { observedGeneration: 1, conditions: [] });
    assert.equal(dropped.metadata.generation, 2);
    assert.equal(dropped.status?.conditions?.[0]?.message, 'ok');
  });

  test('the apiserver refuses Secret and ServiceAccount names that are not DNS-1123 subdomains (CRD schema)', async () => {
    await cluster.kubectlOk(['apply', '-f', path.join(projectRoot, 'crds/source.ocisource.dev_ocirepositories.yaml')]);
    await cluster.kubectlOk(['wait', '--for=condition=Established', 'crd/ocirepositories.source.ocisource.dev']);
    const create = (name: string, spec: Record<string, unknown>) =>
      cluster.request('POST', '/apis/source.ocisource.dev/v1/namespaces/default/ocirepositories', {
        body: { apiVersion: 'source.ocisource.dev/v1', kind: 'OCIRepository', metadata: { name }, spec: { url: 'oci://r.test/a', interval: '1m', ...spec } },
      });
    const bad = [
      { secretRef: { name: '../../kube-system/secrets/x' } },
      { certSecretRef: { name: 'Creds' } },
      { proxySecretRef: { name: 'p?watch=1' } },
      { serviceAccountName: 'sa/../../x' },
      { verify: { provider: 'cosign', secretRef: { name: 'a'.repeat(254) } } },
      { verify: { provider: 'cosign', trustedRootSecretRef: { name: 'root/' } } },
    ];
    for (const [i, spec] of bad.entries()) {
      const res = await create(`badname-${i}`, spec);
      assert.equal(res.status, 422, `${JSON.stringify(spec)}: ${res.status} ${res.text}`);
      assert.match(res.text, /should match '\^\[a-z0-9\]|should be at most 253 chars long/);
    }
    const ok = await create('goodname', { secretRef: { name: 'creds.v2' }, serviceAccountName: 'builder' });
    assert.equal(ok.status, 201, ok.text);
  });

  test('label selector restricts what is seen (sharding)', async () => {
    await create('shard1-x', { 'sharding.ocisource.dev/key': 'shard1' });
    await create('shard2-x', { 'sharding.ocisource.dev/key': 'shard2' });
    const names: string[] = [];
    const inf = new Informer<CM>(kube, { path: '/api/v1/namespaces/default/configmaps', labelSelector: 'sharding.ocisource.dev/key=shard1', log }, { onAdd: (o) => names.push(o.metadata.name), onUpdate: () => {}, onDelete: () => {} });
    inf.start();
    await inf.synced();
    await create('shard1-y', { 'sharding.ocisource.dev/key': 'shard1' });
    await until(() => names.includes('shard1-y'), 'new shard1 object');
    assert.deepEqual(names.sort(), ['shard1-x', 'shard1-y']);
    await inf.stop();
  });
});
