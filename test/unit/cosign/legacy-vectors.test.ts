// containers/image signature/fixtures (legacy `.sig` cosign signatures), expected outcomes from
// /work/shared/vectors/cosign/INDEX.md §1.
//
// Not applicable here:
// - dir-img-cosign-no-manifest: the verifier always starts from a digest the registry client
//   resolved, so "no manifest" fails before verification (resolution), never in the verifier.
// - dir-img-cosign-valid-with-tag's `:othertag` failure is c/image-specific (it matches
//   docker-reference); cosign and Flux ignore docker-reference, so only the PASS applies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { vectorPath } from '../../helpers/shared.ts';
import { loadDirImg, pushSigManifest, readCImageSignature, MemoryRegistry } from '../../helpers/cosign-registry.ts';
import { codes, prepareKeyless, prepareKeys, readText, run } from '../../helpers/cosign-verify.ts';

const fx = (...p: string[]): string => vectorPath('cosign/containers/image/signature/fixtures', ...p);
const cosignPub = (): string => readText(fx('cosign.pub'));
const cosign2Pub = (): string => readText(fx('cosign2.pub'));

test('dir-img-cosign-valid: PASS with cosign.pub, names the format and key fingerprint', async () => {
  const { registry, target } = loadDirImg(fx('dir-img-cosign-valid'));
  const v = await prepareKeys({ 'cosign.pub': cosignPub() });
  const o = await run(v, registry, target);
  assert.equal(o.status, 'verified', JSON.stringify(o));
  assert.match(o.message, /legacy \.sig/);
  assert.match(o.message, /cosign\.pub/);
  assert.equal((o.details.key as { name: string }).name, 'cosign.pub');
  assert.match(String((o.details.key as { fingerprint: string }).fingerprint), /^[0-9a-f]{64}$/);
  assert.equal(o.details.format, 'legacy');
});

test('dir-img-cosign-valid: FAIL with cosign2.pub (signature-invalid)', async () => {
  const { registry, target } = loadDirImg(fx('dir-img-cosign-valid'));
  const o = await run(await prepareKeys({ 'cosign2.pub': cosign2Pub() }), registry, target);
  assert.equal(o.status, 'failed');
  assert.deepEqual(codes(o), ['signature-invalid']);
  assert.equal(o.status === 'failed' && o.code, 'signature-invalid');
});

test('dir-img-cosign-valid: PASS when any .pub key in the Secret matches; non-.pub keys ignored', async () => {
  const { registry, target } = loadDirImg(fx('dir-img-cosign-valid'));
  const v = await prepareKeys({ 'a.pub': cosign2Pub(), 'b.pub': cosignPub(), 'README': 'not a key' });
  const o = await run(v, registry, target);
  assert.equal(o.status, 'verified');
  assert.equal((o.details.key as { name: string }).name, 'b.pub');
});

test('dir-img-cosign-valid-2: PASS (two valid signatures, first wins)', async () => {
  const { registry, target } = loadDirImg(fx('dir-img-cosign-valid-2'));
  const o = await run(await prepareKeys({ 'cosign.pub': cosignPub() }), registry, target);
  assert.equal(o.status, 'verified');
  assert.deepEqual(codes(o), ['ok']);
});

test('dir-img-cosign-mixed: PASS overall; signature-1 alone FAILs', async () => {
  const dir = fx('dir-img-cosign-mixed');
  const v = await prepareKeys({ 'cosign.pub': cosignPub() });
  const both = loadDirImg(dir);
  const o = await run(v, both.registry, both.target);
  assert.equal(o.status, 'verified');
  assert.deepEqual(codes(o), ['signature-invalid', 'ok']);
  const first = loadDirImg(dir, ['signature-1']);
  const o1 = await run(v, first.registry, first.target);
  assert.equal(o1.status, 'failed');
  assert.deepEqual(codes(o1), ['signature-invalid']);
});

test('dir-img-cosign-mixed: maxSignatures=1 stops after the first (failing) layer', async () => {
  const { registry, target } = loadDirImg(fx('dir-img-cosign-mixed'));
  const o = await run(await prepareKeys({ 'cosign.pub': cosignPub() }), registry, target, 1);
  assert.equal(o.status, 'failed');
  assert.deepEqual(codes(o), ['signature-invalid']);
});

test('unknown-cosign-key.signature: FAIL with cosign.pub', async () => {
  const { registry, target } = loadDirImg(fx('dir-img-cosign-valid'), [fx('unknown-cosign-key.signature')]);
  const o = await run(await prepareKeys({ 'cosign.pub': cosignPub() }), registry, target);
  assert.equal(o.status, 'failed');
  assert.deepEqual(codes(o), ['signature-invalid']);
});

test('dir-img-cosign-modified-manifest: FAIL on the digest claim (crypto is valid)', async () => {
  const { registry, target } = loadDirImg(fx('dir-img-cosign-modified-manifest'));
  const o = await run(await prepareKeys({ 'cosign.pub': cosignPub() }), registry, target);
  assert.equal(o.status, 'failed');
  assert.deepEqual(codes(o), ['digest-mismatch']);
  assert.match(o.message, /634a8f35/);
});

test('dir-img-cosign-manifest-digest-error: FAIL (the v2s1 manifest digest is not the signed one)', async () => {
  const { registry, target } = loadDirImg(fx('dir-img-cosign-manifest-digest-error'));
  const o = await run(await prepareKeys({ 'cosign.pub': cosignPub() }), registry, target);
  assert.equal(o.status, 'failed');
  assert.deepEqual(codes(o), ['digest-mismatch']);
});

test('a valid signature copied onto another image fails (digest-mismatch), unlike Flux', async () => {
  const sig = readCImageSignature(fx('dir-img-cosign-valid/signature-1'));
  const reg = new MemoryRegistry();
  const other = reg.putJSONManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: reg.putBlob(Buffer.from('{}')), layers: [] });
  pushSigManifest(reg, other.digest, [sig]);
  const o = await run(await prepareKeys({ 'cosign.pub': cosignPub() }), reg, other);
  assert.equal(o.status, 'failed');
  assert.deepEqual(codes(o), ['digest-mismatch']);
});

test('dir-img-cosign-valid-with-tag: PASS (docker-reference with tag and optional fields are ignored)', async () => {
  const { registry, target } = loadDirImg(fx('dir-img-cosign-valid-with-tag'));
  const o = await run(await prepareKeys({ 'cosign.pub': cosignPub() }), registry, target);
  assert.equal(o.status, 'verified');
});

test('dir-img-cosign-other-attachment: the text/plain layer is ignored → no-signatures', async () => {
  const { registry, target } = loadDirImg(fx('dir-img-cosign-other-attachment'));
  const o = await run(await prepareKeys({ 'cosign.pub': cosignPub() }), registry, target);
  assert.equal(o.status, 'failed');
  assert.equal(o.status === 'failed' && o.code, 'no-signatures');
  assert.equal(o.attempts.length, 0);
});

test('other attachment next to a valid signature: PASS, attachment not counted', async () => {
  const dir = fx('dir-img-cosign-other-attachment');
  const { registry, target } = loadDirImg(dir, [path.join(dir, 'signature-1'), fx('dir-img-cosign-valid/signature-1')]);
  const o = await run(await prepareKeys({ 'cosign.pub': cosignPub() }), registry, target);
  assert.equal(o.status, 'verified');
  assert.deepEqual(codes(o), ['ok']);
});

test('no .sig tag at all: failed no-signatures', async () => {
  const reg = new MemoryRegistry();
  const t = reg.putJSONManifest({ schemaVersion: 2, config: reg.putBlob(Buffer.from('{}')), layers: [] });
  const o = await run(await prepareKeys({ 'cosign.pub': cosignPub() }), reg, t);
  assert.equal(o.status, 'failed');
  assert.equal(o.status === 'failed' && o.code, 'no-signatures');
});

test('dir-img-cosign-key-rekor-valid: PASS with cosign2.pub, SET verified with the public-good Rekor key', async () => {
  const { registry, target } = loadDirImg(fx('dir-img-cosign-key-rekor-valid'));
  const o = await run(await prepareKeys({ 'cosign2.pub': cosign2Pub() }), registry, target);
  assert.equal(o.status, 'verified', JSON.stringify(o));
  const rekor = o.details.rekor as { logIndex: number; integratedTime: number; logID: string };
  assert.equal(rekor.logID, 'c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d');
  assert.ok(Number.isInteger(rekor.logIndex) && rekor.logIndex > 0);
  assert.match(o.message, /Rekor log index \d+ integrated 20\d\d-/);
});

function withAnnotation(file: string, key: string, f: (v: string) => string | undefined) {
  const sig = readCImageSignature(file);
  const v = f(sig.annotations[key] ?? '');
  if (v === undefined) delete sig.annotations[key];
  else sig.annotations[key] = v;
  return sig;
}

function onImage(dir: string, sig: ReturnType<typeof readCImageSignature>) {
  const { registry, target } = loadDirImg(dir, []);
  pushSigManifest(registry, target.digest, [sig]);
  return { registry, target };
}

test('dir-img-cosign-key-rekor-valid: a modified SET fails even in key mode (rekor-set-invalid)', async () => {
  const dir = fx('dir-img-cosign-key-rekor-valid');
  const sig = withAnnotation(path.join(dir, 'signature-1'), 'dev.sigstore.cosign/bundle', (b) => {
    const j = JSON.parse(b) as { Payload: { logIndex: number } };
    j.Payload.logIndex += 1;
    return JSON.stringify(j);
  });
  const { registry, target } = onImage(dir, sig);
  const o = await run(await prepareKeys({ 'cosign2.pub': cosign2Pub() }), registry, target);
  assert.equal(o.status, 'failed');
  assert.deepEqual(codes(o), ['rekor-set-invalid']);
});

test('dir-img-cosign-key-rekor-valid: SET from an unknown Rekor (custom trusted root) fails', async () => {
  const dir = fx('dir-img-cosign-key-rekor-valid');
  // sigstore-go's scaffolding root has a different Rekor key.
  const root = readText(vectorPath('cosign/sigstore/sigstore-go/pkg/testing/data/trusted-roots/scaffolding.json'));
  const { registry, target } = loadDirImg(dir);
  const o = await run(await prepareKeys({ 'cosign2.pub': cosign2Pub() }, root), registry, target);
  assert.equal(o.status, 'failed');
  assert.deepEqual(codes(o), ['rekor-set-invalid']);
});

test('dir-img-cosign-key-rekor-valid: without the bundle annotation key mode still passes (tlog optional with a key)', async () => {
  const dir = fx('dir-img-cosign-key-rekor-valid');
  const sig = withAnnotation(path.join(dir, 'signature-1'), 'dev.sigstore.cosign/bundle', () => undefined);
  const { registry, target } = onImage(dir, sig);
  const o = await run(await prepareKeys({ 'cosign2.pub': cosign2Pub() }), registry, target);
  assert.equal(o.status, 'verified');
  assert.equal(o.details.rekor, undefined);
});

const PUBLIC_GOOD_ID = { issuer: '^https://github\\.com/login/oauth$', subject: '^mitr@redhat\\.com$' };

test('dir-img-cosign-fulcio-rekor-valid: keyless PASS against the embedded public-good root', async () => {
  const { registry, target } = loadDirImg(fx('dir-img-cosign-fulcio-rekor-valid'));
  const o = await run(await prepareKeyless([PUBLIC_GOOD_ID]), registry, target);
  assert.equal(o.status, 'verified', JSON.stringify(o));
  const id = o.details.identity as { issuer: string; subjects: string[] };
  assert.equal(id.issuer, 'https://github.com/login/oauth'); // from .1.1: the cert has no .1.8
  assert.deepEqual(id.subjects, ['mitr@redhat.com']);
  assert.equal((o.details.rekor as { integratedTime: number }).integratedTime, 1674247893);
  assert.match(o.message, /mitr@redhat\.com/);
  assert.match(o.message, /github\.com\/login\/oauth/);
});

test('dir-img-cosign-fulcio-rekor-valid: several identity rules are OR-ed', async () => {
  const { registry, target } = loadDirImg(fx('dir-img-cosign-fulcio-rekor-valid'));
  const v = await prepareKeyless([{ issuer: '^https://accounts\\.google\\.com$', subject: '.*' }, PUBLIC_GOOD_ID]);
  const o = await run(v, registry, target);
  assert.equal(o.status, 'verified');
  assert.deepEqual((o.details.identity as { matched: unknown }).matched, PUBLIC_GOOD_ID);
});

test('dir-img-cosign-fulcio-rekor-valid: wrong email / wrong issuer → identity-mismatch', async () => {
  const { registry, target } = loadDirImg(fx('dir-img-cosign-fulcio-rekor-valid'));
  for (const id of [
    { issuer: PUBLIC_GOOD_ID.issuer, subject: '^someone@redhat\\.com$' },
    { issuer: '^https://token\\.actions\\.githubusercontent\\.com$', subject: PUBLIC_GOOD_ID.subject },
  ]) {
    const o = await run(await prepareKeyless([id]), registry, target);
    assert.equal(o.status, 'failed');
    assert.deepEqual(codes(o), ['identity-mismatch']);
  }
});

test('identity regexes are unanchored like cosign (Go MatchString): a substring pattern matches', async () => {
  const { registry, target } = loadDirImg(fx('dir-img-cosign-fulcio-rekor-valid'));
  const o = await run(await prepareKeyless([{ issuer: 'github', subject: 'redhat' }]), registry, target);
  assert.equal(o.status, 'verified');
});

test('dir-img-cosign-fulcio-rekor-valid: key mode with some key does not accept the keyless signature', async () => {
  const { registry, target } = loadDirImg(fx('dir-img-cosign-fulcio-rekor-valid'));
  const o = await run(await prepareKeys({ 'cosign.pub': cosignPub() }), registry, target);
  assert.equal(o.status, 'failed');
  assert.deepEqual(codes(o), ['signature-invalid']);
});

test('dir-img-cosign-fulcio-rekor-valid: modified cert / SET / Rekor key fail', async () => {
  const dir = fx('dir-img-cosign-fulcio-rekor-valid');
  const file = path.join(dir, 'signature-1');
  const v = await prepareKeyless([PUBLIC_GOOD_ID]);
  // SET changed
  {
    const sig = withAnnotation(file, 'dev.sigstore.cosign/bundle', (b) => {
      const j = JSON.parse(b) as { Payload: { integratedTime: number } };
      j.Payload.integratedTime += 1;
      return JSON.stringify(j);
    });
    const { registry, target } = onImage(dir, sig);
    assert.deepEqual(codes(await run(v, registry, target)), ['rekor-set-invalid']);
  }
  // certificate replaced by another public-good Fulcio leaf: the signature no longer verifies
  {
    const sig = withAnnotation(file, 'dev.sigstore.cosign/certificate', () => readText(fx('fulcio-cert')));
    const { registry, target } = onImage(dir, sig);
    assert.deepEqual(codes(await run(v, registry, target)), ['signature-invalid']);
  }
  // certificate with one byte flipped inside the signature value → does not parse or chain
  {
    const sig = withAnnotation(file, 'dev.sigstore.cosign/certificate', (pem) => {
      const lines = pem.split('\n');
      const i = lines.length - 4;
      const l = lines[i]!;
      lines[i] = (l[5] === 'A' ? 'B' : 'A').padStart(6, l.slice(0, 5)) + l.slice(6);
      return lines.join('\n');
    });
    const { registry, target } = onImage(dir, sig);
    const c = codes(await run(v, registry, target));
    assert.equal(c.length, 1);
    assert.ok(['chain-invalid', 'malformed', 'key-mismatch', 'signature-invalid'].includes(c[0]!), c[0]);
  }
  // Rekor key not trusted: a root with another Rekor
  {
    const root = readText(vectorPath('cosign/sigstore/sigstore-go/pkg/testing/data/trusted-roots/scaffolding.json'));
    const v2 = await prepareKeyless([PUBLIC_GOOD_ID], root);
    const { registry, target } = loadDirImg(dir);
    assert.deepEqual(codes(await run(v2, registry, target)), ['rekor-set-invalid']);
  }
});

test('dir-img-cosign-fulcio-rekor-valid: no Rekor bundle → tlog-missing (offline, no online lookup)', async () => {
  const dir = fx('dir-img-cosign-fulcio-rekor-valid');
  const sig = withAnnotation(path.join(dir, 'signature-1'), 'dev.sigstore.cosign/bundle', () => undefined);
  const { registry, target } = onImage(dir, sig);
  const o = await run(await prepareKeyless([PUBLIC_GOOD_ID]), registry, target);
  assert.deepEqual(codes(o), ['tlog-missing']);
});

test('dir-img-cosign-fulcio-rekor-valid: without the chain annotation it still passes (intermediate is in the trusted root)', async () => {
  const dir = fx('dir-img-cosign-fulcio-rekor-valid');
  const sig = withAnnotation(path.join(dir, 'signature-1'), 'dev.sigstore.cosign/chain', () => undefined);
  const { registry, target } = onImage(dir, sig);
  const o = await run(await prepareKeyless([PUBLIC_GOOD_ID]), registry, target);
  assert.equal(o.status, 'verified');
});
