// Issue #7 item 2: a valid Notation envelope whose *unprotected* io.cncf.notary.timestampSignature header
// is replaced by an RFC 3161 token (from a real `openssl ts` TSA) that carries K certificates sharing one
// subject and one key, so each of them "issues" every other. Unbounded depth-first path building tried
// every ordering of them synchronously (K=8: seconds, K=12: hours) and spec.timeout could never fire.
// Chain building is bounded now: the signature fails with a typed limit failure naming the budget, and
// the event loop keeps turning meanwhile (bound chosen generously, 5 s, for a loaded 2-core machine: before
// the fix the loop was blocked for the whole search, 7 s on an idle machine at K=8).
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { issue, opensslTSA, pem, pushSignature, sameKeyCertificates, signJWS, type Issued } from '../../helpers/notation-sign.ts';
import { OCILayoutReader } from '../../helpers/oci-layout.ts';
import { prepareNotation } from '../../../src/verify/notation/index.ts';
import { EKU } from '../../../src/verify/x509/certs.ts';
import { offlineFetch } from './fixtures.ts';

const SUBJECT = 'CN=Loop CA,O=Loop,ST=WA,C=US';

const policy = JSON.stringify({
  version: '1.0',
  trustPolicies: [{ name: 'ts', registryScopes: ['*'], signatureVerification: { level: 'strict' }, trustStores: ['ca:code', 'tsa:acme'], trustedIdentities: ['*'] }],
});

describe('RFC 3161 token with K certificates sharing one subject and key', () => {
  let caRoot: Issued;
  let tsaRoot: Issued;
  before(async () => {
    caRoot = await issue({ subject: 'CN=Code Root,O=Acme,ST=WA,C=US', ca: true });
    tsaRoot = await issue({ subject: 'CN=TSA Root,O=Acme,ST=WA,C=US', ca: true });
  });

  async function verifyWithLoopToken(k: number) {
    const loop = await sameKeyCertificates(k, SUBJECT);
    const tsaLeaf = await issue({ subject: 'CN=Loop TSA,O=Loop,ST=WA,C=US', issuer: loop[0]!, eku: [EKU.timeStamping], ekuCritical: true });
    const stamp = await opensslTSA(tsaLeaf, [tsaLeaf, ...loop]);
    const reader = new OCILayoutReader({ schemaVersion: 2, manifests: [] }, new Map());
    const config = reader.put('application/vnd.oci.image.config.v1+json', Buffer.from('{}'));
    const subject = reader.putManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [] });
    const leaf = await issue({ subject: 'CN=signer,O=Acme,ST=WA,C=US', issuer: caRoot });
    pushSignature(reader, subject, await signJWS({ target: subject, chain: [leaf, caRoot], alg: 'ES256', timestamp: stamp }), 'application/jose+json');
    const p = prepareNotation({ provider: 'notation', secret: { name: 'ns/s', data: { 'trustpolicy.json': Buffer.from(policy), 'ca.code.pem': pem(caRoot), 'tsa.acme.pem': pem(tsaRoot) } } }, { fetch: offlineFetch });
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    await new Promise((r) => setTimeout(r, 30)); // the histogram records only after its first tick
    const o = await p.verify({ registry: reader, descriptor: subject }, { limits: { maxSignatures: 3 } });
    // A loop blocked until now is only recorded once the histogram's timer runs again.
    await new Promise((r) => setTimeout(r, 50));
    delay.disable();
    return { o, maxDelayMs: delay.max / 1e6 };
  }

  test('K=8: chain building stops at its signature-check budget with a typed limit failure; the event loop keeps turning', async () => {
    const { o, maxDelayMs } = await verifyWithLoopToken(8);
    assert.equal(o.status, 'failed');
    assert.equal(o.status === 'failed' && o.code, 'limit-exceeded', o.message);
    assert.match(o.message, /authenticTimestamp validation failed: .*chain building .* stopped after 100 certificate signature checks \(limit maxChainSignatureChecks\)/);
    assert.ok(maxDelayMs < 5000, `event loop blocked for ${maxDelayMs.toFixed(0)} ms`);
  });
});
