// The registry client against real docker-registry instances: token auth and token caching,
// TLS, tag pagination, referrers (API and tag fallback), timeouts, and the controller's
// steady-state cost (one HEAD per interval when nothing changed).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { RegistryClient } from '../../src/oci/client.ts';
import { Transport } from '../../src/oci/transport.ts';
import { parseRepositoryURL } from '../../src/oci/reference.ts';
import { resolveRef } from '../../src/oci/resolve.ts';
import { BuildError, buildArtifact } from '../../src/storage/build.ts';
import { Storage } from '../../src/storage/store.ts';
import { makeTempDir, pushTarGzArtifact, startCluster, startRegistry, startReferrersProxy, type Cluster, type Registry, type ReferrersProxy } from '../harness/index.ts';
import { deepPathLayer } from '../helpers/hostile-tar.ts';
import { pushReferrer } from '../helpers/push-signatures.ts';
import { applyRepo, cond, installController, ready, startControllerProcess, waitRepo, type ControllerProcess } from '../helpers/controller-env.ts';

describe('registry client against real registries', { timeout: 900_000 }, () => {
  let plain: Registry;
  let token: Registry;
  let proxy: ReferrersProxy;
  const transport = new Transport();
  before(async () => {
    [plain, token] = await Promise.all([startRegistry(), startRegistry({ tls: true, tokenAuth: true })]);
    proxy = await startReferrersProxy({ upstream: plain.host, pageSize: 2 });
  });
  after(async () => {
    await transport.close();
    await proxy?.stop();
    await Promise.all([plain?.stop(), token?.stop()]);
  });

  test('token auth over TLS: scoped token fetched once and reused until expiry', async () => {
    const pushed = await pushTarGzArtifact(token, 'team/app', 'v1', { 'a.txt': 'a' });
    const own = new Transport();
    const opts = { transport: own, credentials: { username: token.username!, password: token.password! }, tls: { ca: token.caPem! } };
    const before = token.tokenRequests!();
    for (let i = 0; i < 5; i++) {
      const c = new RegistryClient(parseRepositoryURL(`oci://${token.host}/team/app`), opts);
      const r = await resolveRef(c, { tag: 'v1' });
      assert.equal(r.descriptor.digest, pushed.manifestDigest);
    }
    assert.equal(token.tokenRequests!() - before, 1, 'one token for five resolves');
    // The token is scoped to this repository, pull only.
    const grant = token.tokenGrants!().at(-1)!;
    assert.deepEqual(grant.scopes, ['repository:team/app:pull']);
    assert.deepEqual(grant.access.map((a) => [a.name, a.actions]), [['team/app', ['pull']]]);
    // Wrong password: the token endpoint refuses, and the message says what to check.
    const bad = new RegistryClient(parseRepositoryURL(`oci://${token.host}/team/app`), { transport: new Transport(), credentials: { username: 'x', password: 'y' }, tls: { ca: token.caPem! } });
    await assert.rejects(resolveRef(bad, { tag: 'v1' }), /token request .* HTTP 401 \(check the credentials from spec.secretRef\)/);
    // No CA: TLS fails with advice.
    const noca = new RegistryClient(parseRepositoryURL(`oci://${token.host}/team/app`), { transport: new Transport() });
    await assert.rejects(resolveRef(noca, { tag: 'v1' }), /TLS handshake .* failed: .*certSecretRef/);
  });

  test('tag listing follows Link pagination', async () => {
    for (const t of ['1.0.0', '1.1.0', '1.2.0', '1.3.0', '1.4.0']) await pushTarGzArtifact(plain, 'paged/app', t, { 'v': t });
    // docker-registry 2.8 ignores `n` on tag lists, so the proxy pages its real answer.
    const pages = proxy.tagPages();
    const c = new RegistryClient(parseRepositoryURL(`oci://${proxy.host}/paged/app`), { transport, insecure: true, tagPageSize: 2 });
    const tags = await c.listTags();
    assert.deepEqual([...tags].sort(), ['1.0.0', '1.1.0', '1.2.0', '1.3.0', '1.4.0']);
    assert.equal(proxy.tagPages() - pages, 3, 'three pages of at most two');
    const r = await resolveRef(c, { semver: '^1.0.0' });
    assert.equal(r.tag, '1.4.0');
  });

  test('referrers: the API when the registry has it (paginated, filtered), the tag schema when it does not', async () => {
    const subj = await pushTarGzArtifact(plain, 'refs/app', 'v1', { 'x': 'x' });
    const subject = { digest: subj.manifestDigest, size: subj.manifestBytes.length, mediaType: 'application/vnd.oci.image.manifest.v1+json' };
    for (let i = 0; i < 3; i++) await pushReferrer(plain, 'refs/app', subject, 'application/vnd.cncf.notary.signature', Buffer.from(`sig${i}`), 'application/jose+json');
    await pushReferrer(plain, 'refs/app', subject, 'application/vnd.dev.sigstore.bundle.v0.3+json', Buffer.from('{}'), 'application/vnd.dev.sigstore.bundle.v0.3+json');

    const viaTag = new RegistryClient(parseRepositoryURL(`oci://${plain.host}/refs/app`), { transport, insecure: true });
    assert.equal((await viaTag.referrers(subj.manifestDigest, 'application/vnd.cncf.notary.signature')).length, 3);
    assert.equal((await viaTag.referrers(subj.manifestDigest)).length, 4);

    const calls = proxy.referrersCalls();
    const fallback = proxy.tagFallbackCalls();
    const viaApi = new RegistryClient(parseRepositoryURL(`oci://${proxy.host}/refs/app`), { transport, insecure: true });
    const found = await viaApi.referrers(subj.manifestDigest, 'application/vnd.cncf.notary.signature');
    assert.equal(found.length, 3);
    assert.ok(found.every((d) => d.artifactType === 'application/vnd.cncf.notary.signature'));
    assert.equal(proxy.referrersCalls() - calls, 2, 'two pages of two');
    assert.equal(proxy.tagFallbackCalls(), fallback, 'no tag fallback when the API answers');
    const none = await viaApi.referrers(`sha256:${'0'.repeat(64)}`);
    assert.deepEqual(none, []);
  });

  /** Where docker-registry keeps a blob's bytes: what a compromised registry would swap. */
  const blobFile = (reg: Registry, digest: string) => path.join(reg.dir, 'data/docker/registry/v2/blobs/sha256', digest.slice(7, 9), digest.slice(7), 'data');
  const workLeft = (st: Storage) => (existsSync(st.abs('.tmp')) ? readdirSync(st.abs('.tmp')) : []);

  test('issue 7 item 1: a registry that swaps a layer gets a digest mismatch; the hostile tarball is never parsed', { timeout: 120_000 }, async () => {
    const st = new Storage({ root: makeTempDir('osc-swap-'), retentionRecords: 2, retentionTTLms: 60_000, advertisedAddr: 'test' });
    const hostile = deepPathLayer(80_000);
    for (const sameSize of [false, true]) {
      const pushed = await pushTarGzArtifact(plain, 'swap/app', `v${sameSize}`, { 'deploy.yaml': `kind: ConfigMap # ${sameSize}\n`.repeat(200) });
      const file = blobFile(plain, pushed.layerDigest);
      const size = statSync(file).size;
      // The same size as the signed layer, or the 300-byte bomb as it is.
      writeFileSync(file, sameSize ? Buffer.concat([hostile, Buffer.alloc(size)]).subarray(0, size) : hostile);
      const c = new RegistryClient(parseRepositoryURL(`oci://${plain.host}/swap/app`), { transport, insecure: true });
      const err = await buildArtifact({ client: c, manifestDigest: pushed.manifestDigest, storage: st, target: st.artifactPath('default', 'swap', pushed.manifestDigest) }).then(() => undefined, (e: Error) => e);
      assert.ok(err instanceof BuildError, `${sameSize}: ${err?.name}: ${err?.message}`);
      assert.equal(err.stage, 'pull');
      assert.match(err.message, sameSize ? /failed to pull layer sha256:[0-9a-f]+: blob sha256:[0-9a-f]+ failed digest verification/ : /blob sha256:[0-9a-f]+ (is larger than its descriptor's \d+ bytes|is \d+ bytes, descriptor says \d+)/);
      assert.deepEqual(workLeft(st), [], 'nothing left in the work directory');
      assert.equal(existsSync(st.abs(st.artifactPath('default', 'swap', pushed.manifestDigest))), false);
    }
  });

  test('issue 8: no work directory is left behind when the layer cannot be opened', async () => {
    const st = new Storage({ root: makeTempDir('osc-leak-'), retentionRecords: 2, retentionTTLms: 60_000, advertisedAddr: 'test' });
    const pushed = await pushTarGzArtifact(plain, 'leak/app', 'v1', { 'a.txt': 'a' });
    unlinkSync(blobFile(plain, pushed.layerDigest));
    const c = new RegistryClient(parseRepositoryURL(`oci://${plain.host}/leak/app`), { transport, insecure: true });
    const err = await buildArtifact({ client: c, manifestDigest: pushed.manifestDigest, storage: st, target: st.artifactPath('default', 'leak', pushed.manifestDigest) }).then(() => undefined, (e: Error) => e);
    assert.ok(err instanceof BuildError && err.stage === 'pull', `${err?.name}: ${err?.message}`);
    assert.match(err.message, /failed to pull layer .*HTTP 404/);
    assert.deepEqual(workLeft(st), []);
  });

  test('issue 8: rotating a TLS Secret N times leaves one connection pool', async () => {
    await pushTarGzArtifact(token, 'rotate/app', 'v1', { 'a.txt': 'a' });
    const own = new Transport();
    const n = 6;
    for (let i = 0; i < n; i++) {
      // A rotated ca.crt: the same CA, different bytes (what a re-issued bundle looks like to us).
      const ca = `${token.caPem!}${'\n'.repeat(i + 1)}`;
      const c = new RegistryClient(parseRepositoryURL(`oci://${token.host}/rotate/app`), { transport: own, poolOwner: 'default/rotate', tls: { ca }, credentials: { username: token.username!, password: token.password! } });
      assert.ok(await c.head('v1'));
      assert.equal(own.pools, 1, `rotation ${i}`);
    }
    assert.equal(own.evicted, n - 1);
    own.release('default/rotate');
    assert.equal(own.pools, 0);
    await own.close();
  });

  test('spec.timeout bounds a registry that accepts connections and never answers', async () => {
    const sockets: net.Socket[] = [];
    const hang = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
    const port = (hang.address() as net.AddressInfo).port;
    const c = new RegistryClient(parseRepositoryURL(`oci://127.0.0.1:${port}/x/y`), { transport, insecure: true, signal: AbortSignal.timeout(300) });
    await assert.rejects(resolveRef(c, { tag: 'v1' }), /request to 127\.0\.0\.1:\d+ stopped/);
    for (const s of sockets) s.destroy();
    hang.close();
  });
});

describe('controller steady state and outages', { timeout: 900_000 }, () => {
  let cluster: Cluster;
  let reg: Registry;
  let ctrl: ControllerProcess;
  const dir = makeTempDir('osc-steady-');
  before(async () => {
    [cluster, reg] = await Promise.all([startCluster(), startRegistry({ tls: true, tokenAuth: true })]);
    const kubeconfig = await installController(cluster, dir);
    ctrl = await startControllerProcess({ kubeconfig, dir });
  });
  after(async () => {
    await ctrl?.stop();
    await Promise.all([cluster?.stop(), reg?.stop()]);
  });

  const reconciledLines = (name: string) => ctrl.logs().filter((l) => l.msg === 'reconciled' && l.ocirepository === `default/${name}`);

  test('an unchanged artifact costs one manifest HEAD per reconcile and no new token', async () => {
    await pushTarGzArtifact(reg, 'steady/app', 'v1', { 'a.txt': 'a' });
    await cluster.kubectlOk(['create', 'secret', 'generic', 'ca', `--from-literal=ca.crt=${reg.caPem}`]);
    await cluster.kubectlOk(['create', 'secret', 'docker-registry', 'creds', `--docker-server=${reg.host}`, `--docker-username=${reg.username}`, `--docker-password=${reg.password}`]);
    await applyRepo(cluster, { metadata: { name: 'steady', namespace: 'default' }, spec: { url: `oci://${reg.host}/steady/app`, interval: '1h', ref: { tag: 'v1' }, certSecretRef: { name: 'ca' }, secretRef: { name: 'creds' } } });
    await waitRepo(cluster, 'default', 'steady', ready, 'Ready');
    const tokens = reg.tokenRequests!();
    for (let i = 0; i < 3; i++) {
      const n = reconciledLines('steady').length;
      await cluster.kubectlOk(['annotate', '--overwrite', 'ocirepository/steady', `reconcile.ocisource.dev/requestedAt=steady-${i}`]);
      await waitRepo(cluster, 'default', 'steady', (o) => o.status?.lastHandledReconcileAt === `steady-${i}` && reconciledLines('steady').length > n, 'reconciled');
    }
    const counts = reconciledLines('steady').map((l) => l.registryRequests);
    assert.deepEqual(counts.slice(-3), [1, 1, 1], `registry requests per reconcile: ${counts.join(', ')}`);
    assert.equal(reg.tokenRequests!() - tokens, 0, 'tokens are reused across reconciles');
  });

  test('issue 8: the controller keeps one connection pool while its TLS Secret is rotated', async () => {
    await waitRepo(cluster, 'default', 'steady', ready, 'Ready');
    for (let i = 0; i < 4; i++) {
      const n = reconciledLines('steady').length;
      const secret = await cluster.kubectlOk(['create', 'secret', 'generic', 'ca', `--from-literal=ca.crt=${reg.caPem}${'\n'.repeat(i + 1)}`, '--dry-run=client', '-o', 'json']);
      await cluster.kubectlOk(['apply', '-f', '-'], { input: secret });
      // The Secret watch re-triggers the object; wait for the reconcile that used the new bundle.
      const deadline = Date.now() + 30_000;
      while (reconciledLines('steady').length <= n) {
        if (Date.now() > deadline) throw new Error(`no reconcile after rotation ${i}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const metrics = await (await fetch(`http://127.0.0.1:${ctrl.metricsPort}/metrics`)).text();
    assert.match(metrics, /^ocisource_registry_connection_pools 1$/m, metrics.split('\n').filter((l) => l.includes('pools')).join('\n'));
    assert.match(metrics, /^ocisource_event_loop_delay_seconds\{quantile="1"\} [\d.e-]+$/m);
  });

  test('registry outage: Ready=False with the reason, last artifact still served', async () => {
    const o = await waitRepo(cluster, 'default', 'steady', ready, 'Ready');
    const url = o.status!.artifact!.url;
    await reg.stop();
    await cluster.kubectlOk(['annotate', '--overwrite', 'ocirepository/steady', 'reconcile.ocisource.dev/requestedAt=outage']);
    const down = await waitRepo(cluster, 'default', 'steady', (x) => cond(x, 'Ready')?.status === 'False', 'Ready=False');
    assert.equal(cond(down, 'Ready')?.reason, 'OCIArtifactPullFailed');
    assert.match(cond(down, 'Ready')!.message, /connection refused/);
    assert.equal(down.status?.artifact?.revision, o.status?.artifact?.revision);
    const res = await fetch(url);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });
});
