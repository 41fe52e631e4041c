// Workload identity end to end (issue 9): a real kube-apiserver mints every Kubernetes token
// (projected-token files for controller-level identity, TokenRequest for object-level), the
// controller runs as its own process with the shipped RBAC, trusts the stand-ins' CA through
// NODE_EXTRA_CA_CERTS and resolves the cloud host names to 127.0.0.1 through a preload, and
// pulls cosign-signed artifacts from real docker-registries behind ACR, ECR and Artifact
// Registry stand-ins. Three controller processes shard the objects by label:
//   a: ObjectLevelWorkloadIdentity on; Azure workload identity, IRSA and the GKE metadata server
//   b: gate off; EKS Pod Identity
//   c: gate on with --default-service-account (multi-tenant lock-down)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { makeTempDir, pushTarGzArtifact, removeTempDir, startCluster, type Cluster } from '../harness/index.ts';
import { installTestHosts } from '../harness/cloud/dns.ts';
import { GcpProject, Hosts, serviceAccountSubject as sub, startCloudStandIns, type CloudStandIns, type Service } from '../harness/cloud/stand-ins.ts';
import { applyRepo, cond, ControllerNamespace, ControllerSA, installController, startControllerProcess, waitRepo, type ControllerProcess, type RepoObject } from '../helpers/controller-env.ts';
import { pushCosignSig } from '../helpers/push-signatures.ts';
import { generateKey, signLegacy } from '../helpers/cosign-sign.ts';
import { projectRoot } from '../helpers/shared.ts';

const NS = 'default';
const Tenant = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const ControllerClient = '11111111-1111-1111-1111-111111111111';
const ObjectClient = '22222222-2222-2222-2222-222222222222';
const UnknownClient = '33333333-3333-3333-3333-333333333333';
const Role = (n: string) => `arn:aws:iam::123456789012:role/${n}`;
const Gsa = (n: string) => `${n}@${GcpProject}.iam.gserviceaccount.com`;
const CloudServices: Service[] = ['entra', 'sts', 'ecrApi', 'podIdentity', 'metadata', 'googleSts', 'iamCredentials'];

describe('workload identity: provider azure | aws | gcp', { timeout: 900_000 }, () => {
  const dir = makeTempDir('osc-cloud-');
  let cluster: Cluster;
  let cloud: CloudStandIns;
  let kubeconfig: string;
  const ctrls: Record<'a' | 'b' | 'c', ControllerProcess | undefined> = { a: undefined, b: undefined, c: undefined };
  const urls = { azure: '', aws: '', gcp: '' };
  const digests = { azure: '', aws: '', gcp: '' };
  const kube = (args: string[], input?: string) => cluster.kubectlOk(args, input !== undefined ? { input } : {});

  async function saToken(ns: string, name: string, audience: string): Promise<string> {
    const r = await cluster.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${name}/token`, { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { audiences: [audience], expirationSeconds: 3600 } } });
    assert.equal(r.status, 201, r.text);
    return r.body.status.token;
  }

  async function serviceAccount(ns: string, name: string, annotations: Record<string, string> = {}): Promise<void> {
    await kube(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: ns, annotations } }));
  }

  function baseEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!/^(AWS_|AZURE_|GCE_|GOOGLE_|OCI_SOURCE_|NODE_OPTIONS$)/.test(k)) env[k] = v;
    return {
      ...env,
      NODE_EXTRA_CA_CERTS: cloud.ca.certFile,
      NODE_OPTIONS: `--import ${path.join(projectRoot, 'test/harness/cloud/dns.ts')}`,
      OSC_TEST_HOSTS: Object.values(Hosts).join(','),
      AWS_ENDPOINT_URL_STS: cloud.url('sts'),
      AWS_ENDPOINT_URL_ECR: cloud.url('ecrApi'),
      AZURE_AUTHORITY_HOST: `${cloud.url('entra')}/`,
      GCE_METADATA_HOST: cloud.metadataHost,
      OCI_SOURCE_GCP_STS_URL: `${cloud.url('googleSts')}/v1/token`,
      OCI_SOURCE_GCP_IAM_CREDENTIALS_URL: cloud.url('iamCredentials'),
      ...extra,
    };
  }

  async function repo(name: string, shard: 'a' | 'b' | 'c', provider: 'azure' | 'aws' | 'gcp', extra: Record<string, unknown> = {}, ns = NS): Promise<void> {
    await applyRepo(cluster, {
      metadata: { name, namespace: ns, labels: { shard } },
      spec: { url: urls[provider], interval: '1h', timeout: '30s', provider, ref: { tag: 'v1' }, verify: { provider: 'cosign', secretRef: { name: 'cosign-keys' } }, ...extra },
    });
  }

  const readyRepo = (name: string, ns = NS) => waitRepo(cluster, ns, name, (o) => cond(o, 'Ready')?.status === 'True' && o.status?.observedGeneration === o.metadata.generation, 'Ready=True');
  const failedRepo = (name: string, re: RegExp, ns = NS) => waitRepo(cluster, ns, name, (o) => re.test(cond(o, 'FetchFailed')?.message ?? ''), `FetchFailed matching ${re}`);

  async function reconcileNow(name: string): Promise<RepoObject> {
    const at = `${Date.now()}-${Math.random()}`;
    await kube(['annotate', '--overwrite', '-n', NS, `ocirepository/${name}`, `reconcile.ocisource.dev/requestedAt=${at}`]);
    return waitRepo(cluster, NS, name, (o) => o.status?.lastHandledReconcileAt === at && cond(o, 'Reconciling') === undefined, 'reconcile handled');
  }

  function assertVerifiedAndStored(o: RepoObject, provider: keyof typeof digests): void {
    assert.equal(cond(o, 'SourceVerified')?.status, 'True', JSON.stringify(o.status));
    assert.equal(o.status?.artifact?.revision, `v1@${digests[provider]}`);
  }

  const cloudRequests = () => CloudServices.reduce((n, s) => n + cloud.counts[s], 0);

  before(async () => {
    cluster = await startCluster();
    const installed = installController(cluster, dir);
    installed.catch(() => undefined); // awaited below; a failure there is reported by that await
    cloud = await startCloudStandIns({
      dir,
      saPublicKeyFile: path.join(cluster.dir, 'pki', 'sa.pub'),
      config: {
        azure: [
          { tenantId: Tenant, clientId: ControllerClient, subjects: [sub(ControllerNamespace, ControllerSA)], acrPull: true },
          { tenantId: Tenant, clientId: ObjectClient, subjects: [sub(NS, 'azure-sa'), sub('team-b', 'wi-default')], acrPull: true },
        ],
        aws: [
          { arn: Role('controller'), subjects: [sub(ControllerNamespace, ControllerSA)], ecrPull: true },
          { arn: Role('object'), subjects: [sub(NS, 'aws-sa')], ecrPull: true },
          { arn: Role('no-ecr'), subjects: [sub(NS, 'aws-no-ecr')], ecrPull: false },
        ],
        gcp: [
          { email: Gsa('controller'), subjects: [], reader: true },
          { email: Gsa('object'), subjects: [sub(NS, 'gcp-sa')], reader: true },
          { email: Gsa('other'), subjects: [], reader: true },
          { email: Gsa('direct'), subjects: [sub(NS, 'gcp-direct')], reader: true },
        ],
        gcpMetadataAccount: Gsa('controller'),
        lifetimes: { entra: 3600, acrRefresh: 10800, sts: 3600, ecr: 43200, google: 3600 },
      },
    });
    kubeconfig = await installed;
    installTestHosts(Object.values(Hosts));
    urls.azure = `oci://${Hosts.acr}:${cloud.port}/team/app`;
    urls.aws = `oci://${Hosts.ecr}:${cloud.port}/team/app`;
    urls.gcp = `oci://${Hosts.gar}:${cloud.port}/osc-test-project/repo/app`;

    // One cosign-signed artifact per registry; the public key is the verification Secret.
    const key = generateKey('p256');
    const pushes = { azure: [cloud.push.acr, 'team/app'], aws: [cloud.push.ecr, 'team/app'], gcp: [cloud.push.gar, 'osc-test-project/repo/app'] } as const;
    await Promise.all((Object.entries(pushes) as [keyof typeof digests, (typeof pushes)['azure']][]).map(async ([p, [ep, name]]) => {
      const a = await pushTarGzArtifact(ep, name, 'v1', { 'README.md': `pulled from ${p}\n` });
      digests[p] = a.manifestDigest;
      await pushCosignSig(ep, name, a.manifestDigest, [signLegacy(key, a.manifestDigest)]);
    }));
    await kube(['create', 'secret', 'generic', 'cosign-keys', '-n', NS, `--from-literal=cosign.pub=${key.pubPem}`]);

    // Object-level identities: ServiceAccounts annotated as each cloud's guide says.
    const sas: [string, Record<string, string>][] = [
      ['azure-sa', { 'azure.workload.identity/client-id': ObjectClient, 'azure.workload.identity/tenant-id': Tenant }],
      ['azure-unknown', { 'azure.workload.identity/client-id': UnknownClient, 'azure.workload.identity/tenant-id': Tenant }],
      ['aws-sa', { 'eks.amazonaws.com/role-arn': Role('object') }],
      ['aws-untrusted', { 'eks.amazonaws.com/role-arn': Role('object') }],
      ['aws-no-ecr', { 'eks.amazonaws.com/role-arn': Role('no-ecr') }],
      ['gcp-sa', { 'iam.gke.io/gcp-service-account': Gsa('object') }],
      ['gcp-unbound', { 'iam.gke.io/gcp-service-account': Gsa('other') }],
      ['gcp-direct', {}],
    ];
    await kube(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: sas.map(([name, annotations]) => ({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: NS, annotations } })) }));

    // Controller-level identity: the files the Azure webhook / IRSA / Pod Identity would project.
    const tokenFile = async (aud: string, file: string) => {
      const p = path.join(dir, file);
      writeFileSync(p, await saToken(ControllerNamespace, ControllerSA, aud), { mode: 0o600 });
      return p;
    };
    const [azureFile, irsaFile, podIdentityFile] = await Promise.all([
      tokenFile('api://AzureADTokenExchange', 'azure-identity-token'),
      tokenFile('sts.amazonaws.com', 'aws-web-identity-token'),
      tokenFile('pods.eks.amazonaws.com', 'eks-pod-identity-token'),
    ]);
    const ctrlDir = (n: string) => {
      const d = path.join(dir, `controller-${n}`);
      mkdirSync(d);
      return d;
    };
    [ctrls.a, ctrls.b, ctrls.c] = await Promise.all([
      startControllerProcess({
        kubeconfig,
        dir: ctrlDir('a'),
        extraArgs: ['--watch-label-selector', 'shard=a', '--feature-gates=ObjectLevelWorkloadIdentity=true'],
        env: baseEnv({ AZURE_CLIENT_ID: ControllerClient, AZURE_TENANT_ID: Tenant, AZURE_FEDERATED_TOKEN_FILE: azureFile, AWS_ROLE_ARN: Role('controller'), AWS_WEB_IDENTITY_TOKEN_FILE: irsaFile, AWS_REGION: 'us-west-2' }),
      }),
      startControllerProcess({
        kubeconfig,
        dir: ctrlDir('b'),
        extraArgs: ['--watch-label-selector', 'shard=b'],
        env: baseEnv({ AWS_CONTAINER_CREDENTIALS_FULL_URI: cloud.podIdentityUrl, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: podIdentityFile, AWS_REGION: 'us-west-2' }),
      }),
      startControllerProcess({
        kubeconfig,
        dir: ctrlDir('c'),
        extraArgs: ['--watch-label-selector', 'shard=c', '--feature-gates=ObjectLevelWorkloadIdentity=true', '--default-service-account=wi-default'],
        env: baseEnv({}),
      }),
    ]);
  });

  after(async () => {
    for (const c of Object.values(ctrls)) await c?.stop();
    await cloud?.stop();
    await cluster?.stop();
    removeTempDir(dir);
  });

  test('controller-level identity: pull and cosign verification through ACR, ECR and Artifact Registry', async () => {
    await repo('azure-ctrl', 'a', 'azure');
    await repo('aws-irsa', 'a', 'aws');
    await repo('gcp-ctrl', 'a', 'gcp');
    await repo('aws-pod-identity', 'b', 'aws');
    assertVerifiedAndStored(await readyRepo('azure-ctrl'), 'azure');
    assertVerifiedAndStored(await readyRepo('aws-irsa'), 'aws');
    assertVerifiedAndStored(await readyRepo('gcp-ctrl'), 'gcp');
    assertVerifiedAndStored(await readyRepo('aws-pod-identity'), 'aws');
    // Each chain ran: Entra + exchange; STS + ECR; Pod Identity + ECR; metadata.
    for (const s of ['entra', 'acr', 'sts', 'ecrApi', 'podIdentity', 'metadata'] as const) assert.ok(cloud.issued[s] >= 1, `${s} issued nothing`);
  });

  test('steady state: an unchanged artifact asks no cloud endpoint (token cache), metrics count hits', async () => {
    cloud.resetCounts();
    for (let i = 0; i < 3; i++) {
      const done = await Promise.all(['azure-ctrl', 'aws-irsa', 'gcp-ctrl', 'aws-pod-identity'].map(reconcileNow));
      for (const o of done) assert.equal(cond(o, 'Ready')?.status, 'True', o.metadata.name);
    }
    assert.equal(cloudRequests(), 0, `cloud requests at steady state: ${JSON.stringify(cloud.counts)}`);
    assert.equal(cloud.counts.acr + cloud.counts.gar, 0, 'no registry token either: the registry tokens are cached too');
    const metrics = await (await fetch(`http://127.0.0.1:${ctrls.a!.metricsPort}/metrics`)).text();
    const hits = (p: string) => Number(new RegExp(`ocisource_token_cache_events_total\\{event_type="cache_hit",provider="${p}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
    for (const p of ['azure', 'aws', 'gcp']) assert.ok(hits(p) >= 3, `${p} cache hits: ${metrics}`);
  });

  test('object-level identity: TokenRequest for the object\'s ServiceAccount; tokens refreshed after expiry', async () => {
    // Short lifetimes: cached for 80 % of 6 s.
    Object.assign(cloud.config.lifetimes, { entra: 6, acrRefresh: 6, sts: 6, ecr: 6, google: 6 });
    await repo('azure-obj', 'a', 'azure', { serviceAccountName: 'azure-sa' });
    await repo('aws-obj', 'a', 'aws', { serviceAccountName: 'aws-sa' });
    await repo('gcp-obj', 'a', 'gcp', { serviceAccountName: 'gcp-sa' });
    await repo('gcp-direct', 'a', 'gcp', { serviceAccountName: 'gcp-direct' });
    for (const [n, p] of [['azure-obj', 'azure'], ['aws-obj', 'aws'], ['gcp-obj', 'gcp'], ['gcp-direct', 'gcp']] as const) assertVerifiedAndStored(await readyRepo(n), p);
    assert.ok(cloud.issued.googleSts >= 2 && cloud.issued.iamCredentials >= 1, JSON.stringify(cloud.issued));
    await new Promise((r) => setTimeout(r, 6500));
    cloud.resetCounts();
    for (const o of await Promise.all(['azure-obj', 'aws-obj', 'gcp-obj'].map(reconcileNow))) assert.equal(cond(o, 'Ready')?.status, 'True', o.metadata.name);
    // Expired tokens were replaced: a new Entra token + refresh token, STS credentials + ECR
    // password, STS + IAM Credentials token; all through a fresh TokenRequest.
    for (const s of ['entra', 'acr', 'sts', 'ecrApi', 'googleSts', 'iamCredentials'] as const) assert.ok(cloud.issued[s] >= 1, `${s} not refreshed: ${JSON.stringify(cloud.issued)}`);
    Object.assign(cloud.config.lifetimes, { entra: 3600, acrRefresh: 10800, sts: 3600, ecr: 43200, google: 3600 });
  });

  test('the cloud\'s own error reaches the condition, naming what to fix', async () => {
    await repo('azure-unknown', 'a', 'azure', { serviceAccountName: 'azure-unknown' });
    await repo('aws-untrusted', 'a', 'aws', { serviceAccountName: 'aws-untrusted' });
    await repo('aws-no-ecr', 'a', 'aws', { serviceAccountName: 'aws-no-ecr' });
    await repo('gcp-unbound', 'a', 'gcp', { serviceAccountName: 'gcp-unbound' });
    await repo('azure-not-acr', 'a', 'azure', { url: urls.aws });
    const a = cond(await failedRepo('azure-unknown', /AADSTS700016/), 'FetchFailed')!;
    assert.equal(a.reason, 'AuthenticationFailed');
    assert.match(a.message, /^failed to get credentials from azure: Entra ID token for client '33333333-[^']+' in tenant '[^']+': unauthorized_client: AADSTS700016: .*azure\.workload\.identity\/client-id/);
    assert.match(cond(await failedRepo('aws-untrusted', /AccessDenied/), 'FetchFailed')!.message, /STS AssumeRoleWithWebIdentity for role 'arn:aws:iam::123456789012:role\/object': AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity .*eks\.amazonaws\.com\/role-arn of ServiceAccount 'default\/aws-untrusted'/);
    assert.match(cond(await failedRepo('aws-no-ecr', /AccessDeniedException/), 'FetchFailed')!.message, /ECR GetAuthorizationToken in us-west-2: AccessDeniedException: User: .* is not authorized to perform: ecr:GetAuthorizationToken .*AmazonEC2ContainerRegistryReadOnly/);
    assert.match(cond(await failedRepo('gcp-unbound', /PERMISSION_DENIED/), 'FetchFailed')!.message, /IAM Credentials generateAccessToken for 'other@[^']+': PERMISSION_DENIED: Permission 'iam\.serviceAccounts\.getAccessToken' denied .*roles\/iam\.workloadIdentityUser.*ServiceAccount 'default\/gcp-unbound'/);
    assert.match(cond(await failedRepo('azure-not-acr', /not an Azure Container Registry/), 'FetchFailed')!.message, /use provider: generic/);
    // The last good artifact of an object stays served when its identity breaks.
    await serviceAccount(NS, 'azure-sa', { 'azure.workload.identity/client-id': UnknownClient, 'azure.workload.identity/tenant-id': Tenant });
    const broken = cond(await reconcileNowAllowingFailure('azure-obj'), 'FetchFailed');
    assert.match(broken?.message ?? '', /AADSTS700016/);
    assert.equal((await waitRepo(cluster, NS, 'azure-obj', () => true, 'read')).status?.artifact?.revision, `v1@${digests.azure}`);
    // Failing objects retry with backoff; remove them so later tests see a quiet controller.
    await kube(['delete', 'ocirepository', '-n', NS, 'azure-unknown', 'aws-untrusted', 'aws-no-ecr', 'gcp-unbound', 'azure-not-acr', 'azure-obj']);
  });

  async function reconcileNowAllowingFailure(name: string): Promise<RepoObject> {
    const at = `${Date.now()}-f`;
    await kube(['annotate', '--overwrite', '-n', NS, `ocirepository/${name}`, `reconcile.ocisource.dev/requestedAt=${at}`]);
    return waitRepo(cluster, NS, name, (o) => o.status?.lastHandledReconcileAt === at && !!cond(o, 'FetchFailed'), 'failed reconcile handled');
  }

  test('feature gate off: spec.serviceAccountName with a cloud provider says which flag to set', async () => {
    for (const p of ['azure', 'aws', 'gcp'] as const) await repo(`gate-off-${p}`, 'b', p, { serviceAccountName: `${p}-sa` });
    for (const p of ['azure', 'aws', 'gcp'] as const) {
      const o = await failedRepo(`gate-off-${p}`, /feature gate/);
      const c = cond(o, 'FetchFailed')!;
      assert.equal(c.reason, 'AuthenticationFailed');
      assert.match(c.message, /enable the ObjectLevelWorkloadIdentity feature gate of the controller \(--feature-gates=ObjectLevelWorkloadIdentity=true\)/);
      assert.equal(cond(o, 'Ready')?.status, 'False');
    }
  });

  test('--default-service-account: objects without one use that ServiceAccount of their namespace', async () => {
    await kube(['create', 'namespace', 'team-a']);
    await kube(['create', 'namespace', 'team-b']);
    await serviceAccount('team-b', 'wi-default', { 'azure.workload.identity/client-id': ObjectClient, 'azure.workload.identity/tenant-id': Tenant });
    const key = await cluster.kubectlOk(['get', 'secret', 'cosign-keys', '-n', NS, '-o', 'jsonpath={.data.cosign\\.pub}']);
    for (const ns of ['team-a', 'team-b']) await kube(['create', 'secret', 'generic', 'cosign-keys', '-n', ns, `--from-literal=cosign.pub=${Buffer.from(key, 'base64').toString()}`]);
    await repo('locked', 'c', 'azure', {}, 'team-a');
    await repo('locked', 'c', 'azure', {}, 'team-b');
    const a = cond(await failedRepo('locked', /default-service-account/, 'team-a'), 'FetchFailed')!;
    assert.match(a.message, /ServiceAccount 'team-a\/wi-default': not found: the controller runs with --default-service-account=wi-default/);
    const b = await readyRepo('locked', 'team-b');
    assert.equal(cond(b, 'SourceVerified')?.status, 'True');
  });

  test('no token in logs, events or conditions', async () => {
    const secrets = cloud.secrets();
    assert.ok(secrets.length > 10, `tokens issued: ${secrets.length}`);
    const events = await kube(['get', 'events', '-A', '-o', 'json']);
    const objects = await kube(['get', 'ocirepositories', '-A', '-o', 'json']);
    const logs = Object.values(ctrls).map((c) => JSON.stringify(c?.logs() ?? [])).join('\n');
    for (const [what, text] of [['events', events], ['objects', objects], ['logs', logs]] as const) {
      for (const s of secrets) assert.ok(!text.includes(s), `a token issued by a stand-in appears in ${what}`);
      assert.doesNotMatch(text, /eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\./, `a JWT appears in ${what}`);
    }
  });
});
