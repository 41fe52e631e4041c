// prepare(): Secret / trusted root / identity configuration errors, fingerprints, key rotation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { vectorPath } from '../../helpers/shared.ts';
import { MemoryRegistry, pushSigManifest } from '../../helpers/cosign-registry.ts';
import { generateKey, signLegacy } from '../../helpers/cosign-sign.ts';
import { codes, prepareKeyless, prepareKeys, run, secret } from '../../helpers/cosign-verify.ts';
import { cosignProvider } from '../../../src/verify/cosign/index.ts';
import { VerifyConfigError } from '../../../src/verify/types.ts';
import { compileGoRegexp, compileRules } from '../../../src/verify/cosign/identity.ts';

const isConfigError = (code: string, re: RegExp) => (e: unknown): boolean =>
  e instanceof VerifyConfigError && e.code === code && re.test(e.message);

test('provider name', () => {
  assert.equal(cosignProvider.name, 'cosign');
});

test('no .pub key in the Secret → VerifyConfigError naming the Secret', async () => {
  await assert.rejects(prepareKeys({ 'cosign.key': 'x', 'notes.txt': 'y' }), isConfigError('no-public-keys', /secret default\/cosign-keys: no key ending in '\.pub'/));
  await assert.rejects(prepareKeys({}), isConfigError('no-public-keys', /default\/cosign-keys/));
});

test('bad .pub key → VerifyConfigError naming the Secret and the key', async () => {
  const good = generateKey('p256').pubPem;
  const cases: Record<string, string> = {
    'garbage.pub': 'not a pem',
    'cert.pub': readFileSync(vectorPath('cosign/containers/image/signature/fixtures/fulcio_v1.crt.pem'), 'utf8'),
    'private.pub': generateKey('p256').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    'badbody.pub': '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n',
    'smallrsa.pub': (await import('node:crypto')).generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
  for (const [name, pem] of Object.entries(cases)) {
    await assert.rejects(prepareKeys({ 'good.pub': good, [name]: pem }), isConfigError('invalid-public-key', new RegExp(`secret default/cosign-keys: key '${name.replace('.', '\\.')}'`)), name);
  }
  // conformance managed-key-wrong-key_fail/key.pub is a malformed key
  const wrong = readFileSync(vectorPath('cosign/sigstore/sigstore-conformance/test/assets/bundle-verify/managed-key-wrong-key_fail/key.pub'), 'utf8');
  await assert.rejects(prepareKeys({ 'key.pub': wrong }), isConfigError('invalid-public-key', /key 'key\.pub'/));
});

test('the c/image RSA key (some-rsa-key.pub) is a valid cosign key', async () => {
  const pem = readFileSync(vectorPath('cosign/containers/image/signature/fixtures/some-rsa-key.pub'), 'utf8');
  const v = await prepareKeys({ 'rsa.pub': pem });
  assert.match(v.fingerprint, /^[0-9a-f]{64}$/);
});

test('keyless without matchOIDCIdentity → VerifyConfigError (not "accept anyone")', async () => {
  await assert.rejects(cosignProvider.prepare({ provider: 'cosign' }), isConfigError('no-identity', /matchOIDCIdentity/));
  await assert.rejects(prepareKeyless([]), isConfigError('no-identity', /matchOIDCIdentity/));
});

test('invalid identity regexp → VerifyConfigError', async () => {
  await assert.rejects(prepareKeyless([{ issuer: '(', subject: '.*' }]), isConfigError('invalid-identity', /matchOIDCIdentity\[0\]\.issuer/));
  await assert.rejects(prepareKeyless([{ issuer: '.*', subject: '' }]), isConfigError('invalid-identity', /matchOIDCIdentity\[0\]\.subject/));
});

test('trusted root Secret: missing key or invalid JSON → VerifyConfigError', async () => {
  const id = [{ issuer: '.*', subject: '.*' }];
  await assert.rejects(
    cosignProvider.prepare({ provider: 'cosign', matchOIDCIdentity: id, trustedRoot: secret('ns/root', { 'root.json': '{}' }) }),
    isConfigError('missing-trusted-root', /secret ns\/root: key 'trusted_root\.json' not found/),
  );
  await assert.rejects(prepareKeyless(id, '{nope'), isConfigError('invalid-trusted-root', /trusted_root\.json/));
  await assert.rejects(prepareKeyless(id, '{"mediaType":"application/json"}'), isConfigError('invalid-trusted-root', /mediaType/));
});

test('Go RE2 syntax: leading (?i), (?P<name>), \\A \\z', () => {
  assert.ok(compileGoRegexp('(?i)^DEV@EXAMPLE\\.COM$').test('dev@example.com'));
  assert.ok(compileGoRegexp('^(?P<user>[a-z]+)@x$').test('abc@x'));
  assert.ok(compileGoRegexp('\\Aabc\\z').test('abc'));
  assert.ok(!compileGoRegexp('\\Aabc\\z').test('abcd'));
  // Not RE2: refused as cosign refuses them. Linear time: no catastrophic backtracking.
  assert.throws(() => compileGoRegexp('^(dev)@x\\1$'), /invalid escape sequence/);
  assert.throws(() => compileGoRegexp('^(?=dev)dev$'), /invalid or unsupported Perl syntax/);
  assert.equal(compileGoRegexp('^(a+)+$').test(`${'a'.repeat(5000)}!`), false);
  // Compiling is linear-ish but not free: all expressions together are bounded before any is compiled.
  assert.throws(() => compileRules([{ issuer: 'x', subject: 'a'.repeat(16_384) }]), /more than 16384 \(limit identityPatternsMaxLength\)/);
  assert.equal(compileRules([{ issuer: 'x', subject: 'a'.repeat(16_383) }]).length, 1);
});

test('fingerprint: stable for equal input; changes with keys, identities and trusted root', async () => {
  const a = generateKey('p256');
  const b = generateKey('p256');
  const f1 = (await prepareKeys({ 'a.pub': a.pubPem })).fingerprint;
  assert.equal((await prepareKeys({ 'a.pub': a.pubPem })).fingerprint, f1);
  assert.notEqual((await prepareKeys({ 'a.pub': b.pubPem })).fingerprint, f1);
  assert.notEqual((await prepareKeys({ 'a.pub': a.pubPem, 'b.pub': b.pubPem })).fingerprint, f1);
  const root = readFileSync(vectorPath('cosign/sigstore/cosign/pkg/cosign/testdata/trusted_root_pgi.json'));
  assert.notEqual((await prepareKeys({ 'a.pub': a.pubPem }, root)).fingerprint, f1);
  const k1 = (await prepareKeyless([{ issuer: 'a', subject: 'b' }])).fingerprint;
  assert.notEqual((await prepareKeyless([{ issuer: 'a', subject: 'c' }])).fingerprint, k1);
  assert.notEqual((await prepareKeyless([{ issuer: 'a', subject: 'b' }], root)).fingerprint, k1);
});

test('key rotation: a new key set gives a new fingerprint and old signatures fail', async () => {
  const oldKey = generateKey('p256');
  const newKey = generateKey('ed25519');
  const reg = new MemoryRegistry();
  const target = reg.putJSONManifest({ schemaVersion: 2, config: reg.putBlob(Buffer.from('{}')), layers: [] });
  pushSigManifest(reg, target.digest, [signLegacy(oldKey, target.digest)]);
  const before = await prepareKeys({ 'cosign.pub': oldKey.pubPem });
  const after = await prepareKeys({ 'cosign.pub': newKey.pubPem });
  assert.notEqual(before.fingerprint, after.fingerprint);
  assert.equal((await run(before, reg, target)).status, 'verified');
  assert.deepEqual(codes(await run(after, reg, target)), ['signature-invalid']);
});

test('key mode with matchOIDCIdentity set: identities ignored, noted', async () => {
  const v = await cosignProvider.prepare({
    provider: 'cosign',
    secret: secret('ns/keys', { 'cosign.pub': generateKey('p256').pubPem }),
    matchOIDCIdentity: [{ issuer: '.*', subject: '.*' }],
  });
  assert.match(v.notes.join(), /matchOIDCIdentity is ignored/);
});

test('the embedded public-good root comes from @sigstore/tuf seeds and matches the extracted vector', async () => {
  const { publicGoodTrustRoot } = await import('../../../src/verify/cosign/trustroot.ts');
  const pg = publicGoodTrustRoot();
  const extracted = JSON.parse(readFileSync(vectorPath('cosign/sigstore/sigstore-js/packages/tuf/seeds.trusted_root.extracted.json'), 'utf8')) as { tlogs: unknown[]; ctlogs: unknown[] };
  assert.equal(pg.material.tlogs.length, extracted.tlogs.length);
  assert.equal(pg.material.ctlogs.length, extracted.ctlogs.length);
  assert.ok(pg.material.tlogs.some((t) => t.logID.toString('hex') === 'c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d'));
});
