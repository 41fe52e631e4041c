// Proves the integration-test harness against the real components: kube-apiserver + etcd,
// docker-registry in every auth/TLS variant, the token issuer, and the test pusher.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { vectorPath } from '../helpers/shared.ts';
import {
  getBlob,
  getManifest,
  deleteTag,
  listTags,
  pushOciLayout,
  pushTarGzArtifact,
  sha256Digest,
  startCluster,
  startRegistry,
  type Cluster,
  type Registry,
} from '../harness/index.ts';

describe('kube cluster', () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await startCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  it('lets admin create and get a ConfigMap, and forbids the controller user', async () => {
    const cm = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'harness-check', namespace: 'default' },
      data: { hello: 'world' },
    };
    const created = await cluster.kubectl(['apply', '-f', '-'], { input: JSON.stringify(cm) });
    assert.equal(created.code, 0, created.stderr);

    const got = JSON.parse(await cluster.kubectlOk(['get', 'configmap', 'harness-check', '-n', 'default', '-o', 'json'])) as {
      data: Record<string, string>;
    };
    assert.deepEqual(got.data, { hello: 'world' });

    const viaRest = await cluster.request<{ data: Record<string, string> }>('GET', '/api/v1/namespaces/default/configmaps/harness-check');
    assert.equal(viaRest.status, 200);
    assert.equal(viaRest.body.data['hello'], 'world');

    const denied = await cluster.request('GET', '/api/v1/namespaces/default/configmaps/harness-check', {
      token: cluster.controllerToken,
    });
    assert.equal(denied.status, 403, denied.text);

    const deniedCli = await cluster.kubectl(['get', 'configmap', 'harness-check', '-n', 'default'], {
      token: cluster.controllerToken,
    });
    assert.notEqual(deniedCli.code, 0);
    assert.match(deniedCli.stderr, /forbidden/i);
  });

  // A custom-resource create is what crashed builds without the reflect2/json-iterator fix.
  it('serves custom resources (CRD with defaulting)', async () => {
    const crd = {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'widgets.harness.osc.test' },
      spec: {
        group: 'harness.osc.test',
        scope: 'Namespaced',
        names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
        versions: [
          {
            name: 'v1',
            served: true,
            storage: true,
            subresources: { status: {} },
            schema: {
              openAPIV3Schema: {
                type: 'object',
                properties: {
                  spec: { type: 'object', properties: { size: { type: 'integer', default: 3 } } },
                  status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
                },
              },
            },
          },
        ],
      },
    };
    await cluster.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(crd) });
    await cluster.kubectlOk(['wait', '--for=condition=Established', 'crd/widgets.harness.osc.test', '--timeout=60s']);
    await cluster.kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'harness.osc.test/v1', kind: 'Widget', metadata: { name: 'w1', namespace: 'default' }, spec: {} }),
    });
    const w = await cluster.request<{ spec: { size: number } }>('GET', '/apis/harness.osc.test/v1/namespaces/default/widgets/w1');
    assert.equal(w.status, 200, w.text);
    assert.equal(w.body.spec.size, 3);
  });
});

const files = { 'deploy/app.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\n' };

async function checkArtifactRoundTrip(reg: Registry, expectAnonymous: 200 | 401): Promise<void> {
  const pushed = await pushTarGzArtifact(reg, 'demo/app', 'v1.0.0', files, {
    annotations: { 'org.opencontainers.image.revision': 'main@sha1:0123' },
  });
  assert.equal(pushed.manifestDigest, sha256Digest(pushed.manifestBytes));

  const got = await getManifest(reg, 'demo/app', 'v1.0.0');
  assert.equal(got.status, 200);
  assert.equal(got.digest, pushed.manifestDigest);
  assert.ok(got.bytes.equals(pushed.manifestBytes));
  assert.equal(got.mediaType, 'application/vnd.oci.image.manifest.v1+json');

  const layer = await getBlob(reg, 'demo/app', pushed.layerDigest);
  assert.equal(sha256Digest(layer), pushed.layerDigest);

  const anon = await getManifest(reg, 'demo/app', 'v1.0.0', { anonymous: true });
  assert.equal(anon.status, expectAnonymous);
}

describe('registry', () => {
  const started: Registry[] = [];
  after(async () => {
    for (const r of started) await r.stop();
  });
  const start = async (...args: Parameters<typeof startRegistry>): Promise<Registry> => {
    const r = await startRegistry(...args);
    started.push(r);
    return r;
  };

  it('plain http: push a tar.gz artifact and read it back', async () => {
    const reg = await start();
    assert.match(reg.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    await checkArtifactRoundTrip(reg, 200);
    assert.deepEqual(await listTags(reg, 'demo/app'), ['v1.0.0']);
    assert.ok(await deleteTag(reg, 'demo/app', 'v1.0.0'));
    assert.equal((await getManifest(reg, 'demo/app', 'v1.0.0')).status, 404);
  });

  it('tls: served with a certificate from the test CA', async () => {
    const reg = await start({ tls: true });
    assert.match(reg.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(reg.caFile && existsSync(reg.caFile));
    assert.match(reg.caPem ?? '', /BEGIN CERTIFICATE/);
    await checkArtifactRoundTrip(reg, 200);
    // Without the CA the certificate is not trusted.
    await assert.rejects(getManifest({ host: reg.host, url: reg.url }, 'demo/app', 'v1.0.0'), /self[- ]signed|unable to verify|certificate/i);
  });

  it('mtls: client certificate required', async () => {
    const reg = await start({ mtls: true });
    assert.ok(reg.clientCert && reg.clientCertPem);
    await checkArtifactRoundTrip(reg, 200);
    await assert.rejects(getManifest({ host: reg.host, url: reg.url, caPem: reg.caPem }, 'demo/app', 'v1.0.0'));
  });

  it('htpasswd over tls: Basic auth required', async () => {
    const reg = await start({ tls: true, htpasswd: { user: 'alice', password: 's3cret' } });
    assert.equal(reg.username, 'alice');
    await checkArtifactRoundTrip(reg, 401);
    const wrong = await getManifest(reg.endpoint({ username: 'alice', password: 'nope' }), 'demo/app', 'v1.0.0');
    assert.equal(wrong.status, 401);
  });

  it('token auth: bearer tokens from the issuer, counted', async () => {
    const reg = await start({ tokenAuth: true });
    assert.ok(reg.tokenRequests && reg.token);
    assert.equal(reg.tokenRequests(), 0);
    await checkArtifactRoundTrip(reg, 401);
    const issued = reg.tokenRequests();
    assert.ok(issued >= 2, `expected push and pull tokens, got ${issued}`);
    // Cached tokens are reused: another read of the same scope issues no new token.
    await getManifest(reg, 'demo/app', 'v1.0.0');
    assert.equal(reg.tokenRequests(), issued);
    // A fresh client endpoint (empty cache) gets one new token.
    const again = await getManifest(reg.endpoint(), 'demo/app', 'v1.0.0');
    assert.equal(again.status, 200);
    assert.equal(reg.tokenRequests(), issued + 1);
    const grants = reg.tokenGrants?.() ?? [];
    assert.ok(grants.some((g) => g.access.some((a) => a.name === 'demo/app' && a.actions.includes('push'))));
    // Wrong credentials: the issuer refuses.
    await assert.rejects(getManifest(reg.endpoint({ username: 'testuser', password: 'bad' }), 'demo/app', 'v1.0.0'), /401/);
  });

  it('pushes a notation OCI layout with its sha256-<hex> referrers tag', async () => {
    const layout = vectorPath('notation', 'notation', 'test', 'e2e', 'testdata', 'registry', 'oci_layout', 'e2e-valid-signature');
    const reg = await start();
    const res = await pushOciLayout(reg, layout, 'notation/e2e', 'latest');
    const subject = 'sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9';
    assert.equal(res.mainDigest, subject);
    assert.equal(res.tags['v1'], subject);
    const referrersTag = `sha256-${subject.slice('sha256:'.length)}`;
    assert.ok(res.tags[referrersTag]);

    const idx = await getManifest(reg, 'notation/e2e', referrersTag);
    assert.equal(idx.status, 200);
    assert.equal(idx.mediaType, 'application/vnd.oci.image.index.v1+json');
    const index = JSON.parse(idx.bytes.toString()) as { manifests: Array<{ digest: string; artifactType?: string }> };
    assert.ok(index.manifests.length >= 1);
    for (const m of index.manifests) {
      const sig = await getManifest(reg, 'notation/e2e', m.digest);
      assert.equal(sig.status, 200);
      assert.equal(sig.digest, m.digest);
      const body = JSON.parse(sig.bytes.toString()) as { subject?: { digest: string } };
      assert.equal(body.subject?.digest, subject);
    }
    const tags = await listTags(reg, 'notation/e2e');
    assert.deepEqual([...tags].sort(), ['latest', referrersTag, 'v1'].sort());
    assert.equal((await getManifest(reg, 'notation/e2e', 'latest')).digest, subject);
  });
});
