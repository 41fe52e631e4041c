import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidURLError, parseRepositoryURL } from '../../../src/oci/reference.ts';
import { credentialsFromDockerConfig, CredentialsError, parseChallenge, TokenCache } from '../../../src/oci/auth.ts';

test('parses host, port and nested repositories', () => {
  assert.deepEqual(parseRepositoryURL('oci://127.0.0.1:5000/org/team/app'), { registry: '127.0.0.1:5000', apiHost: '127.0.0.1:5000', repository: 'org/team/app' });
  assert.deepEqual(parseRepositoryURL('oci://GHCR.io/stefanprodan/manifests/podinfo/'), { registry: 'ghcr.io', apiHost: 'ghcr.io', repository: 'stefanprodan/manifests/podinfo' });
});

test('normalises Docker Hub', () => {
  const r = parseRepositoryURL('oci://docker.io/nginx');
  assert.deepEqual(r, { registry: 'docker.io', apiHost: 'registry-1.docker.io', repository: 'library/nginx' });
  assert.equal(parseRepositoryURL('oci://index.docker.io/org/app').registry, 'docker.io');
});

test('rejects tags, digests, bad schemes and bad names with actionable messages', () => {
  assert.throws(() => parseRepositoryURL('oci://reg.test/app:v1'), (e: Error) => e instanceof InvalidURLError && /must not contain a tag; remove ':v1'/.test(e.message));
  assert.throws(() => parseRepositoryURL('oci://reg.test/app@sha256:abc'), /must not contain a digest/);
  assert.throws(() => parseRepositoryURL('https://reg.test/app'), /oci:\/\//);
  assert.throws(() => parseRepositoryURL('oci://reg.test'), /format/);
  assert.throws(() => parseRepositoryURL('oci://reg.test/App'), /invalid repository name/);
  assert.throws(() => parseRepositoryURL('oci://reg.test/../etc'), /invalid repository name/);
  assert.throws(() => parseRepositoryURL('oci://re g.test/app'), /invalid registry host/);
});

test('WWW-Authenticate challenges', () => {
  const c = parseChallenge('Bearer realm="https://auth.test/token",service="registry.test",scope="repository:a/b:pull,push"');
  assert.equal(c?.scheme, 'bearer');
  assert.deepEqual(c?.params, { realm: 'https://auth.test/token', service: 'registry.test', scope: 'repository:a/b:pull,push' });
  assert.deepEqual(parseChallenge('Basic realm="Registry Realm"'), { scheme: 'basic', params: { realm: 'Registry Realm' } });
  assert.equal(parseChallenge(undefined), undefined);
});

test('docker config credentials by host, auth field or username/password', () => {
  const doc = JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: Buffer.from('u1:p:1').toString('base64') }, 'reg.test:5000': { username: 'u2', password: 'p2' }, 'id.test': { identitytoken: 'refresh' } } });
  assert.deepEqual(credentialsFromDockerConfig(doc, 'docker.io', 's'), { username: 'u1', password: 'p:1' });
  assert.deepEqual(credentialsFromDockerConfig(doc, 'reg.test:5000', 's'), { username: 'u2', password: 'p2' });
  assert.deepEqual(credentialsFromDockerConfig(doc, 'id.test', 's'), { identityToken: 'refresh' });
  assert.equal(credentialsFromDockerConfig(doc, 'other.test', 's'), undefined);
  assert.throws(() => credentialsFromDockerConfig('{nope', 'x', "secret 'ns/creds'"), (e: Error) => e instanceof CredentialsError && /secret 'ns\/creds': invalid JSON/.test(e.message));
  assert.throws(() => credentialsFromDockerConfig('[[]]', 'x.test', 's'), /s: expected a JSON object/);
  assert.throws(() => credentialsFromDockerConfig('{"auths":[]}', 'x.test', 's'), /'auths' must be an object/);
  assert.throws(() => credentialsFromDockerConfig(JSON.stringify({ auths: { 'x.test': { auth: Buffer.from('nocolon').toString('base64') } } }), 'x.test', 's'), /not base64 of user:password/);
});

test('token cache expires at 80% of the lifetime', () => {
  const c = new TokenCache();
  c.set('k', 'tok', 100, 0);
  assert.equal(c.get('k', 79_000), 'tok');
  assert.equal(c.get('k', 80_001), undefined);
});
