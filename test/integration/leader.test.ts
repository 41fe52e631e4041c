// Leader election with real processes against a real apiserver: only the Lease holder reconciles
// and serves; a graceful stop hands over at once (the lease is released); a killed leader is
// replaced once its lease expires.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startTcpProxy } from '../harness/tcp-proxy.ts';
import { makeTempDir, pushTarGzArtifact, startCluster, startRegistry, type Cluster, type Registry } from '../harness/index.ts';
import { applyRepo, installController, ready, startControllerProcess, waitRepo, type ControllerProcess } from '../helpers/controller-env.ts';

const electionArgs = ['--enable-leader-election', '--leader-election-namespace', 'oci-source-system', '--leader-election-lease-duration', '2s', '--leader-election-renew-deadline', '1500ms', '--leader-election-retry-period', '200ms'];

describe('leader election', { timeout: 900_000 }, () => {
  let cluster: Cluster;
  let reg: Registry;
  let kubeconfig: string;
  const procs: ControllerProcess[] = [];
  const dir = makeTempDir('osc-leader-');
  const start = async (o: { kubeconfig?: string; args?: string[] } = {}) => {
    const p = await startControllerProcess({ kubeconfig: o.kubeconfig ?? kubeconfig, dir, extraArgs: o.args ?? electionArgs, readyPath: '/healthz' });
    procs.push(p);
    return p;
  };
  const isLeader = (p: ControllerProcess) => p.logs().some((l) => l.msg === 'became leader');
  const reconciled = (p: ControllerProcess, name: string) => p.logs().filter((l) => l.msg === 'reconciled' && l.ocirepository === `default/${name}`).length;
  const until = async (pred: () => boolean | Promise<boolean>, what: string, ms = 30_000) => {
    const deadline = Date.now() + ms;
    while (!(await pred())) {
      if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const holder = async () => (await cluster.request<{ spec: { holderIdentity?: string } }>('GET', '/apis/coordination.k8s.io/v1/namespaces/oci-source-system/leases/oci-source-controller-leader-election')).body.spec.holderIdentity;

  before(async () => {
    [cluster, reg] = await Promise.all([startCluster(), startRegistry()]);
    kubeconfig = await installController(cluster, dir);
    await pushTarGzArtifact(reg, 'le/app', 'v1', { 'a.txt': 'a' });
  });
  after(async () => {
    for (const p of procs) await p.stop();
    await Promise.all([cluster?.stop(), reg?.stop()]);
  });

  test('one leader reconciles; handover on graceful stop and on a crash', async () => {
    const a = await start();
    const b = await start();
    await until(() => isLeader(a) || isLeader(b), 'a leader');
    const [leader, follower] = isLeader(a) ? [a, b] : [b, a];
    assert.equal(isLeader(follower), false);
    assert.equal((await fetch(`http://127.0.0.1:${follower.metricsPort}/readyz`)).status, 503, 'a waiting replica is not ready');
    assert.equal((await fetch(`http://127.0.0.1:${leader.metricsPort}/readyz`)).status, 200);

    await applyRepo(cluster, { metadata: { name: 'le', namespace: 'default' }, spec: { url: `oci://${reg.host}/le/app`, interval: '1h', insecure: true, ref: { tag: 'v1' } } });
    const first = await waitRepo(cluster, 'default', 'le', ready, 'Ready');
    assert.ok(first.status!.artifact!.url.includes(`:${leader.storagePort}/`), 'served by the leader');
    assert.ok(reconciled(leader, 'le') >= 1);
    assert.equal(reconciled(follower, 'le'), 0, 'the follower does not reconcile');

    // Graceful stop: the lease is released, the follower takes over without waiting for expiry.
    await leader.stop();
    await until(() => isLeader(follower), 'follower elected after release', 10_000);
    await cluster.kubectlOk(['annotate', '--overwrite', 'ocirepository/le', 'reconcile.ocisource.dev/requestedAt=after-handover']);
    const second = await waitRepo(cluster, 'default', 'le', (o) => o.status?.lastHandledReconcileAt === 'after-handover' && ready(o), 'reconciled by the new leader');
    // The new leader has its own (empty) storage: it rebuilt the artifact and serves it.
    assert.ok(second.status!.artifact!.url.includes(`:${follower.storagePort}/`), second.status!.artifact!.url);
    assert.equal((await fetch(second.status!.artifact!.url)).status, 200);

    // A crash: no release; the next replica waits for the lease to expire, then leads.
    const c = await start();
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(isLeader(c), false);
    const crashed = await holder();
    follower.proc.child.kill('SIGKILL');
    await until(() => isLeader(c), 'third replica elected after expiry', 20_000);
    assert.notEqual(await holder(), crashed);
    await cluster.kubectlOk(['annotate', '--overwrite', 'ocirepository/le', 'reconcile.ocisource.dev/requestedAt=after-crash']);
    await waitRepo(cluster, 'default', 'le', (o) => o.status?.lastHandledReconcileAt === 'after-crash' && ready(o), 'reconciled after crash');
  });

  test('a leader cut off from the apiserver stops before another replica can take the lease', async () => {
    for (const p of procs.splice(0)) await p.stop();
    // Replica A reaches the apiserver through a relay we can freeze; B connects directly.
    const apiPort = Number(new URL(cluster.server).port);
    const relay = await startTcpProxy(apiPort);
    try {
      const viaRelay = path.join(dir, 'relay.kubeconfig');
      writeFileSync(viaRelay, readFileSync(kubeconfig, 'utf8').replace(cluster.server, `https://127.0.0.1:${relay.port}`), { mode: 0o600 });
      // Renewals every 250 ms with a 2 s deadline; a follower waits out a 4 s lease.
      const args = ['--enable-leader-election', '--leader-election-namespace', 'oci-source-system', '--leader-election-lease-duration', '4s', '--leader-election-renew-deadline', '2s', '--leader-election-retry-period', '250ms'];
      const a = await start({ kubeconfig: viaRelay, args });
      await until(() => isLeader(a), 'A leads');
      const b = await start({ args });
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(isLeader(b), false);
      relay.freeze();
      await until(() => isLeader(b), 'B takes over once the lease expires', 30_000);
      const at = (l: Record<string, unknown> | undefined) => (l ? Date.parse(String(l.time)) : undefined);
      const lostAt = at(a.logs().find((l) => /leader lease lost/.test(String(l.msg))));
      const wonAt = at(b.logs().find((l) => l.msg === 'became leader'))!;
      assert.ok(lostAt !== undefined, 'A noticed it could not renew (a hanging request did not hold it past the deadline)');
      assert.ok(lostAt < wonAt, `A stopped leading (${new Date(lostAt).toISOString()}) before B started (${new Date(wonAt).toISOString()}): never two leaders`);
      const afterLoss = a.logs().filter((l) => at(l)! > lostAt && (l.msg === 'reconciled' || l.msg === 'reconcile could not be recorded; retrying with backoff'));
      assert.deepEqual(afterLoss, [], 'A does no reconcile work after losing the lease');
      await until(() => a.proc.child.exitCode !== null, 'A exits so a fresh process can campaign', 15_000);
      assert.equal(a.proc.child.exitCode, 1);
    } finally {
      await relay.close();
    }
  });
});
