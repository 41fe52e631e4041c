// End to end: real etcd + kube-apiserver, real docker-registry, the controller as a separate
// process with the shipped RBAC. Unsigned sources: the foundation every verifier builds on.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { makeTempDir, startCluster, startRegistry, pushTarGzArtifact, type Cluster, type Registry } from '../harness/index.ts';
import { tarGzNames } from '../helpers/tar.ts';
import { applyRepo, cond, getRepo, installController, ready, startControllerProcess, waitRepo, type ControllerProcess } from '../helpers/controller-env.ts';

async function download(url: string): Promise<{ status: number; body: Buffer; headers: Headers }> {
  const res = await fetch(url);
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()), headers: res.headers };
}

describe('OCIRepository end to end (unsigned)', { timeout: 900_000 }, () => {
  let cluster: Cluster;
  let reg: Registry;
  let authReg: Registry;
  let ctrl: ControllerProcess;
  let kubeconfig: string;
  const dir = makeTempDir('osc-e2e-');

  before(async () => {
    [cluster, reg, authReg] = await Promise.all([startCluster(), startRegistry(), startRegistry({ tls: true, htpasswd: { user: 'puller', password: 's3cret' } })]);
    kubeconfig = await installController(cluster, dir);
    ctrl = await startControllerProcess({ kubeconfig, dir });
  });
  after(async () => {
    await ctrl?.stop();
    await Promise.all([cluster?.stop(), reg?.stop(), authReg?.stop()]);
  });

  test('tag: Ready, served, files match what was pushed; tag move → new revision and GC', async () => {
    const v1 = await pushTarGzArtifact(reg, 'app/config', 'stable', { 'deploy.yaml': 'kind: ConfigMap\n', 'nested/a.txt': 'A\n', 'logo.png': 'PNG' }, { annotations: { 'org.opencontainers.image.source': 'https://example.test/repo', 'org.opencontainers.image.revision': 'main@sha1:abc' } });
    await applyRepo(cluster, { metadata: { name: 'tagged', namespace: 'default' }, spec: { url: `oci://${reg.host}/app/config`, interval: '1h', insecure: true, ref: { tag: 'stable' } } });
    const o = await waitRepo(cluster, 'default', 'tagged', ready, 'Ready');
    assert.equal(o.status?.artifact?.revision, `stable@${v1.manifestDigest}`);
    assert.ok(o.metadata.finalizers?.includes('finalizers.ocisource.dev'));
    assert.equal(o.status?.artifact?.metadata?.['org.opencontainers.image.revision'], 'main@sha1:abc');
    const art = o.status!.artifact!;
    assert.ok(art.url.startsWith(ctrl.url), art.url);
    const got = await download(art.url);
    assert.equal(got.status, 200);
    assert.equal(`sha256:${createHash('sha256').update(got.body).digest('hex')}`, art.digest);
    assert.equal(got.body.length, art.size);
    // Flux's default exclusions drop *.png; directories come before their files, sorted.
    assert.deepEqual(tarGzNames(got.body), ['deploy.yaml', 'nested/', 'nested/a.txt']);
    const latest = await download(o.status!.url!);
    assert.equal(latest.status, 200);
    assert.deepEqual(latest.body, got.body);

    const v2 = await pushTarGzArtifact(reg, 'app/config', 'stable', { 'deploy.yaml': 'kind: Secret\n' });
    await cluster.kubectlOk(['annotate', '--overwrite', 'ocirepository/tagged', `reconcile.ocisource.dev/requestedAt=${Date.now()}`]);
    const o2 = await waitRepo(cluster, 'default', 'tagged', (x) => x.status?.artifact?.revision === `stable@${v2.manifestDigest}`, 'new revision');
    assert.ok(o2.status?.lastHandledReconcileAt);
    assert.equal(cond(o2, 'Ready')?.status, 'True');
    // Retention: 2 records by default, so v1 stays for now; after another move it is collected.
    const v3 = await pushTarGzArtifact(reg, 'app/config', 'stable', { 'deploy.yaml': 'kind: Pod\n' });
    await cluster.kubectlOk(['annotate', '--overwrite', 'ocirepository/tagged', `reconcile.ocisource.dev/requestedAt=${Date.now()}`]);
    await waitRepo(cluster, 'default', 'tagged', (x) => x.status?.artifact?.revision === `stable@${v3.manifestDigest}`, 'third revision');
    const files = readdirSync(path.join(ctrl.storagePath, 'ocirepository/default/tagged')).filter((f) => f.endsWith('.tar.gz') && f !== 'latest.tar.gz');
    assert.ok(files.includes(`${v3.manifestDigest}.tar.gz`));
    assert.ok(!files.includes(`${v1.manifestDigest}.tar.gz`), `v1 should be garbage-collected: ${files.join(', ')}`);
    assert.ok(files.length <= 2, files.join(', '));
  });

  test('semver picks the highest match; digest ref; copy mode', async () => {
    for (const t of ['1.0.0', '1.2.0', '1.10.0', '2.0.0-rc.1', 'v1.9.9', 'latest']) await pushTarGzArtifact(reg, 'app/semver', t, { 'v.txt': t });
    await applyRepo(cluster, { metadata: { name: 'semver', namespace: 'default' }, spec: { url: `oci://${reg.host}/app/semver`, interval: '1h', insecure: true, ref: { semver: '>=1.0.0 <2.0.0' } } });
    const o = await waitRepo(cluster, 'default', 'semver', ready, 'Ready');
    assert.match(o.status!.artifact!.revision, /^1\.10\.0@sha256:/);

    const pinned = await pushTarGzArtifact(reg, 'app/digest', 'x', { 'f.txt': 'pinned' });
    await applyRepo(cluster, { metadata: { name: 'digest', namespace: 'default' }, spec: { url: `oci://${reg.host}/app/digest`, interval: '1h', insecure: true, ref: { digest: pinned.manifestDigest }, layerSelector: { mediaType: 'application/vnd.cncf.flux.content.v1.tar+gzip', operation: 'copy' } } });
    const d = await waitRepo(cluster, 'default', 'digest', ready, 'Ready');
    assert.equal(d.status!.artifact!.revision, pinned.manifestDigest);
    // copy mode stores the layer blob unchanged: the stored digest is the layer digest.
    assert.equal(d.status!.artifact!.digest, pinned.layerDigest);
  });

  test('failures keep the last artifact: wrong tag, registry auth, suspend', async () => {
    await pushTarGzArtifact(reg, 'app/fail', 'v1', { 'a.txt': 'one' });
    await applyRepo(cluster, { metadata: { name: 'failing', namespace: 'default' }, spec: { url: `oci://${reg.host}/app/fail`, interval: '1h', insecure: true, ref: { tag: 'v1' } } });
    const good = await waitRepo(cluster, 'default', 'failing', ready, 'Ready');
    await applyRepo(cluster, { metadata: { name: 'failing', namespace: 'default' }, spec: { url: `oci://${reg.host}/app/fail`, interval: '1h', insecure: true, ref: { tag: 'v2' } } });
    const bad = await waitRepo(cluster, 'default', 'failing', (x) => cond(x, 'Ready')?.status === 'False', 'Ready=False');
    assert.equal(cond(bad, 'Ready')?.reason, 'OCIArtifactPullFailed');
    assert.match(cond(bad, 'Ready')!.message, /tag v2 not found in .*app\/fail; tags: v1/);
    assert.equal(cond(bad, 'FetchFailed')?.status, 'True');
    assert.equal(bad.status?.artifact?.revision, good.status?.artifact?.revision);
    assert.equal((await download(good.status!.artifact!.url)).status, 200);

    // Private TLS registry with basic auth: no secret → AuthenticationFailed.
    await pushTarGzArtifact(authReg, 'private/app', 'v1', { 'p.txt': 'private' });
    const caPem = authReg.caPem!;
    await cluster.kubectlOk(['create', 'secret', 'generic', 'reg-ca', `--from-literal=ca.crt=${caPem}`]);
    await applyRepo(cluster, { metadata: { name: 'private', namespace: 'default' }, spec: { url: `oci://${authReg.host}/private/app`, interval: '1h', ref: { tag: 'v1' }, certSecretRef: { name: 'reg-ca' } } });
    const unauth = await waitRepo(cluster, 'default', 'private', (x) => cond(x, 'Ready')?.status === 'False', 'auth failure');
    assert.equal(cond(unauth, 'Ready')?.reason, 'AuthenticationFailed', cond(unauth, 'Ready')?.message);
    await cluster.kubectlOk(['create', 'secret', 'docker-registry', 'reg-creds', `--docker-server=${authReg.host}`, '--docker-username=puller', '--docker-password=s3cret']);
    await applyRepo(cluster, { metadata: { name: 'private', namespace: 'default' }, spec: { url: `oci://${authReg.host}/private/app`, interval: '1h', ref: { tag: 'v1' }, certSecretRef: { name: 'reg-ca' }, secretRef: { name: 'reg-creds' } } });
    await waitRepo(cluster, 'default', 'private', ready, 'Ready with credentials');
    // The same credentials through a ServiceAccount's imagePullSecrets (spec.serviceAccountName).
    await cluster.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'puller', namespace: 'default' }, imagePullSecrets: [{ name: 'reg-creds' }] }) });
    await applyRepo(cluster, { metadata: { name: 'private-sa', namespace: 'default' }, spec: { url: `oci://${authReg.host}/private/app`, interval: '1h', ref: { tag: 'v1' }, certSecretRef: { name: 'reg-ca' }, serviceAccountName: 'puller' } });
    await waitRepo(cluster, 'default', 'private-sa', ready, 'Ready with ServiceAccount pull secrets');
    await applyRepo(cluster, { metadata: { name: 'private-nosa', namespace: 'default' }, spec: { url: `oci://${authReg.host}/private/app`, interval: '1h', ref: { tag: 'v1' }, certSecretRef: { name: 'reg-ca' }, serviceAccountName: 'missing' } });
    const nosa = await waitRepo(cluster, 'default', 'private-nosa', (x) => cond(x, 'Ready')?.status === 'False', 'missing SA');
    assert.equal(cond(nosa, 'Ready')?.reason, 'AuthenticationFailed');
    assert.match(cond(nosa, 'Ready')!.message, /service account 'default\/missing' not found/);

    // Suspend: a new tag is not picked up.
    await applyRepo(cluster, { metadata: { name: 'failing', namespace: 'default' }, spec: { url: `oci://${reg.host}/app/fail`, interval: '1h', insecure: true, ref: { tag: 'v1' }, suspend: true } });
    const before = await getRepo(cluster, 'default', 'failing');
    await new Promise((r) => setTimeout(r, 1500));
    const afterSuspend = await getRepo(cluster, 'default', 'failing');
    assert.equal(afterSuspend?.status?.observedGeneration, before?.status?.observedGeneration);
    assert.notEqual(afterSuspend?.status?.observedGeneration, afterSuspend?.metadata.generation);
  });

  test('invalid URL is Stalled; delete removes stored files; restart keeps serving', async () => {
    await applyRepo(cluster, { metadata: { name: 'badurl', namespace: 'default' }, spec: { url: `oci://${reg.host}/app/config:v1`, interval: '1h', insecure: true } });
    const s = await waitRepo(cluster, 'default', 'badurl', (x) => cond(x, 'Stalled')?.status === 'True', 'Stalled');
    assert.equal(cond(s, 'Stalled')?.reason, 'URLInvalid');
    assert.equal(cond(s, 'Ready')?.status, 'False');
    assert.match(cond(s, 'Ready')!.message, /must not contain a tag/);

    await pushTarGzArtifact(reg, 'app/del', 'v1', { 'x.txt': 'x' });
    await applyRepo(cluster, { metadata: { name: 'todelete', namespace: 'default' }, spec: { url: `oci://${reg.host}/app/del`, interval: '1h', insecure: true, ref: { tag: 'v1' } } });
    await waitRepo(cluster, 'default', 'todelete', ready, 'Ready');
    const objDir = path.join(ctrl.storagePath, 'ocirepository/default/todelete');
    assert.ok(existsSync(objDir));
    await cluster.kubectlOk(['delete', 'ocirepository/todelete', '--wait=true', '--timeout=30s']);
    assert.equal(existsSync(objDir), false);

    const tagged = await getRepo(cluster, 'default', 'tagged');
    await ctrl.stop();
    ctrl = await startControllerProcess({ kubeconfig, dir, storagePath: ctrl.storagePath, storagePort: ctrl.storagePort });
    const got = await download(tagged!.status!.artifact!.url);
    assert.equal(got.status, 200);
    assert.equal(`sha256:${createHash('sha256').update(got.body).digest('hex')}`, tagged!.status!.artifact!.digest);
  });
});
