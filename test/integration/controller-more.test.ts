// More of the foundation end to end: mTLS (certSecretRef), an HTTP proxy (proxySecretRef),
// corrupted registry blobs, a corrupted stored artifact, the `pull` CLI producing the same
// file as the controller, --watch-namespace, and no Secret content in the logs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { makeTempDir, pushTarGzArtifact, startCluster, startRegistry, type Cluster, type Registry } from '../harness/index.ts';
import { applyRepo, cond, getRepo, installController, ready, startControllerProcess, waitRepo, type ControllerProcess } from '../helpers/controller-env.ts';
import { projectRoot } from '../helpers/shared.ts';

/** A forward proxy for plain-HTTP targets (absolute-form requests), with Basic proxy auth. */
async function startProxy(user: string, password: string): Promise<{ url: string; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const want = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const server = http.createServer((req, res) => {
    if (req.headers['proxy-authorization'] !== want) {
      res.writeHead(407, { 'proxy-authenticate': 'Basic realm="proxy"' }).end();
      return;
    }
    const target = new URL(req.url ?? '');
    seen.push(`${req.method} ${target.pathname}`);
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    const up = http.request({ host: target.hostname, port: target.port, path: target.pathname + target.search, method: req.method, headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.writeHead(502).end());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('controller: transport options, integrity, CLI parity', { timeout: 900_000 }, () => {
  let cluster: Cluster;
  let plain: Registry;
  let mtls: Registry;
  let ctrl: ControllerProcess;
  const dir = makeTempDir('osc-more-');
  before(async () => {
    [cluster, plain, mtls] = await Promise.all([startCluster(), startRegistry(), startRegistry({ mtls: true })]);
    const kubeconfig = await installController(cluster, dir);
    await cluster.kubectlOk(['create', 'namespace', 'team-a']);
    await cluster.kubectlOk(['create', 'namespace', 'team-b']);
    // Watch one namespace only: objects elsewhere are left alone.
    ctrl = await startControllerProcess({ kubeconfig, dir, extraArgs: ['--watch-namespace', 'team-a'] });
  });
  after(async () => {
    await ctrl?.stop();
    await Promise.all([cluster?.stop(), plain?.stop(), mtls?.stop()]);
  });

  test('mTLS registry: certSecretRef with ca.crt, tls.crt and tls.key', async () => {
    await pushTarGzArtifact(mtls, 'secure/app', 'v1', { 'm.txt': 'mtls' });
    const sec = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'mtls', namespace: 'team-a' }, stringData: { 'ca.crt': mtls.caPem!, 'tls.crt': mtls.clientCert!.certPem, 'tls.key': mtls.clientCert!.keyPem } };
    await cluster.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(sec) });
    await applyRepo(cluster, { metadata: { name: 'mtls', namespace: 'team-a' }, spec: { url: `oci://${mtls.host}/secure/app`, interval: '1h', ref: { tag: 'v1' }, certSecretRef: { name: 'mtls' } } });
    await waitRepo(cluster, 'team-a', 'mtls', ready, 'Ready over mTLS');
    // Without the client certificate the handshake is refused and the message says why.
    const ca = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'ca-only', namespace: 'team-a' }, stringData: { 'ca.crt': mtls.caPem! } };
    await cluster.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(ca) });
    await applyRepo(cluster, { metadata: { name: 'mtls-nocert', namespace: 'team-a' }, spec: { url: `oci://${mtls.host}/secure/app`, interval: '1h', ref: { tag: 'v1' }, certSecretRef: { name: 'ca-only' } } });
    const bad = await waitRepo(cluster, 'team-a', 'mtls-nocert', (o) => cond(o, 'Ready')?.status === 'False', 'refused');
    assert.equal(cond(bad, 'Ready')?.reason, 'OCIArtifactPullFailed');
  });

  test('proxySecretRef: every registry request goes through the proxy, with its credentials', async () => {
    const proxy = await startProxy('proxyuser', 'proxypass');
    try {
      await pushTarGzArtifact(plain, 'proxied/app', 'v1', { 'p.txt': 'via proxy' });
      const sec = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'proxy', namespace: 'team-a' }, stringData: { address: proxy.url, username: 'proxyuser', password: 'proxypass' } };
      await cluster.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(sec) });
      await applyRepo(cluster, { metadata: { name: 'proxied', namespace: 'team-a' }, spec: { url: `oci://${plain.host}/proxied/app`, interval: '1h', insecure: true, ref: { tag: 'v1' }, proxySecretRef: { name: 'proxy' } } });
      await waitRepo(cluster, 'team-a', 'proxied', ready, 'Ready via proxy');
      assert.ok(proxy.seen.some((s) => s.startsWith('HEAD /v2/proxied/app/manifests/v1')), proxy.seen.join('\n'));
      assert.ok(proxy.seen.some((s) => s.startsWith('GET /v2/proxied/app/blobs/sha256:')), proxy.seen.join('\n'));
    } finally {
      await proxy.close();
    }
  });

  test('a blob corrupted in the registry is refused; a corrupted stored artifact is rebuilt', async () => {
    const pushed = await pushTarGzArtifact(plain, 'integrity/app', 'v1', { 'i.txt': 'integrity' });
    await applyRepo(cluster, { metadata: { name: 'integrity', namespace: 'team-a' }, spec: { url: `oci://${plain.host}/integrity/app`, interval: '1h', insecure: true, ref: { tag: 'v1' } } });
    const good = await waitRepo(cluster, 'team-a', 'integrity', ready, 'Ready');
    // Corrupt the stored artifact: the next reconcile notices, rebuilds, and says so.
    const stored = path.join(ctrl.storagePath, good.status!.artifact!.path);
    writeFileSync(stored, 'tampered');
    await cluster.kubectlOk(['-n', 'team-a', 'annotate', '--overwrite', 'ocirepository/integrity', 'reconcile.ocisource.dev/requestedAt=rebuild']);
    await waitRepo(cluster, 'team-a', 'integrity', (o) => o.status?.lastHandledReconcileAt === 'rebuild' && ready(o), 'rebuilt');
    assert.notEqual(readFileSync(stored, 'utf8'), 'tampered');
    // As in Flux, the rebuild is logged (the status and the served digest do not change).
    assert.ok(ctrl.logs().some((l) => l.ocirepository === 'team-a/integrity' && /does not match its digest; rebuilding/.test(String(l.msg))), 'rebuild is logged');

    // Corrupt the layer blob inside the registry's own storage: the pull fails digest verification.
    const v2 = await pushTarGzArtifact(plain, 'integrity/app', 'v1', { 'i.txt': 'second' });
    const hex = v2.layerDigest.slice('sha256:'.length);
    const blobFile = path.join(plain.dir, 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
    const size = statSync(blobFile).size;
    writeFileSync(blobFile, Buffer.alloc(size, 0x41));
    await cluster.kubectlOk(['-n', 'team-a', 'annotate', '--overwrite', 'ocirepository/integrity', 'reconcile.ocisource.dev/requestedAt=corrupt-blob']);
    const bad = await waitRepo(cluster, 'team-a', 'integrity', (o) => o.status?.lastHandledReconcileAt === 'corrupt-blob' && cond(o, 'Ready')?.status === 'False', 'refused');
    assert.match(cond(bad, 'Ready')!.message, /failed digest verification/);
    assert.equal(bad.status?.artifact?.revision, `v1@${pushed.manifestDigest}`, 'the last good artifact is kept');
  });

  test('`pull` CLI stores a byte-identical artifact to the controller (reproducible, same code path)', async () => {
    await pushTarGzArtifact(plain, 'parity/app', 'v3', { 'z.yaml': 'z', 'a/b.yaml': 'ab', 'img.png': 'x' });
    await applyRepo(cluster, { metadata: { name: 'parity', namespace: 'team-a' }, spec: { url: `oci://${plain.host}/parity/app`, interval: '1h', insecure: true, ref: { tag: 'v3' } } });
    const o = await waitRepo(cluster, 'team-a', 'parity', ready, 'Ready');
    const out = path.join(dir, 'pulled');
    const json = JSON.parse(execFileSync(process.execPath, [path.join(projectRoot, 'src/main.ts'), 'pull', `oci://${plain.host}/parity/app`, '--tag', 'v3', '--insecure', '-o', out]).toString()) as { revision: string; digest: string; path: string };
    assert.equal(json.revision, o.status!.artifact!.revision);
    assert.equal(json.digest, o.status!.artifact!.digest);
    assert.deepEqual(readFileSync(json.path), readFileSync(path.join(ctrl.storagePath, o.status!.artifact!.path)));
  });

  test('sharding: an object that leaves the shard has its stored artifacts removed (Flux #2150)', async () => {
    const shard = await startControllerProcess({ kubeconfig: ctrl.proc.child.spawnargs[ctrl.proc.child.spawnargs.indexOf('--kubeconfig') + 1]!, dir, storagePath: path.join(dir, 'shard-data'), extraArgs: ['--watch-namespace', 'team-b', '--watch-label-selector', 'sharding.ocisource.dev/key=one'] });
    try {
      await pushTarGzArtifact(plain, 'shard/app', 'v1', { 's.txt': 's' });
      await applyRepo(cluster, { metadata: { name: 'sharded', namespace: 'team-b', labels: { 'sharding.ocisource.dev/key': 'one' } }, spec: { url: `oci://${plain.host}/shard/app`, interval: '1h', insecure: true, ref: { tag: 'v1' } } });
      const o = await waitRepo(cluster, 'team-b', 'sharded', ready, 'Ready in shard one');
      const objDir = path.join(shard.storagePath, 'ocirepository/team-b/sharded');
      assert.ok(statSync(objDir).isDirectory());
      assert.ok(o.status!.artifact!.url.includes(`:${shard.storagePort}/`));
      await cluster.kubectlOk(['-n', 'team-b', 'label', '--overwrite', 'ocirepository/sharded', 'sharding.ocisource.dev/key=two']);
      const deadline = Date.now() + 20_000;
      while (existsSync(objDir) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.equal(existsSync(objDir), false, 'artifacts of an object that left the shard are removed');
    } finally {
      await shard.stop();
    }
  });

  test('--watch-namespace leaves other namespaces alone; logs carry no Secret content', async () => {
    await pushTarGzArtifact(plain, 'other/app', 'v1', { 'o.txt': 'o' });
    await applyRepo(cluster, { metadata: { name: 'elsewhere', namespace: 'team-b' }, spec: { url: `oci://${plain.host}/other/app`, interval: '1h', insecure: true, ref: { tag: 'v1' } } });
    await applyRepo(cluster, { metadata: { name: 'here', namespace: 'team-a' }, spec: { url: `oci://${plain.host}/other/app`, interval: '1h', insecure: true, ref: { tag: 'v1' } } });
    await waitRepo(cluster, 'team-a', 'here', ready, 'Ready');
    const other = await getRepo(cluster, 'team-b', 'elsewhere');
    assert.equal(other?.status?.conditions, undefined);
    assert.equal(other?.metadata.finalizers, undefined);
    assert.deepEqual(readdirSync(path.join(ctrl.storagePath, 'ocirepository')), ['team-a']);
    const metrics = await (await fetch(`http://127.0.0.1:${ctrl.metricsPort}/metrics`)).text();
    assert.match(metrics, /ocisource_reconcile_duration_seconds_count\{kind="OCIRepository",namespace="team-a",name="here"\} \d+/);
    assert.equal((await fetch(`http://127.0.0.1:${ctrl.metricsPort}/healthz`)).status, 200);
    const log = readFileSync(ctrl.logFile, 'utf8');
    for (const secret of ['proxypass', mtls.clientCert!.keyPem.split('\n')[1]!]) assert.ok(!log.includes(secret), 'secret material leaked into the log');
  });
});
