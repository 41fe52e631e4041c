// Secrets → registry client options: every Secret kind the spec can name, every way it can be
// wrong (each error names the Secret and key, never a value), and the contents cache that keeps
// steady-state reconciles from reading the apiserver.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { OCIRepository } from '../../../src/api/schema.ts';
import { AuthConfigError, ContentCache, clientOptions, referencedSecrets, type KubeReader, type Secret, type ServiceAccount } from '../../../src/controller/secrets.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const dockerConfig = (registry: string, user: string, pass: string) => ({ '.dockerconfigjson': b64(JSON.stringify({ auths: { [registry]: { auth: b64(`${user}:${pass}`) } } })) });

function reader(secrets: Record<string, Secret['data']>, accounts: Record<string, ServiceAccount> = {}): KubeReader & { reads: number } {
  const r = {
    reads: 0,
    async getSecret(ns: string, name: string) {
      r.reads++;
      const data = secrets[`${ns}/${name}`];
      return data ? { metadata: { name, namespace: ns, resourceVersion: '1' }, data } : null;
    },
    async getServiceAccount(ns: string, name: string) {
      return accounts[`${ns}/${name}`] ?? null;
    },
  };
  return r;
}

const obj = (spec: Partial<OCIRepository['spec']>): OCIRepository =>
  ({ apiVersion: 'source.ocisource.dev/v1', kind: 'OCIRepository', metadata: { name: 'app', namespace: 'team' }, spec: { url: 'oci://reg.test/app', interval: '1m', ...spec } }) as OCIRepository;

test('secretRef: docker config credentials for the registry', async () => {
  const o = await clientOptions(obj({ secretRef: { name: 'pull' } }), 'reg.test', reader({ 'team/pull': dockerConfig('reg.test', 'alice', 's3cret') }));
  assert.equal(o.credentials?.username, 'alice');
  assert.equal(o.credentials?.password, 's3cret');
  assert.equal(o.insecure, false);
  assert.equal(o.credentialSource, "secret 'team/pull' (spec.secretRef)");
});

test('serviceAccountName: imagePullSecrets are searched in order; unrelated registries skipped', async () => {
  const r = reader({ 'team/other': dockerConfig('elsewhere.test', 'x', 'y'), 'team/mine': dockerConfig('reg.test', 'bob', 'pw') }, { 'team/puller': { metadata: { name: 'puller' }, imagePullSecrets: [{ name: 'missing' }, { name: 'other' }, { name: 'mine' }] } });
  const o = await clientOptions(obj({ serviceAccountName: 'puller' }), 'reg.test', r);
  assert.equal(o.credentials?.username, 'bob');
  assert.equal(o.credentialSource, "secret 'team/mine' (an imagePullSecret of service account 'team/puller')");
  await assert.rejects(clientOptions(obj({ serviceAccountName: 'ghost' }), 'reg.test', r), (e: Error) => e instanceof AuthConfigError && /service account 'team\/ghost' not found/.test(e.message));
});

test('certSecretRef and proxySecretRef: TLS material and proxy address, checked', async () => {
  const ca = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
  const r = reader({
    'team/tls': { 'ca.crt': b64(ca), 'tls.crt': b64(ca), 'tls.key': b64('key') },
    'team/proxy': { address: b64('http://proxy.test:3128'), username: b64('u'), password: b64('p') },
  });
  const o = await clientOptions(obj({ certSecretRef: { name: 'tls' }, proxySecretRef: { name: 'proxy' }, insecure: true }), 'reg.test', r);
  assert.equal(String(o.tls?.ca), ca);
  assert.ok(o.tls?.cert && o.tls.key);
  assert.deepEqual(o.proxy, { address: 'http://proxy.test:3128', username: 'u', password: 'p' });
  assert.equal(o.insecure, true);
});

test('every bad Secret is an AuthConfigError naming the Secret and key, never its contents', async () => {
  const cases: [Partial<OCIRepository['spec']>, Record<string, Secret['data']>, RegExp][] = [
    [{ secretRef: { name: 'nope' } }, {}, /auth secret 'team\/nope' not found/],
    [{ secretRef: { name: 'pull' } }, { 'team/pull': { token: b64('hunter2') } }, /secret 'team\/pull' has no '.dockerconfigjson' key/],
    [{ secretRef: { name: 'pull' } }, { 'team/pull': { '.dockerconfigjson': b64('{not json hunter2') } }, /team\/pull/],
    [{ certSecretRef: { name: 'tls' } }, { 'team/tls': { other: b64('x') } }, /secret 'team\/tls' must hold 'ca.crt'/],
    [{ certSecretRef: { name: 'tls' } }, { 'team/tls': { 'tls.crt': b64('hunter2') } }, /'tls.crt' and 'tls.key' must be set together/],
    [{ certSecretRef: { name: 'tls' } }, { 'team/tls': { 'ca.crt': b64('hunter2') } }, /key 'ca.crt' is not a PEM certificate/],
    [{ proxySecretRef: { name: 'proxy' } }, { 'team/proxy': { username: b64('hunter2') } }, /key 'address' is required/],
    [{ proxySecretRef: { name: 'proxy' } }, { 'team/proxy': { address: b64('hunter2 not a url') } }, /key 'address' is not a URL/],
  ];
  for (const [spec, secrets, want] of cases) {
    await assert.rejects(clientOptions(obj(spec), 'reg.test', reader(secrets)), (e: Error) => {
      assert.ok(e instanceof AuthConfigError, `${e.name}: ${e.message}`);
      assert.match(e.message, want);
      assert.doesNotMatch(e.message, /hunter2/, 'no Secret content in the message');
      return true;
    });
  }
});

test('referencedSecrets lists every Secret the object depends on', () => {
  const names = referencedSecrets(obj({ secretRef: { name: 'a' }, certSecretRef: { name: 'b' }, proxySecretRef: { name: 'c' }, verify: { provider: 'cosign', secretRef: { name: 'd' }, trustedRootSecretRef: { name: 'e' } } }));
  assert.deepEqual(names.sort(), ['a', 'b', 'c', 'd', 'e']);
});

test('ContentCache (Secrets): read once per resourceVersion the watch reports; re-read after a change or invalidation', async () => {
  const watched = new Map<string, string>([['team/keys', '7']]);
  let stored: Secret | null = { metadata: { name: 'keys', namespace: 'team', resourceVersion: '7' }, data: { k: b64('v1') } };
  let reads = 0;
  const cache = new ContentCache<Secret>(
    async () => {
      reads++;
      return stored;
    },
    (ns, name) => watched.get(`${ns}/${name}`),
  );
  for (let i = 0; i < 5; i++) assert.equal((await cache.get('team', 'keys'))?.data?.k, b64('v1'));
  assert.equal(reads, 1, 'steady state: one read');
  // Rotation: the watch reports a new resourceVersion before the contents are read again.
  stored = { metadata: { name: 'keys', namespace: 'team', resourceVersion: '8' }, data: { k: b64('v2') } };
  watched.set('team/keys', '8');
  cache.invalidate('team', 'keys');
  assert.equal((await cache.get('team', 'keys'))?.data?.k, b64('v2'));
  assert.equal((await cache.get('team', 'keys'))?.data?.k, b64('v2'));
  assert.equal(reads, 2);
  // A Secret the watch has not seen (just created, or gone) is always read, never served stale.
  watched.delete('team/keys');
  stored = null;
  assert.equal(await cache.get('team', 'keys'), null);
  assert.equal(cache.size, 0, 'contents of a deleted Secret are not held');
  assert.equal(cache.hits, 5);
});

test('ContentCache.read: a read that began after `since` is shared; an older one, or one a watch event overtook, is not', async () => {
  let reads = 0;
  let version = 1;
  const cache = new ContentCache<Secret>(
    async () => {
      reads++;
      return { metadata: { name: 'keys', namespace: 'team', resourceVersion: String(version) }, data: { k: b64(`v${version}`) } };
    },
    () => String(version),
  );
  const queuedAt = performance.now();
  // A burst of requested reconciles, all queued before the first read began: one read.
  const [a, b, c] = await Promise.all([cache.read('team', 'keys', queuedAt), cache.read('team', 'keys', queuedAt), cache.read('team', 'keys', queuedAt)]);
  assert.equal(reads, 1);
  assert.equal(a?.data?.k, b64('v1'));
  assert.equal(b, a);
  assert.equal(c, a);
  // A request seen after that read began needs a read of its own.
  await new Promise((r) => setTimeout(r, 5));
  version = 2;
  assert.equal((await cache.read('team', 'keys', performance.now()))?.data?.k, b64('v2'));
  assert.equal(reads, 2);
  // The watch reports a change: the last read is not shared any more, even for an old `since`.
  version = 3;
  cache.invalidate('team', 'keys');
  assert.equal((await cache.read('team', 'keys', queuedAt))?.data?.k, b64('v3'));
  assert.equal(reads, 3);
  // The read filled the watch-validated cache: interval reconciles read nothing more.
  assert.equal((await cache.get('team', 'keys'))?.data?.k, b64('v3'));
  assert.equal(reads, 3);
});
