// The verify step between the reconciler and the providers: which Secrets feed which provider input,
// the config errors a user sees, and the result cache (keyed by the trust material's fingerprint,
// failures never cached, entries expiring so time-dependent checks are redone).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { OCIRepository } from '../../../src/api/schema.ts';
import type { KubeReader, Secret } from '../../../src/controller/secrets.ts';
import { VerifyCache, providerLabel, runVerification, verifyConfig } from '../../../src/controller/verification.ts';
import type { RegistryReader } from '../../../src/oci/reader.ts';
import { VerifyConfigError, type Provider, type ProviderName, type VerificationOutcome, type VerifyConfig } from '../../../src/verify/types.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const digest = `sha256:${'a'.repeat(64)}`;
const descriptor = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 100 };
const client = { registry: 'reg.test', repository: 'team/app' } as unknown as RegistryReader;

function reader(secrets: Record<string, Record<string, string>>): KubeReader {
  return {
    async getSecret(ns, name) {
      const d = secrets[`${ns}/${name}`];
      return d ? ({ metadata: { name, namespace: ns, resourceVersion: '1' }, data: Object.fromEntries(Object.entries(d).map(([k, v]) => [k, b64(v)])) } as Secret) : null;
    },
    async getServiceAccount() {
      return null;
    },
  };
}

const obj = (verify: OCIRepository['spec']['verify']): OCIRepository =>
  ({ apiVersion: 'source.ocisource.dev/v1', kind: 'OCIRepository', metadata: { name: 'app', namespace: 'team' }, spec: { url: 'oci://reg.test/team/app', interval: '1m', verify } }) as OCIRepository;

const outcome = (status: 'verified' | 'failed'): VerificationOutcome =>
  status === 'verified'
    ? { provider: 'cosign', status, authenticity: 'established', signature: 'sig', message: 'ok', details: {}, warnings: [], attempts: [] }
    : { provider: 'cosign', status, code: 'signature-invalid', message: 'bad', details: {}, warnings: [], attempts: [] };

/** A provider whose fingerprint is the key material's content and whose verify calls are counted. */
function fakeProviders(result: () => VerificationOutcome): { providers: Record<ProviderName, Provider>; prepared: VerifyConfig[]; verified: number } {
  const state = { prepared: [] as VerifyConfig[], verified: 0 };
  const p: Provider = {
    name: 'cosign',
    async prepare(config) {
      state.prepared.push(config);
      return {
        provider: config.provider,
        fingerprint: config.secret?.data['cosign.pub']?.toString() ?? 'keyless',
        notes: [],
        async verify() {
          state.verified++;
          return result();
        },
      };
    },
  };
  return Object.assign(state, { providers: { cosign: p, notation: { ...p, name: 'notation' as const } } });
}

test('providerLabel names keyless cosign apart from key-based', () => {
  assert.equal(providerLabel(obj({ provider: 'cosign', secretRef: { name: 'k' } })), 'cosign');
  assert.equal(providerLabel(obj({ provider: 'cosign' })), 'cosign keyless');
  assert.equal(providerLabel(obj({ provider: 'notation', secretRef: { name: 'n' } })), 'notation');
  assert.equal(providerLabel(obj(undefined)), '');
});

test('verifyConfig: secretRef and trustedRootSecretRef contents, identities passed through', async () => {
  const r = reader({ 'team/keys': { 'cosign.pub': 'PUB' }, 'team/root': { 'trusted_root.json': '{}' } });
  const c = await verifyConfig(obj({ provider: 'cosign', secretRef: { name: 'keys' }, trustedRootSecretRef: { name: 'root' }, matchOIDCIdentity: [{ issuer: 'i', subject: 's' }] }), r);
  assert.equal(c.secret?.name, 'team/keys');
  assert.equal(c.secret?.data['cosign.pub']?.toString(), 'PUB');
  assert.equal(c.trustedRoot?.data['trusted_root.json']?.toString(), '{}');
  assert.deepEqual(c.matchOIDCIdentity, [{ issuer: 'i', subject: 's' }]);
});

test('verifyConfig: every missing input is a VerifyConfigError a user can act on', async () => {
  const r = reader({});
  const cases: [OCIRepository['spec']['verify'], string, RegExp][] = [
    [{ provider: 'cosign', secretRef: { name: 'gone' } }, 'secret-not-found', /verification secret 'team\/gone' not found/],
    [{ provider: 'notation' }, 'secret-required', /spec.verify.secretRef is required for provider 'notation'/],
    [{ provider: 'cosign', trustedRootSecretRef: { name: 'gone' } }, 'secret-not-found', /trusted root secret 'team\/gone' not found/],
    [{ provider: 'cosign', secretRef: { name: 'Not_A_Name' } }, 'secret-not-found', /not a valid Kubernetes object name/],
  ];
  for (const [verify, code, message] of cases) {
    await assert.rejects(verifyConfig(obj(verify), r), (e: Error) => e instanceof VerifyConfigError && e.code === code && message.test(e.message), JSON.stringify(verify));
  }
});

test('runVerification: a passing result is reused for the same digest and trust material, re-verified when the material changes', async () => {
  const secrets = { 'team/keys': { 'cosign.pub': 'KEY-1' } };
  const f = fakeProviders(() => outcome('verified'));
  const cache = new VerifyCache();
  const run = () => runVerification({ obj: obj({ provider: 'cosign', secretRef: { name: 'keys' } }), getter: reader(secrets), providers: f.providers, cache, client, descriptor, limits: {} });
  const first = await run();
  assert.equal(first.cached, false);
  assert.equal(first.outcome.status, 'verified');
  const second = await run();
  assert.equal(second.cached, true);
  assert.equal(f.verified, 1, 'the second reconcile does not verify again');
  secrets['team/keys']['cosign.pub'] = 'KEY-2';
  const rotated = await run();
  assert.equal(rotated.cached, false, 'rotated keys change the fingerprint, so the result is not reused');
  assert.equal(f.verified, 2);
});

test('runVerification: failures are never cached (each retry verifies again)', async () => {
  const f = fakeProviders(() => outcome('failed'));
  const cache = new VerifyCache();
  const args = { obj: obj({ provider: 'cosign', secretRef: { name: 'keys' } }), getter: reader({ 'team/keys': { 'cosign.pub': 'K' } }), providers: f.providers, cache, client, descriptor, limits: {} };
  assert.equal((await runVerification(args)).outcome.status, 'failed');
  assert.equal((await runVerification(args)).cached, false);
  assert.equal(f.verified, 2);
});

test('VerifyCache: entries expire after the TTL and the oldest is evicted at the byte bound', () => {
  const cache = new VerifyCache(1000, 2 * VerifyCache.sizeOf('a', outcome('verified')));
  cache.set('a', outcome('verified'), 0);
  assert.ok(cache.get('a', 999));
  assert.equal(cache.get('a', 1000), undefined, 'expired at the TTL, so expiry and revocation are checked again');
  cache.set('a', outcome('verified'), 0);
  cache.set('b', outcome('verified'), 0);
  cache.set('c', outcome('verified'), 0);
  assert.equal(cache.get('a', 1), undefined);
  assert.ok(cache.get('b', 1));
  assert.ok(cache.get('c', 1));
  assert.equal(cache.stats().bytes, 2 * VerifyCache.sizeOf('a', outcome('verified')));
  // Replacing an entry does not count it twice; an entry larger than the whole budget is not kept.
  cache.set('c', outcome('verified'), 2);
  assert.equal(cache.stats().entries, 2);
  const huge = { ...outcome('verified'), message: 'x'.repeat(10_000) } as ReturnType<typeof outcome>;
  cache.set('d', huge, 2);
  assert.equal(cache.get('d', 3), undefined);
  assert.equal(cache.stats().bytes, 2 * VerifyCache.sizeOf('a', outcome('verified')));
});
