// Our kubeconfig / in-cluster loader: which configuration is picked, kubectl's merge rules,
// relative paths, token files re-read as they rotate, TLS (CA, client certificates,
// tls-server-name) checked against a real TLS server, and exec plugins handed to
// @kubernetes/client-node, which is loaded only then.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import YAML from 'yaml';
import { Kube } from '../../../src/controller/kube.ts';
import { fromKubeconfigFiles, inClusterConfig, KubeConfigError, loadRestConfig, type Environment, type RestConfig } from '../../../src/controller/kubeconfig.ts';
import { createCA, createClientCert, createServerCert, makeTempDir, removeTempDir } from '../../harness/index.ts';
import { inFreshNode, projectRoot } from '../../helpers/shared.ts';

const dir = makeTempDir('osc-kubeconfig-');
test.after(() => removeTempDir(dir));

function write(name: string, doc: unknown, format: 'yaml' | 'json' = 'yaml'): string {
  const p = path.join(dir, name);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, format === 'json' ? JSON.stringify(doc) : YAML.stringify(doc));
  return p;
}

function kubeconfig(o: { server?: string; cluster?: Record<string, unknown>; user?: Record<string, unknown>; namespace?: string; contexts?: unknown[]; current?: string | null; name?: string } = {}) {
  const n = o.name ?? 'one';
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: `${n}-cluster`, cluster: { server: o.server ?? 'https://127.0.0.1:6443', ...o.cluster } }],
    users: [{ name: `${n}-user`, user: o.user ?? { token: `${n}-token` } }],
    contexts: o.contexts ?? [{ name: n, context: { cluster: `${n}-cluster`, user: `${n}-user`, ...(o.namespace ? { namespace: o.namespace } : {}) } }],
    ...(o.current === null ? {} : { 'current-context': o.current ?? n }),
  };
}

async function headers(c: RestConfig): Promise<Record<string, unknown>> {
  const req: https.RequestOptions = { headers: {} };
  await c.authenticate(req);
  return req.headers as Record<string, unknown>;
}

const env = (e: Partial<Environment> & { env?: NodeJS.ProcessEnv } = {}): Environment => ({ env: {}, home: undefined, serviceAccountDir: path.join(dir, 'no-such-sa'), ...e });

test('token kubeconfig (YAML and JSON): server, namespace, bearer token, verification on', async () => {
  for (const format of ['yaml', 'json'] as const) {
    const c = fromKubeconfigFiles([write(`token.${format}`, kubeconfig({ namespace: 'team' }), format)]);
    assert.equal(c.server.href, 'https://127.0.0.1:6443/');
    assert.equal(c.namespace, 'team');
    assert.equal(c.tls.rejectUnauthorized, true);
    assert.ok(c.tls.secureContext);
    assert.deepEqual(await headers(c), { authorization: 'Bearer one-token' });
  }
});

test('--context picks another context; errors name what is missing', async () => {
  const doc = kubeconfig();
  doc.clusters.push({ name: 'b-cluster', cluster: { server: 'https://10.0.0.2:443' } });
  doc.users.push({ name: 'b-user', user: { token: 'b-token' } });
  doc.contexts.push({ name: 'b', context: { cluster: 'b-cluster', user: 'b-user' } }, { name: 'ghost', context: { cluster: 'nowhere', user: 'b-user' } }, { name: 'nobody', context: { cluster: 'b-cluster', user: 'nobody' } });
  const file = write('contexts.yaml', doc);
  const b = fromKubeconfigFiles([file], 'b');
  assert.equal(b.server.host, '10.0.0.2');
  assert.deepEqual(await headers(b), { authorization: 'Bearer b-token' });
  assert.throws(() => fromKubeconfigFiles([file], 'missing'), /context 'missing' not found/);
  assert.throws(() => fromKubeconfigFiles([file], 'ghost'), /cluster 'nowhere', which is not defined/);
  assert.throws(() => fromKubeconfigFiles([file], 'nobody'), /user 'nobody', which is not defined/);
  assert.throws(() => fromKubeconfigFiles([write('nocurrent.yaml', kubeconfig({ current: null }))]), /no current-context/);
  assert.throws(() => fromKubeconfigFiles([write('garbage.yaml', '- just\n- a list\n')]), KubeConfigError);
  assert.throws(() => fromKubeconfigFiles([path.join(dir, 'absent.yaml')]), /cannot read kubeconfig .*ENOENT/);
});

test('CA: inline data wins over a file; insecure-skip-tls-verify alone turns verification off, with a CA it is refused', () => {
  const caFile = path.join(dir, 'not-a-cert.pem');
  writeFileSync(caFile, 'garbage');
  // The file would not parse: data must be what is used.
  const ok = fromKubeconfigFiles([write('ca-both.yaml', kubeconfig({ cluster: { 'certificate-authority': caFile, 'certificate-authority-data': Buffer.from(selfSigned()).toString('base64') } }))]);
  assert.ok(ok.tls.secureContext);
  assert.throws(() => fromKubeconfigFiles([write('ca-bad.yaml', kubeconfig({ cluster: { 'certificate-authority': caFile } }))]), /invalid TLS material/);
  const insecure = fromKubeconfigFiles([write('insecure.yaml', kubeconfig({ cluster: { 'insecure-skip-tls-verify': true } }))]);
  assert.equal(insecure.tls.rejectUnauthorized, false);
  assert.throws(() => fromKubeconfigFiles([write('insecure-ca.yaml', kubeconfig({ cluster: { 'insecure-skip-tls-verify': true, 'certificate-authority': caFile } }))]), /cannot be combined/);
  assert.throws(() => fromKubeconfigFiles([write('proxy.yaml', kubeconfig({ cluster: { 'proxy-url': 'http://proxy:3128' } }))]), /proxy-url is not supported/);
  assert.throws(() => fromKubeconfigFiles([write('certonly.yaml', kubeconfig({ user: { 'client-certificate-data': 'eA==' } }))]), /certificate and its key must be given together/);
});

test('basic auth and impersonation headers', async () => {
  const c = fromKubeconfigFiles([write('basic.yaml', kubeconfig({ user: { username: 'u', password: 'p', as: 'jane', 'as-uid': '42', 'as-groups': ['dev', 'ops'], 'as-user-extra': { 'scopes/x': ['a', 'b'] } } }))]);
  assert.deepEqual(await headers(c), {
    authorization: `Basic ${Buffer.from('u:p').toString('base64')}`,
    'impersonate-user': 'jane',
    'impersonate-uid': '42',
    'impersonate-group': ['dev', 'ops'],
    'impersonate-extra-scopes%2Fx': ['a', 'b'],
  });
});

test('tokenFile, relative to the kubeconfig, is re-read as it rotates and wins over an inline token; a failed re-read keeps the last token', async () => {
  mkdirSync(path.join(dir, 'sub/tokens'), { recursive: true });
  writeFileSync(path.join(dir, 'sub/tokens/t'), 'first\n');
  mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
  try {
    const c = fromKubeconfigFiles([write('sub/tokenfile.yaml', kubeconfig({ user: { token: 'inline', tokenFile: 'tokens/t' } }))]);
    assert.deepEqual(await headers(c), { authorization: 'Bearer first' });
    writeFileSync(path.join(dir, 'sub/tokens/t'), 'second\n');
    assert.deepEqual(await headers(c), { authorization: 'Bearer first' }, 'cached within the minute');
    mock.timers.tick(61_000);
    assert.deepEqual(await headers(c), { authorization: 'Bearer second' });
    writeFileSync(path.join(dir, 'sub/tokens/t'), '');
    mock.timers.tick(61_000);
    assert.deepEqual(await headers(c), { authorization: 'Bearer second' }, 'an empty (mid-rotation) file keeps the last token');
  } finally {
    mock.timers.reset();
  }
  assert.throws(() => fromKubeconfigFiles([write('sub/notoken.yaml', kubeconfig({ user: { tokenFile: 'tokens/absent' } }))]), /cannot read token file '.*sub\/tokens\/absent'/);
});

test('which configuration: --kubeconfig, then KUBECONFIG (merged, first wins, missing files skipped), then ~/.kube/config, then in-cluster', async () => {
  const a = write('merge/a.yaml', { ...kubeconfig({ name: 'a' }), 'current-context': 'a' });
  const b = write('merge/b.yaml', { ...kubeconfig({ name: 'a', server: 'https://10.9.9.9:1' }), clusters: [{ name: 'a-cluster', cluster: { server: 'https://10.9.9.9:1' } }, { name: 'b-cluster', cluster: { server: 'https://10.0.0.2:2' } }], users: [{ name: 'b-user', user: { token: 'b' } }], contexts: [{ name: 'b', context: { cluster: 'b-cluster', user: 'b-user' } }], 'current-context': 'b' });
  const merged = loadRestConfig({}, env({ env: { KUBECONFIG: [path.join(dir, 'merge/none.yaml'), a, b].join(path.delimiter) } }));
  assert.equal(merged.server.host, '127.0.0.1:6443', "the first file's current-context and cluster win");
  const other = loadRestConfig({ context: 'b' }, env({ env: { KUBECONFIG: [a, b].join(path.delimiter) } }));
  assert.deepEqual(await headers(other), { authorization: 'Bearer b' }, 'names only the second file defines are merged in');
  assert.throws(() => loadRestConfig({}, env({ env: { KUBECONFIG: path.join(dir, 'merge/none.yaml') } })), /none of the files in KUBECONFIG exist/);
  assert.equal(loadRestConfig({ kubeconfig: b }, env({ env: { KUBECONFIG: a } })).server.host, '10.0.0.2:2');

  const home = path.join(dir, 'home');
  write('home/.kube/config', kubeconfig({ server: 'https://10.1.1.1:443' }));
  const sa = serviceAccount('sa-default', 'tok', 'ns1');
  const inCluster = { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' };
  assert.equal(loadRestConfig({}, env({ home, serviceAccountDir: sa, env: inCluster })).server.host, '10.1.1.1', '~/.kube/config before in-cluster');
  assert.equal(loadRestConfig({}, env({ home: path.join(dir, 'nohome'), serviceAccountDir: sa, env: inCluster })).server.href, 'https://10.0.0.1/', 'then in-cluster');
  assert.throws(() => loadRestConfig({ context: 'x' }, env({ serviceAccountDir: sa, env: inCluster })), /--context needs a kubeconfig/);
  assert.throws(() => loadRestConfig({}, env()), /no Kubernetes configuration found/);
});

function serviceAccount(name: string, token: string, namespace?: string): string {
  const d = path.join(dir, name);
  mkdirSync(d, { recursive: true });
  writeFileSync(path.join(d, 'ca.crt'), selfSigned());
  writeFileSync(path.join(d, 'token'), token);
  if (namespace) writeFileSync(path.join(d, 'namespace'), `${namespace}\n`);
  return d;
}

let selfSignedPem: string | undefined;
function selfSigned(): string {
  selfSignedPem ??= execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', '/dev/null', '-subj', '/CN=test-ca', '-days', '1'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  return selfSignedPem;
}

test('in-cluster: service host and port (IPv6 bracketed), CA, namespace file, token re-read as it rotates', async () => {
  const sa = serviceAccount('sa-rotate', 'one', 'team-a');
  mock.timers.enable({ apis: ['Date'], now: 5_000_000 });
  try {
    const c = inClusterConfig(env({ serviceAccountDir: sa, env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' } }));
    assert.equal(c.server.href, 'https://[fd00::1]/');
    assert.equal(c.namespace, 'team-a');
    assert.equal(c.tls.rejectUnauthorized, true);
    assert.deepEqual(await headers(c), { authorization: 'Bearer one' });
    writeFileSync(path.join(sa, 'token'), 'two');
    mock.timers.tick(61_000);
    assert.deepEqual(await headers(c), { authorization: 'Bearer two' });
  } finally {
    mock.timers.reset();
  }
  assert.throws(() => inClusterConfig(env({ serviceAccountDir: path.join(dir, 'no-sa'), env: { KUBERNETES_SERVICE_HOST: 'h', KUBERNETES_SERVICE_PORT: '1' } })), /cannot read service account CA/);
});

test('TLS against a real server: CA file relative to the kubeconfig, client certificate files, tls-server-name', async () => {
  const pki = path.join(dir, 'pki');
  const ca = await createCA(pki, { cn: 'kubeconfig-test-ca' });
  const serverCert = await createServerCert(ca, { name: 'server', sans: ['DNS:kube.test'] });
  const client = await createClientCert(ca, { name: 'client', cn: 'jane' });
  const server = https.createServer({ cert: serverCert.certPem, key: serverCert.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    const peer = (req.socket as TLSSocket).getPeerCertificate();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ cn: peer?.subject?.CN ?? null, authorization: req.headers.authorization ?? null }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const user = { 'client-certificate': 'pki/client.crt', 'client-key': 'pki/client.key' };
    const named = new Kube(fromKubeconfigFiles([write('tls.yaml', kubeconfig({ server: url, cluster: { 'certificate-authority': 'pki/ca.crt', 'tls-server-name': 'kube.test' }, user }))]));
    try {
      assert.deepEqual(await named.request('GET', '/version'), { cn: 'jane', authorization: null });
    } finally {
      named.close();
    }
    // Without tls-server-name the certificate (DNS:kube.test only) does not match 127.0.0.1.
    const unnamed = new Kube(fromKubeconfigFiles([write('tls-noname.yaml', kubeconfig({ server: url, cluster: { 'certificate-authority': 'pki/ca.crt' }, user }))]));
    try {
      await assert.rejects(unnamed.request('GET', '/version'), /IP: 127\.0\.0\.1 is not in the cert's list|altnames/);
    } finally {
      unnamed.close();
    }
    const data = new Kube(fromKubeconfigFiles([write('tls-data.yaml', kubeconfig({ server: url, cluster: { 'certificate-authority-data': Buffer.from(ca.certPem).toString('base64'), 'tls-server-name': 'kube.test' }, user: { 'client-certificate-data': Buffer.from(client.certPem).toString('base64'), 'client-key-data': Buffer.from(client.keyPem).toString('base64'), token: 't' } }))]));
    try {
      assert.deepEqual(await data.request('GET', '/version'), { cn: 'jane', authorization: 'Bearer t' });
    } finally {
      data.close();
    }
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test('exec plugin: credentials from @kubernetes/client-node, which is loaded only for such a user', () => {
  const plugin = { apiVersion: 'client.authentication.k8s.io/v1beta1', command: '/bin/sh', args: ['-c', `echo '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"from-exec"}}'`] };
  const exec = write('exec.yaml', kubeconfig({ user: { exec: plugin } }));
  const token = write('plain.yaml', kubeconfig());
  // A fresh process per case, recording every module it resolves.
  const probe = (file: string) => {
    return inFreshNode<{ authorization: string; clientNode: boolean }>(`
      const { fromKubeconfigFiles } = await import(${JSON.stringify(path.join(projectRoot, 'src/controller/kubeconfig.ts'))});
      const c = fromKubeconfigFiles([${JSON.stringify(file)}]);
      const req = { headers: {} };
      await c.authenticate(req);
      console.log(JSON.stringify({ authorization: req.headers.authorization ?? req.headers.Authorization, clientNode: resolved.some((u) => u.includes('@kubernetes/client-node')) }));
    `);
  };
  assert.deepEqual(probe(exec), { authorization: 'Bearer from-exec', clientNode: true });
  assert.deepEqual(probe(token), { authorization: 'Bearer one-token', clientNode: false });
});
