// Flux ExternalArtifacts end to end: real etcd + kube-apiserver with Flux's own CRDs from
// ../shared/vectors/flux (so every write is validated by Flux's schema), a real docker-registry,
// the controller as a separate process with the RBAC we ship, and every artifact consumed the way
// Flux's fetcher does (download the url, check the digest, extract skipping symlinks, 404 = not
// ready). Signatures: cosign key signatures and Notation JWS with CA chains made here.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { makeTempDir, pushTarGzArtifact, startCluster, startRegistry, type Cluster, type PushedArtifact, type Registry } from '../harness/index.ts';
import { applyRepo, cond, getRepo, installController, ready, startControllerProcess, waitRepo, type Cond, type ControllerProcess } from '../helpers/controller-env.ts';
import { generateKey, signLegacy, type TestKey } from '../helpers/cosign-sign.ts';
import { ArtifactNotFoundError, fetchLikeFlux } from '../helpers/flux-fetch.ts';
import { issue, pem, signJWS, type Issued } from '../helpers/notation-sign.ts';
import { pushCosignSig, pushReferrer } from '../helpers/push-signatures.ts';
import { projectRoot, vectorPath } from '../helpers/shared.ts';
import { EKU } from '../../src/verify/x509/certs.ts';

const NS = 'default';
const EA_PATH = `/apis/source.toolkit.fluxcd.io/v1/namespaces/${NS}/externalartifacts`;

interface EA {
  metadata: { name: string; uid: string; resourceVersion: string; labels?: Record<string, string>; ownerReferences?: Record<string, unknown>[] };
  spec: { sourceRef: Record<string, string> };
  status?: { artifact?: { url: string; digest: string; revision: string; path: string; size?: number; lastUpdateTime: string; metadata?: Record<string, string> }; conditions?: Cond[] };
}

const eaCond = (ea: EA | null, type: string) => ea?.status?.conditions?.find((c) => c.type === type);

describe('Flux ExternalArtifact publishing', { timeout: 900_000 }, () => {
  let cluster: Cluster;
  let reg: Registry;
  let ctrl: ControllerProcess;
  let kubeconfig: string;
  const dir = makeTempDir('osc-flux-e2e-');
  let fetches = 0;

  async function getEA(name: string): Promise<EA | null> {
    const r = await cluster.request<EA>('GET', `${EA_PATH}/${name}`);
    return r.status === 200 ? r.body : null;
  }
  async function waitEA(name: string, pred: (ea: EA | null) => boolean, what: string, before?: () => Promise<void>): Promise<EA | null> {
    const deadline = Date.now() + 60_000;
    let last: EA | null = null;
    while (Date.now() < deadline) {
      await before?.();
      last = await getEA(name);
      if (pred(last)) return last;
      await new Promise((r) => setTimeout(r, 150));
    }
    throw new Error(`timed out waiting for ExternalArtifact ${name}: ${what}; last: ${JSON.stringify(last, null, 2)}`);
  }
  const requestReconcile = (name: string) => cluster.kubectlOk(['annotate', '--overwrite', `ocirepository/${name}`, `reconcile.ocisource.dev/requestedAt=${Date.now()}-${Math.random()}`]);
  /** Fetches as kustomize-controller does and returns the extracted files' contents. */
  async function consume(ea: EA | null): Promise<Record<string, string>> {
    const a = ea!.status!.artifact!;
    const out = path.join(dir, 'flux', `${++fetches}`);
    const got = await fetchLikeFlux(a.url, a.digest, out);
    return Object.fromEntries(got.files.map((f) => [f, readFileSync(path.join(out, f), 'utf8')]));
  }
  const published = (revision: string) => (ea: EA | null) => ea?.status?.artifact?.revision === revision && eaCond(ea, 'Ready')?.status === 'True';

  before(async () => {
    [cluster, reg] = await Promise.all([startCluster(), startRegistry()]);
    kubeconfig = await installController(cluster, dir);
    // Started before Flux's CRDs exist: the first test proves re-discovery.
    ctrl = await startControllerProcess({ kubeconfig, dir, extraArgs: ['--external-artifact-discovery-interval', '300ms'] });
  });
  after(async () => {
    await ctrl?.stop();
    await Promise.all([cluster?.stop(), reg?.stop()]);
  });

  test('the ExternalArtifact API installed after the controller is discovered; the artifact fits Flux\'s schema and is consumable', async () => {
    const v1 = await pushTarGzArtifact(reg, 'app/plain', 'v1', { 'deploy.yaml': 'kind: ConfigMap\n', 'nested/b.yaml': 'kind: Secret\n' }, { annotations: { 'org.opencontainers.image.revision': 'main@sha1:abc' } });
    await applyRepo(cluster, { metadata: { name: 'plain', namespace: NS }, spec: { url: `oci://${reg.host}/app/plain`, interval: '1h', insecure: true, ref: { tag: 'v1' } } });
    const before = await waitRepo(cluster, NS, 'plain', ready, 'Ready');
    assert.equal(cond(before, 'ExternalArtifactPublished'), undefined, 'nothing to publish to without the API');

    // The Kustomization CRD carries CEL rules 1.20 does not know: client-side validation must be off.
    await cluster.kubectlOk(['apply', '--validate=false', '-f', vectorPath('flux', 'source.toolkit.fluxcd.io_externalartifacts.yaml'), '-f', vectorPath('flux', 'kustomize.toolkit.fluxcd.io_kustomizations.yaml')]);
    await cluster.kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd/externalartifacts.source.toolkit.fluxcd.io', 'crd/kustomizations.kustomize.toolkit.fluxcd.io']);

    const ea = await waitEA('plain', published(`v1@${v1.manifestDigest}`), 'published');
    const repo = await waitRepo(cluster, NS, 'plain', (o) => cond(o, 'ExternalArtifactPublished')?.status === 'True', 'publication condition');
    // Flux's schema kept every field we wrote (a structural schema silently prunes unknown ones).
    assert.deepEqual(ea!.status!.artifact, repo.status!.artifact);
    assert.deepEqual(ea!.spec.sourceRef, { apiVersion: 'source.ocisource.dev/v1', kind: 'OCIRepository', name: 'plain' });
    assert.deepEqual(ea!.metadata.ownerReferences, [{ apiVersion: 'source.ocisource.dev/v1', kind: 'OCIRepository', name: 'plain', uid: (await cluster.request<{ metadata: { uid: string } }>('GET', `/apis/source.ocisource.dev/v1/namespaces/${NS}/ocirepositories/plain`)).body.metadata.uid, controller: true, blockOwnerDeletion: true }]);
    assert.equal(ea!.metadata.labels?.['app.kubernetes.io/managed-by'], 'oci-source-controller');
    assert.equal(eaCond(ea, 'Ready')?.message, `stored artifact for revision 'v1@${v1.manifestDigest}'`);
    assert.equal(eaCond(ea, 'SourceVerified'), undefined, 'no spec.verify, no SourceVerified');
    assert.equal(cond(repo, 'ExternalArtifactPublished')?.message, `ExternalArtifact ${NS}/plain holds revision 'v1@${v1.manifestDigest}'`);
    assert.deepEqual(await consume(ea), { 'deploy.yaml': 'kind: ConfigMap\n', 'nested/b.yaml': 'kind: Secret\n' });

    // Unchanged source: reconciles write nothing to the ExternalArtifact.
    const marker = `${Date.now()}`;
    await cluster.kubectlOk(['annotate', '--overwrite', 'ocirepository/plain', `reconcile.ocisource.dev/requestedAt=${marker}`]);
    await waitRepo(cluster, NS, 'plain', (o) => o.status?.lastHandledReconcileAt === marker, 'reconcile handled');
    assert.equal((await getEA('plain'))!.metadata.resourceVersion, ea!.metadata.resourceVersion);

    // Copy mode serves the layer as pushed; Flux's fetcher skips the symlink in it.
    const layer = await tarWithSymlink();
    const linked = await pushTarGzArtifact(reg, 'app/linked', 'v1', {}, { layer });
    await applyRepo(cluster, { metadata: { name: 'linked', namespace: NS }, spec: { url: `oci://${reg.host}/app/linked`, interval: '1h', insecure: true, ref: { tag: 'v1' }, layerSelector: { mediaType: 'application/vnd.cncf.flux.content.v1.tar+gzip', operation: 'copy' } } });
    const lea = await waitEA('linked', published(`v1@${linked.manifestDigest}`), 'published');
    const got = await fetchLikeFlux(lea!.status!.artifact!.url, lea!.status!.artifact!.digest, path.join(dir, 'flux', 'linked'));
    assert.deepEqual(got.files, ['app.yaml']);
    assert.deepEqual(got.skippedSymlinks, ['passwd']);
    assert.equal(existsSync(path.join(dir, 'flux', 'linked', 'passwd')), false);
  });

  test('cosign: follows new verified revisions; an unverified or failed newer revision never reaches it', async () => {
    const key = generateKey('p256');
    const signed = async (files: Record<string, string>, k: TestKey = key): Promise<PushedArtifact> => {
      const a = await pushTarGzArtifact(reg, 'app/signed', 'stable', files);
      await pushCosignSig(reg, 'app/signed', a.manifestDigest, [signLegacy(k, a.manifestDigest)]);
      return a;
    };
    await cluster.kubectlOk(['create', 'secret', 'generic', 'cosign-keys', `--from-literal=cosign.pub=${key.pubPem}`]);
    const v1 = await signed({ 'app.yaml': 'version: 1\n' });
    const spec = { url: `oci://${reg.host}/app/signed`, interval: '1h', insecure: true, ref: { tag: 'stable' }, verify: { provider: 'cosign', secretRef: { name: 'cosign-keys' } } };
    await applyRepo(cluster, { metadata: { name: 'signed', namespace: NS }, spec });
    let ea = await waitEA('signed', published(`stable@${v1.manifestDigest}`), 'v1 published');
    assert.equal(eaCond(ea, 'SourceVerified')?.status, 'True');
    assert.match(eaCond(ea, 'SourceVerified')!.message, new RegExp(`^verified signature of revision stable@${v1.manifestDigest}: cosign`));
    assert.deepEqual(await consume(ea), { 'app.yaml': 'version: 1\n' });

    const v2 = await signed({ 'app.yaml': 'version: 2\n' });
    await requestReconcile('signed');
    ea = await waitEA('signed', published(`stable@${v2.manifestDigest}`), 'v2 published');
    assert.deepEqual(await consume(ea), { 'app.yaml': 'version: 2\n' });

    // Unsigned v3, then v4 signed by a key nobody trusts: refused; Flux keeps getting v2.
    for (const [files, k] of [[{ 'app.yaml': 'version: 3\n' }, undefined], [{ 'app.yaml': 'version: 4\n' }, generateKey('p256')]] as const) {
      const bad = k ? await signed(files, k) : await pushTarGzArtifact(reg, 'app/signed', 'stable', files);
      await requestReconcile('signed');
      await waitRepo(cluster, NS, 'signed', (o) => cond(o, 'SourceVerified')?.status === 'False' && cond(o, 'Ready')!.message.includes(bad.manifestDigest), 'rejected');
      // Retries of the previous failure can see the tag moved before its signature lands, so the
      // object's message may still change once: compare with its latest word, not a snapshot.
      let repoMessage = '';
      ea = await waitEA('signed', (x) => eaCond(x, 'Ready')?.status === 'False' && eaCond(x, 'Ready')!.message === repoMessage, 'Ready False with the object\'s message', async () => {
        repoMessage = cond(await getRepo(cluster, NS, 'signed'), 'Ready')?.message ?? '';
      });
      assert.ok(repoMessage.includes(bad.manifestDigest), repoMessage);
      assert.equal(ea!.status!.artifact!.revision, `stable@${v2.manifestDigest}`);
      assert.equal(eaCond(ea, 'Ready')?.reason, 'VerificationFailed');
      assert.equal(eaCond(ea, 'SourceVerified')?.status, 'True');
      assert.deepEqual(await consume(ea), { 'app.yaml': 'version: 2\n' });
    }

    // A fetch failure: same, with reason FetchFailed.
    await applyRepo(cluster, { metadata: { name: 'signed', namespace: NS }, spec: { ...spec, ref: { tag: 'missing' } } });
    ea = await waitEA('signed', (x) => eaCond(x, 'Ready')?.reason === 'FetchFailed', 'FetchFailed');
    assert.match(eaCond(ea, 'Ready')!.message, /tag missing not found/);
    assert.equal(ea!.status!.artifact!.revision, `stable@${v2.manifestDigest}`);

    // Someone points our ExternalArtifact elsewhere: put right at once.
    const forged = { ...ea!, status: { ...ea!.status, artifact: { ...ea!.status!.artifact!, revision: `stable@${v1.manifestDigest}`, url: 'http://127.0.0.1:1/evil.tar.gz' } } };
    assert.equal((await cluster.request('PUT', `${EA_PATH}/signed/status`, { body: forged })).status, 200);
    ea = await waitEA('signed', (x) => x?.status?.artifact?.revision === `stable@${v2.manifestDigest}` && !x.status.artifact.url.includes('evil'), 'repaired');
    assert.deepEqual(await consume(ea), { 'app.yaml': 'version: 2\n' });
  });

  test('notation: audit stores a revision but never publishes it; the published artifact survives storage GC', async () => {
    const root = await issue({ subject: 'CN=Acme Root,O=Acme,ST=WA,C=US', ca: true });
    const leaf = await issue({ subject: 'CN=signer,O=Acme,ST=WA,C=US', issuer: root, eku: [EKU.codeSigning] });
    const otherRoot = await issue({ subject: 'CN=Other Root,O=Other,ST=WA,C=US', ca: true });
    const otherLeaf = await issue({ subject: 'CN=other,O=Other,ST=WA,C=US', issuer: otherRoot, eku: [EKU.codeSigning] });
    const push = async (repo: string, files: Record<string, string>, chain: Issued[]): Promise<PushedArtifact> => {
      const a = await pushTarGzArtifact(reg, repo, 'stable', files);
      const subject = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: a.manifestDigest, size: a.manifestBytes.length };
      await pushReferrer(reg, repo, subject, 'application/vnd.cncf.notary.signature', await signJWS({ target: subject, chain, alg: 'ES256' }), 'application/jose+json');
      return a;
    };
    const policy = JSON.stringify({ version: '1.0', trustPolicies: [{ name: 'audit', registryScopes: ['*'], signatureVerification: { level: 'audit' }, trustStores: ['ca:acme'], trustedIdentities: ['*'] }] });
    await cluster.kubectlOk(['create', 'secret', 'generic', 'notation-audit', `--from-literal=trustpolicy.json=${policy}`, `--from-literal=ca.acme.pem=${pem(root).toString()}`]);
    const spec = (repo: string) => ({ url: `oci://${reg.host}/${repo}`, interval: '1h', insecure: true, ref: { tag: 'stable' }, verify: { provider: 'notation', secretRef: { name: 'notation-audit' } } });

    const v1 = await push('app/notary', { 'app.yaml': 'version: 1\n' }, [leaf, root]);
    await applyRepo(cluster, { metadata: { name: 'notary', namespace: NS }, spec: spec('app/notary') });
    const ea1 = await waitEA('notary', published(`stable@${v1.manifestDigest}`), 'v1 published');
    assert.match(eaCond(ea1, 'SourceVerified')!.message, /notation JWS signature .* by "CN=signer,O=Acme,ST=WA,C=US"/);

    // v2 and v3 by an untrusted CA: audit stores them (our status.artifact moves on), Flux never sees them.
    const objDir = path.join(ctrl.storagePath, 'ocirepository', NS, 'notary');
    const v2 = await push('app/notary', { 'app.yaml': 'version: 2\n' }, [otherLeaf, otherRoot]);
    await requestReconcile('notary');
    await waitRepo(cluster, NS, 'notary', (o) => o.status?.artifact?.revision === `stable@${v2.manifestDigest}`, 'v2 stored');
    const v3 = await push('app/notary', { 'app.yaml': 'version: 3\n' }, [otherLeaf, otherRoot]);
    await requestReconcile('notary');
    const repo = await waitRepo(cluster, NS, 'notary', (o) => o.status?.artifact?.revision === `stable@${v3.manifestDigest}`, 'v3 stored');
    assert.equal(cond(repo, 'SourceVerified')?.reason, 'VerificationAudited');
    const ea = await waitEA('notary', (x) => eaCond(x, 'Ready')?.status === 'False', 'Ready False');
    assert.equal(ea!.status!.artifact!.revision, `stable@${v1.manifestDigest}`);
    assert.equal(eaCond(ea, 'Ready')?.reason, 'VerificationFailed');
    assert.equal(eaCond(ea, 'Ready')?.message, cond(repo, 'SourceVerified')?.message);
    // Two artifact records are kept: the current one (v3) and the published one (v1); v2 went.
    const files = readdirSync(objDir).filter((f) => f.startsWith('sha256:')).sort();
    assert.deepEqual(files, [`${v1.manifestDigest}.tar.gz`, `${v3.manifestDigest}.tar.gz`].sort());
    assert.deepEqual(await consume(ea), { 'app.yaml': 'version: 1\n' });

    // After a restart the controller recalls what it published (the file is in its storage with
    // that digest) before any reconcile: GC keeps it and the ExternalArtifact stays on v1.
    await ctrl.stop();
    ctrl = await startControllerProcess({ kubeconfig, dir, storagePath: ctrl.storagePath, storagePort: ctrl.storagePort, extraArgs: ['--external-artifact-discovery-interval', '300ms'] });
    const marker = `${Date.now()}`;
    await cluster.kubectlOk(['annotate', '--overwrite', 'ocirepository/notary', `reconcile.ocisource.dev/requestedAt=${marker}`]);
    await waitRepo(cluster, NS, 'notary', (o) => o.status?.lastHandledReconcileAt === marker, 'reconciled after restart');
    const kept = await getEA('notary');
    assert.equal(kept!.status!.artifact!.revision, `stable@${v1.manifestDigest}`);
    assert.ok(existsSync(path.join(objDir, `${v1.manifestDigest}.tar.gz`)));
    assert.deepEqual(await consume(kept), { 'app.yaml': 'version: 1\n' });

    // Only ever audited: the ExternalArtifact exists but holds nothing, and says why.
    const a = await push('app/audited', { 'app.yaml': 'x\n' }, [otherLeaf, otherRoot]);
    await applyRepo(cluster, { metadata: { name: 'audited', namespace: NS }, spec: spec('app/audited') });
    await waitRepo(cluster, NS, 'audited', (o) => o.status?.artifact?.revision === `stable@${a.manifestDigest}`, 'stored under audit');
    const none = await waitEA('audited', (x) => eaCond(x, 'Ready')?.reason === 'VerificationFailed', 'not published');
    assert.equal(none!.status!.artifact, undefined);
    assert.match(eaCond(none, 'Ready')!.message, /is not authenticated; stored because the trust policy only audits/);
  });

  test('a conflicting ExternalArtifact is left alone; a deleted one is re-created; deleting the source removes ours', async () => {
    const taken = { apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'ExternalArtifact', metadata: { name: 'taken', namespace: NS }, spec: { sourceRef: { apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'GitRepository', name: 'other' } } };
    assert.equal((await cluster.request('POST', EA_PATH, { body: taken })).status, 201);
    const before = await getEA('taken');
    await pushTarGzArtifact(reg, 'app/taken', 'v1', { 'a.yaml': 'a\n' });
    await applyRepo(cluster, { metadata: { name: 'taken', namespace: NS }, spec: { url: `oci://${reg.host}/app/taken`, interval: '1h', insecure: true, ref: { tag: 'v1' } } });
    const repo = await waitRepo(cluster, NS, 'taken', (o) => cond(o, 'ExternalArtifactPublished')?.status === 'False', 'conflict');
    assert.equal(cond(repo, 'ExternalArtifactPublished')?.reason, 'ExternalArtifactConflict');
    assert.match(cond(repo, 'ExternalArtifactPublished')!.message, /already exists with sourceRef source\.toolkit\.fluxcd\.io\/v1 GitRepository other; it is left alone/);
    assert.equal(cond(repo, 'Ready')?.status, 'True', 'our own artifact is fine');
    const events = await cluster.request<{ items: { reason: string; type: string; message: string }[] }>('GET', `/api/v1/namespaces/${NS}/events?fieldSelector=involvedObject.name=taken`);
    assert.ok(events.body.items.some((e) => e.reason === 'ExternalArtifactConflict' && e.type === 'Warning'), JSON.stringify(events.body.items));
    assert.equal((await getEA('taken'))!.metadata.resourceVersion, before!.metadata.resourceVersion);

    // Deleted by hand: ours is re-created.
    const plain = await getEA('plain');
    assert.equal((await cluster.request('DELETE', `${EA_PATH}/plain`)).status, 200);
    const again = await waitEA('plain', (x) => !!x && x.metadata.uid !== plain!.metadata.uid && !!x.status?.artifact, 're-created');
    assert.equal(again!.status!.artifact!.revision, plain!.status!.artifact!.revision);

    // Deleting the sources: ours goes with its OCIRepository (finalizer), the conflicting one stays.
    const signed = (await getEA('signed'))!.status!.artifact!;
    await cluster.kubectlOk(['delete', 'ocirepository/signed', 'ocirepository/taken', '--wait=true', '--timeout=30s']);
    assert.equal(await getEA('signed'), null);
    assert.equal((await getEA('taken'))!.metadata.resourceVersion, before!.metadata.resourceVersion);
    await assert.rejects(fetchLikeFlux(signed.url, signed.digest, path.join(dir, 'flux', 'gone')), ArtifactNotFoundError);
  });

  test('--publish-external-artifacts=false removes ours, leaves others alone, and drops the condition', async () => {
    const ours = ['plain', 'linked', 'notary', 'audited'];
    for (const n of ours) assert.ok(await getEA(n), n);
    await ctrl.stop();
    ctrl = await startControllerProcess({ kubeconfig, dir, storagePath: ctrl.storagePath, extraArgs: ['--publish-external-artifacts=false'] });
    for (const n of ours) await waitEA(n, (x) => x === null, 'removed');
    assert.ok(await getEA('taken'), 'not ours: left alone');
    const repo = await waitRepo(cluster, NS, 'plain', (o) => !cond(o, 'ExternalArtifactPublished'), 'condition dropped');
    assert.equal(cond(repo, 'Ready')?.status, 'True');
  });

  test('the samples and config/default apply and fit together', async () => {
    await cluster.kubectlOk(['apply', '-k', path.join(projectRoot, 'config/samples')]);
    const flux = YAML.parseAllDocuments(await cluster.kubectlOk(['kustomize', path.join(projectRoot, 'config/samples/flux')])).map((d) => d.toJSON() as { apiVersion: string; kind: string; metadata: { name: string }; spec: Record<string, any> });
    const helmRelease = flux.find((d) => d.kind === 'HelmRelease')!;
    // helm-controller's HelmRelease CRD is not among the vectors: every other object goes to the API server.
    await cluster.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: flux.filter((x) => x.kind !== 'HelmRelease') }) });
    const ks = await cluster.request<{ spec: { sourceRef: { kind: string; name: string } } }>('GET', `/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/${NS}/kustomizations/podinfo-signed`);
    assert.equal(ks.status, 200);
    assert.deepEqual(ks.body.spec.sourceRef, { kind: 'ExternalArtifact', name: 'podinfo-signed' });
    assert.ok(await getRepo(cluster, NS, 'podinfo-signed'), 'the Kustomization consumes an OCIRepository sample');
    const chart = flux.find((d) => d.kind === 'OCIRepository')!;
    assert.ok(await getRepo(cluster, NS, chart.metadata.name));
    assert.deepEqual(chart.spec.layerSelector, { mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip', operation: 'copy' });
    assert.ok(chart.spec.verify);
    assert.equal(helmRelease.apiVersion, 'helm.toolkit.fluxcd.io/v2');
    assert.deepEqual(helmRelease.spec.chartRef, { kind: 'ExternalArtifact', name: chart.metadata.name });

    // config/default: artifact URLs name the Service's cluster DNS name and port; the NetworkPolicy
    // admits that port from flux-system and selects the controller's pods.
    const all = YAML.parseAllDocuments(await cluster.kubectlOk(['kustomize', path.join(projectRoot, 'config/default')])).map((d) => d.toJSON() as { kind: string; metadata: { name: string; namespace?: string }; spec: any });
    const deploy = all.find((d) => d.kind === 'Deployment')!;
    const svc = all.find((d) => d.kind === 'Service')!;
    const np = all.find((d) => d.kind === 'NetworkPolicy')!;
    const container = deploy.spec.template.spec.containers[0];
    const arg = (flag: string) => (container.args as string[]).find((a) => a.startsWith(`${flag}=`))?.slice(flag.length + 1);
    assert.equal(svc.metadata.namespace, deploy.metadata.namespace);
    assert.equal(arg('--storage-adv-addr'), `${svc.metadata.name}.$(RUNTIME_NAMESPACE).svc.cluster.local.`);
    assert.ok(container.env.some((e: any) => e.name === 'RUNTIME_NAMESPACE' && e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace'));
    const port = container.ports.find((p: any) => p.name === svc.spec.ports[0].targetPort);
    assert.equal(svc.spec.ports[0].port, 80, 'advertised without a port: plain http on 80');
    assert.equal(String(port.containerPort), arg('--storage-addr')!.split(':').pop());
    assert.deepEqual(np.spec.podSelector.matchLabels, deploy.spec.template.metadata.labels);
    assert.deepEqual(np.spec.ingress[0], { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'flux-system' } } }], ports: [{ port: port.name, protocol: 'TCP' }] });
    await cluster.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(np) });
  });
});

/** A layer with a regular file and a symlink pointing out of the tree. */
async function tarWithSymlink(): Promise<Buffer> {
  const { gzipSync } = await import('node:zlib');
  const tar = (await import('tar-stream')).default;
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(Buffer.from(c as Uint8Array));
  })();
  pack.entry({ name: 'app.yaml', mode: 0o644, mtime: new Date(0) }, 'kind: ConfigMap\n');
  pack.entry({ name: 'passwd', type: 'symlink', linkname: '/etc/passwd', mtime: new Date(0) });
  pack.finalize();
  await done;
  return gzipSync(Buffer.concat(chunks));
}
