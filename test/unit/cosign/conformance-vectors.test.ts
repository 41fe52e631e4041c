// sigstore-conformance bundle-verify cases (INDEX.md §3): a `_fail` suffix means verification
// must fail. These are blob signatures, not OCI artifacts, so they exercise the bundle
// cryptography path (`verifySigstoreBundle`) with our trust-root, key and identity handling; for
// DSSE bundles the in-toto subject must match the artifact's SHA-256, as conformance requires.
// Keyless identities are matched exactly (anchored, escaped), as the conformance client does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { vectorPath } from '../../helpers/shared.ts';
import { checkInTotoSubject, parseBundle, verifySigstoreBundle } from '../../../src/verify/cosign/bundle.ts';
import type { CosignContext } from '../../../src/verify/cosign/context.ts';
import { VerificationError } from '../../../src/verify/errors.ts';
import { DefaultLimits } from '../../../src/api/limits.ts';
import { compileRules } from '../../../src/verify/cosign/identity.ts';
import { parsePublicKeyPem } from '../../../src/verify/cosign/keys.ts';
import { parseTrustedRoot, publicGoodTrustRoot } from '../../../src/verify/cosign/trustroot.ts';

const base = vectorPath('cosign/sigstore/sigstore-conformance/test/assets/bundle-verify');
const DEFAULT_IDENTITY =
  'https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main';
const DEFAULT_ISSUER = 'https://token.actions.githubusercontent.com';
const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/**
 * Failure code per `_fail` case: the first check that fails. Notes: tlog entry bodies are compared
 * before the signature (dsse-invalid-sig: the entry holds the original signature); a modified
 * hashedrekord key invalidates the SET first (incorrect-public-key); 'config' = prepare rejects
 * the malformed key.pub. bundle-with-root-cert: certificates after the leaf are ignored (never
 * trust anchors, as in sigstore-go, whose own v0.1 vectors carry the root and must PASS); the case
 * fails because its inclusion proof has no checkpoint (@sigstore/verify TypeError → malformed).
 */
const EXPECTED_CODE: Record<string, string> = {
  'bundle-empty-certificate-chain_fail': 'malformed',
  'bundle-from-wrong-instance_fail': 'chain-invalid',
  'bundle-with-root-cert_fail': 'malformed',
  'dsse-invalid-sig_fail': 'tlog-body-mismatch',
  'dsse-mismatch-envelope_fail': 'tlog-body-mismatch',
  'dsse-mismatch-sig_fail': 'tlog-body-mismatch',
  'incorrect-public-key_fail': 'rekor-set-invalid',
  'integrated-time-in-future_fail': 'certificate-time-invalid',
  'intoto-expired-certificate_fail': 'certificate-time-invalid',
  'intoto-set-outside-signing-cert-validity_fail': 'certificate-time-invalid',
  'intoto-tsa-timestamp-outside-cert-validity_fail': 'certificate-time-invalid',
  'invalid-ct-key_fail': 'sct-invalid',
  'managed-key-no-key_fail': 'key-mismatch',
  'managed-key-wrong-key_fail': 'config',
  'message-digest-mismatch_fail': 'tlog-body-mismatch',
  'set-invalid-signature_fail': 'rekor-set-invalid',
  'signature-mismatch_fail': 'tlog-body-mismatch',
  'wrong-material_fail': 'signature-invalid',
};

function read(dir: string, f: string): string | undefined {
  const p = path.join(dir, f);
  return existsSync(p) ? readFileSync(p, 'utf8') : undefined;
}

/** Runs one case; returns 'ok' or the failure code ('config' for a rejected configuration). */
function runCase(name: string): string {
  const dir = path.join(base, name);
  const rootJson = read(dir, 'trusted_root.json');
  const trust = rootJson ? parseTrustedRoot(Buffer.from(rootJson), `${name}/trusted_root.json`) : publicGoodTrustRoot();
  const keyPem = read(dir, 'key.pub');
  let ctx: CosignContext;
  if (keyPem !== undefined) {
    try {
      ctx = { trust, mode: { kind: 'key', keys: [parsePublicKeyPem('key.pub', keyPem)] } };
    } catch {
      return 'config';
    }
  } else {
    const identity = (read(dir, 'identity') ?? DEFAULT_IDENTITY).trim();
    const issuer = (read(dir, 'issuer') ?? DEFAULT_ISSUER).trim();
    ctx = { trust, mode: { kind: 'keyless', rules: compileRules([{ issuer: `^${esc(issuer)}$`, subject: `^${esc(identity)}$` }]) } };
  }
  const artifact = existsSync(path.join(dir, 'artifact')) ? readFileSync(path.join(dir, 'artifact')) : readFileSync(path.join(base, '..', 'a.txt'));
  try {
    const bundle = parseBundle(readFileSync(path.join(dir, 'bundle.sigstore.json')), DefaultLimits);
    if (bundle.content.$case === 'dsseEnvelope') {
      checkInTotoSubject(bundle, `sha256:${createHash('sha256').update(artifact).digest('hex')}`, DefaultLimits);
      verifySigstoreBundle(bundle, { ...ctx, limits: DefaultLimits });
    } else {
      verifySigstoreBundle(bundle, { ...ctx, limits: DefaultLimits }, { artifact });
    }
    return 'ok';
  } catch (err) {
    if (err instanceof VerificationError) return err.code;
    throw err;
  }
}

const cases = readdirSync(base, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();

test('all conformance directories are covered', () => {
  assert.ok(cases.length >= 25, `found ${cases.length}`);
  for (const c of cases.filter((c) => c.endsWith('_fail'))) assert.ok(EXPECTED_CODE[c], `no expected code for ${c}`);
});

for (const name of cases) {
  const shouldFail = name.endsWith('_fail');
  test(`conformance ${name}: ${shouldFail ? 'FAIL' : 'PASS'}`, () => {
    const got = runCase(name);
    if (shouldFail) {
      assert.notEqual(got, 'ok');
      assert.equal(got, EXPECTED_CODE[name]);
    } else {
      assert.equal(got, 'ok');
    }
  });
}
