// A public key Secret and key-signed `.sig` layers without a Rekor entry (the common set-up) need
// none of the Sigstore, PKI.js or RE2 code: they stay unloaded, which is most of what a controller
// verifying a thousand such objects would otherwise hold. Each case runs in a fresh process, as
// the controller starts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inFreshNode, projectRoot as root } from '../../helpers/shared.ts';
const Heavy = ['pkijs', 'asn1js', '@sigstore/verify', '@sigstore/bundle', 're2js'];

/** Verifies one key-signed `.sig` in a fresh node; then runs `after` there; returns the loaded heavy packages. */
function loadedAfterKeyVerification(after = ''): string[] {
  const script = `
    import { createRequire } from 'node:module';
    import { createProviders } from '${root}/src/verify/providers.ts';
    import { MemoryRegistry, pushSigManifest } from '${root}/test/helpers/cosign-registry.ts';
    import { generateKey, signLegacy } from '${root}/test/helpers/cosign-sign.ts';
    const key = generateKey('p256');
    const reg = new MemoryRegistry('registry.test', 'org/app');
    const cfg = reg.putBlob(Buffer.from('{}'), 'application/vnd.oci.image.config.v1+json');
    const descriptor = reg.putJSONManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: cfg, layers: [] }, 'v1');
    pushSigManifest(reg, descriptor.digest, [signLegacy(key, descriptor.digest)]);
    const prepared = await createProviders().cosign.prepare({ provider: 'cosign', secret: { name: 'team/cosign', data: { 'cosign.pub': Buffer.from(key.pubPem) } } });
    const outcome = await prepared.verify({ registry: reg, descriptor }, { limits: { maxSignatures: 10 } });
    if (outcome.status !== 'verified') throw new Error(outcome.message);
    ${after}
    const files = Object.keys(createRequire(import.meta.url).cache);
    console.log(JSON.stringify(${JSON.stringify(Heavy)}.filter((p) => files.some((f) => f.includes('/node_modules/' + p + '/')))));
  `;
  return inFreshNode<string[]>(script);
}

test('verifying a key-signed .sig without a Rekor entry loads no Sigstore, PKI.js or RE2 code', () => {
  assert.deepEqual(loadedAfterKeyVerification(), []);
});

test('the check can see them: loading the bundle verifier brings them in', () => {
  assert.ok(loadedAfterKeyVerification(`await import('${root}/src/verify/cosign/bundle.ts');`).length >= 3);
});
