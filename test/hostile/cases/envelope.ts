// Signature envelopes that are malformed or built to exhaust a parser: Notation JWS and COSE
// (CBOR), RFC 3161 countersignatures and certificates (ASN.1), cosign simple-signing payloads,
// annotations and Sigstore bundles. The tag moves to a new artifact whose only signature is the
// hostile one; verification must fail with a message naming what is wrong.
import { sign as cryptoSign } from 'node:crypto';
import { signCOSE, signJWS } from '../../helpers/notation-sign.ts';
import { cosignPayload, dsseBundle, inTotoStatement, legacyLayer, pae, signBytes, signLegacy } from '../../helpers/cosign-sign.ts';
import { pushCosignSig, pushReferrer } from '../../helpers/push-signatures.ts';
import { cborArray, cborBytes, cborHead, cborMap, cborText, cborUint, coseSign1, der, derLongOid, derNested, derSeq, jsonDeepArrays, jsonDeepObjects, tgzFiles } from '../bytes.ts';
import { cliVerify, notVerified, type CaseContext, type HostileCase, type Profile } from '../types.ts';
import { pushArtifact, pushBlob, pushRawManifest, type Pushed } from '../world.ts';
import { budget, OCIManifest } from './common.ts';

const JWS = 'application/jose+json';
const COSE = 'application/cose';
const NotarySig = 'application/vnd.cncf.notary.signature';
const Bundle = 'application/vnd.dev.sigstore.bundle.v0.3+json';

/** A new artifact at tag v1, not signed (its only signature is the hostile one pushed next). */
export async function unsignedArtifact(ctx: CaseContext): Promise<Pushed & { desc: { digest: string; size: number; mediaType: string } }> {
  const p = await pushArtifact(ctx.world.registry, ctx.repo, 'v1', tgzFiles({ 'app.yaml': `kind: ConfigMap # hostile ${ctx.id}\n` }));
  return { ...p, desc: { digest: p.manifestDigest, size: p.manifest.length, mediaType: OCIManifest } };
}

type Desc = { digest: string; size: number; mediaType: string };

/** A Notation signature manifest holding `envelope`, as a referrer of the new artifact. */
async function notationSigned(ctx: CaseContext, envelope: (target: Desc) => Buffer | Promise<Buffer>, mediaType = JWS): Promise<void> {
  const a = await unsignedArtifact(ctx);
  await pushReferrer(ctx.world.registry, ctx.repo, a.desc, NotarySig, await envelope(a.desc), mediaType);
}

/** A JWS envelope with chosen protected and unprotected headers, signed by the trusted leaf. */
function jws(ctx: CaseContext, target: Desc, o: { protect?: Record<string, unknown>; header?: Record<string, unknown>; payload?: Buffer; x5c?: string[]; rawProtected?: string } = {}): Buffer {
  const { leaf, root } = ctx.world.trust.notation;
  const prot = o.rawProtected ?? Buffer.from(JSON.stringify({ alg: 'ES256', crit: ['io.cncf.notary.signingScheme'], cty: 'application/vnd.cncf.notary.payload.v1+json', 'io.cncf.notary.signingScheme': 'notary.x509', 'io.cncf.notary.signingTime': new Date().toISOString().replace(/\.\d+Z$/, 'Z'), ...o.protect })).toString('base64url');
  const payload = (o.payload ?? Buffer.from(JSON.stringify({ targetArtifact: target }))).toString('base64url');
  const sig = cryptoSign('sha256', Buffer.from(`${prot}.${payload}`), { key: leaf.privateKey, dsaEncoding: 'ieee-p1363' });
  return Buffer.from(JSON.stringify({ payload, protected: prot, header: { x5c: o.x5c ?? [leaf.der.toString('base64'), root.der.toString('base64')], ...o.header }, signature: sig.toString('base64url') }));
}

const b64 = (b: Buffer): string => b.toString('base64');

function envCase(id: string, title: string, profile: Profile, run: (ctx: CaseContext) => Promise<void>, message: RegExp, extra: Partial<HostileCase> = {}): HostileCase {
  return { id, category: 'envelope', title, attacker: 'registry', profile, attack: { kind: 'push', run }, expect: notVerified(message), ...extra };
}

const jwsCase = (id: string, title: string, env: (ctx: CaseContext, t: Desc) => Buffer | Promise<Buffer>, message: RegExp, extra: Partial<HostileCase> = {}): HostileCase =>
  envCase(`jws-${id}`, title, extra.profile ?? 'notation', (ctx) => notationSigned(ctx, (t) => env(ctx, t)), message, extra);
const coseCase = (id: string, title: string, env: (ctx: CaseContext, t: Desc) => Buffer | Promise<Buffer>, message: RegExp, extra: Partial<HostileCase> = {}): HostileCase =>
  envCase(`cose-${id}`, title, extra.profile ?? 'notation', (ctx) => notationSigned(ctx, (t) => env(ctx, t), COSE), message, extra);

/** A cosign `.sig` for the new artifact with one layer: payload and annotations of the case's choosing. */
async function cosignSig(ctx: CaseContext, layer: (digest: string) => { payload: Buffer; annotations: Record<string, string>; size?: number }): Promise<void> {
  const a = await unsignedArtifact(ctx);
  const l = layer(a.manifestDigest);
  if (l.size === undefined) {
    await pushCosignSig(ctx.world.registry, ctx.repo, a.manifestDigest, [{ mimeType: 'application/vnd.dev.cosign.simplesigning.v1+json', payload: l.payload, annotations: l.annotations }]);
    return;
  }
  // A descriptor that lies about the payload's size (the real registry stores it as given).
  const reg = ctx.world.registry;
  const digest = await pushBlob(reg, ctx.repo, l.payload);
  const cfg = await pushBlob(reg, ctx.repo, Buffer.from('{}'));
  await pushRawManifest(reg, ctx.repo, `${a.manifestDigest.replace(':', '-')}.sig`, { schemaVersion: 2, mediaType: OCIManifest, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfg, size: 2 }, layers: [{ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', digest, size: l.size, annotations: l.annotations }] });
}

const cosignCase = (id: string, title: string, layer: (ctx: CaseContext, digest: string) => { payload: Buffer; annotations: Record<string, string>; size?: number }, message: RegExp, extra: Partial<HostileCase> = {}): HostileCase =>
  envCase(`cosign-${id}`, title, extra.profile ?? 'cosign-key', (ctx) => cosignSig(ctx, (d) => layer(ctx, d)), message, extra);

/** A key-signed layer over `payload`. */
const keySigned = (ctx: CaseContext, payload: Buffer, annotations: Record<string, string> = {}) => ({ payload, annotations: { 'dev.cosignproject.cosign/signature': signBytes(ctx.world.trust.cosignKey.privateKey, payload).toString('base64'), ...annotations } });

/** A cosign v0.3 bundle referrer (OCI 1.1) of the new artifact holding `bundle` bytes. */
async function bundleReferrer(ctx: CaseContext, bundle: (digest: string) => Buffer): Promise<void> {
  const a = await unsignedArtifact(ctx);
  await pushReferrer(ctx.world.registry, ctx.repo, a.desc, Bundle, bundle(a.manifestDigest), Bundle);
}
const bundleCase = (id: string, title: string, bundle: (ctx: CaseContext, digest: string) => Buffer, message: RegExp, extra: Partial<HostileCase> = {}): HostileCase =>
  envCase(`bundle-${id}`, title, 'cosign-key', (ctx) => bundleReferrer(ctx, (d) => bundle(ctx, d)), message, extra);

/** A keyless legacy layer with a good certificate and chain but a hostile RFC 3161 annotation and no Rekor bundle. */
async function keylessWithTimestamp(ctx: CaseContext, annotation: (sig: Buffer) => string): Promise<void> {
  const a = await unsignedArtifact(ctx);
  const s = ctx.world.trust.sigstore;
  const leaf = await s.issueLeaf({ email: 'dev@example.com', issuer: 'https://issuer.test', notBefore: new Date(Date.now() - 60_000) });
  const payload = cosignPayload(a.manifestDigest);
  const sig = signBytes(leaf.privateKey, payload);
  await pushCosignSig(ctx.world.registry, ctx.repo, a.manifestDigest, [legacyLayer(payload, sig, { 'dev.sigstore.cosign/certificate': leaf.pem, 'dev.sigstore.cosign/chain': s.chainPem, 'dev.sigstore.cosign/rfc3161timestamp': annotation(sig) })]);
}

// A minimal certificate-shaped DER that is not one: SEQUENCE { SEQUENCE { OID bomb } }.
const oidBombCert = (): Buffer => derSeq(derSeq(derLongOid(200_000)));

const Malformed = /malformed|not valid|invalid|cannot|parse|unmarshal/i;
const CertProblem = /certificate/i;
const TooLarge = /limit|too large|exceeds|bytes/i;
const TimestampProblem = /timestamp/i;
const Nesting = /nest|depth|deep|JSON|CBOR|ASN\.1|parse|malformed|invalid/i;
// Budgets of src/api/limits.ts, named in the message (LimitError: "… (limit <name>)").
const JSONDepth = /limit maxJSONDepth/;
const CBORDepth = /limit maxCBORDepth/;
const EnvelopeBudget = /limit maxEnvelopeSize/;
const CertBudget = /limit maxCertificateSize/;

export function envelopeCases(): HostileCase[] {
  const envelopeMax = budget('maxEnvelopeSize', 4 << 20);
  return [
    // Notation JWS.
    jwsCase('not-json', 'a JWS envelope that is not JSON', () => Buffer.from('garbage{'), /JWS|JSON/, { cli: cliVerify(1, /JWS|JSON/) }),
    jwsCase('json-array', 'a JWS envelope that is a JSON array', () => Buffer.from('[1,2,3]'), /JWS|JSON object/),
    jwsCase('deep-json', 'a JWS envelope of 1,000,000 nested arrays', () => Buffer.from(jsonDeepArrays(1_000_000)), JSONDepth, { cli: cliVerify(1, JSONDepth) }),
    jwsCase('deep-protected', 'a protected header of 200,000 nested objects', (ctx, t) => jws(ctx, t, { rawProtected: Buffer.from(jsonDeepObjects(200_000)).toString('base64url') }), JSONDepth),
    jwsCase('huge-envelope', 'a JWS envelope of 40 MiB', () => Buffer.concat([Buffer.from('{"payload":"'), Buffer.alloc(40 << 20, 0x41), Buffer.from('"}')]), EnvelopeBudget, { cli: cliVerify(1, EnvelopeBudget) }),
    envCase('jws-size-lie', 'a signature manifest whose envelope descriptor claims 1 TiB', 'notation', async (ctx) => {
      const a = await unsignedArtifact(ctx);
      const env = jws(ctx, a.desc);
      const reg = ctx.world.registry;
      const d = await pushBlob(reg, ctx.repo, env);
      const empty = await pushBlob(reg, ctx.repo, Buffer.from('{}'));
      const m = await pushRawManifest(reg, ctx.repo, 'sig-size-lie', { schemaVersion: 2, mediaType: OCIManifest, artifactType: NotarySig, config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty, size: 2 }, layers: [{ mediaType: JWS, digest: d, size: 2 ** 40 }], subject: a.desc });
      await pushRawManifest(ctx.world.registry, ctx.repo, a.manifestDigest.replace(':', '-'), { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: OCIManifest, digest: m.digest, size: m.bytes.length, artifactType: NotarySig }] }, 'application/vnd.oci.image.index.v1+json');
    }, EnvelopeBudget),
    jwsCase('x5c-garbage', 'an x5c entry that is not a certificate', (ctx, t) => jws(ctx, t, { x5c: [b64(Buffer.from('not a certificate'))] }), CertProblem),
    jwsCase('x5c-not-base64', 'an x5c entry that is not base64', (ctx, t) => jws(ctx, t, { x5c: ['!!!not base64!!!'] }), /certificate|base64/i),
    jwsCase('x5c-huge-length', 'an x5c certificate whose DER length claims 2 GiB', (ctx, t) => jws(ctx, t, { x5c: [b64(Buffer.from([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x01]))] }), CertProblem),
    jwsCase('x5c-deep-asn1', 'an x5c certificate of 100,000 nested SEQUENCEs (400 KB)', (ctx, t) => jws(ctx, t, { x5c: [b64(derNested(100_000))] }), CertBudget, { cli: cliVerify(1, CertBudget) }),
    jwsCase('x5c-indefinite', 'an x5c certificate with BER indefinite lengths and no end', (ctx, t) => jws(ctx, t, { x5c: [b64(Buffer.concat([Buffer.from([0x30, 0x80, 0x30, 0x80]), Buffer.alloc(1000, 0x30)]))] }), CertProblem),
    jwsCase('x5c-oid-bomb', 'an x5c certificate holding an OID of 200,000 arcs', (ctx, t) => jws(ctx, t, { x5c: [b64(oidBombCert())] }), CertBudget),
    jwsCase('x5c-flood', 'an x5c chain of 5,000 copies of the leaf', (ctx, t) => jws(ctx, t, { x5c: Array.from({ length: 5000 }, () => ctx.world.trust.notation.leaf.der.toString('base64')) }), /limit maxCertificates/, { cli: cliVerify(1, /limit maxCertificates/) }),
    jwsCase('x5c-missing', 'no x5c (only a __proto__ member holding one)', (ctx, t) => {
      const e = JSON.parse(jws(ctx, t).toString()) as { header: Record<string, unknown> };
      const x5c = JSON.stringify(e.header.x5c);
      delete e.header.x5c;
      return Buffer.from(JSON.stringify(e).replace('"header":{}', `"header":{"__proto__":{"x5c":${x5c}}}`));
    }, /certificate chain/),
    jwsCase('alg-none', "a protected header with alg 'none'", (ctx, t) => jws(ctx, t, { protect: { alg: 'none' } }), /algorithm|alg|invalid/i),
    jwsCase('signature-garbage', 'a signature of random bytes', (ctx, t) => {
      const e = JSON.parse(jws(ctx, t).toString()) as Record<string, string>;
      e.signature = Buffer.alloc(64, 7).toString('base64url');
      return Buffer.from(JSON.stringify(e));
    }, /signature is invalid|crypto|verif/i),
    jwsCase('crit-flood', "a 'crit' list of 100,000 header names", (ctx, t) => jws(ctx, t, { protect: { crit: ['io.cncf.notary.signingScheme', ...Array.from({ length: 100_000 }, (_, i) => `x-${i}`)] } }), /critical|crit|header/i),
    jwsCase('payload-not-json', 'a signed payload that is not JSON', (ctx, t) => jws(ctx, t, { payload: Buffer.from('not json') }), /payload/i),
    jwsCase('payload-deep', 'a signed payload of 500,000 nested objects', (ctx, t) => jws(ctx, t, { payload: Buffer.from(jsonDeepObjects(500_000)) }), JSONDepth),
    jwsCase('timestamp-garbage', 'an unprotected countersignature that is not DER', (ctx, t) => jws(ctx, t, { header: { 'io.cncf.notary.timestampSignature': b64(Buffer.from('garbage')) } }), TimestampProblem, { profile: 'notation-tsa' }),
    jwsCase('timestamp-deep', 'an unprotected countersignature of 100,000 nested SEQUENCEs', (ctx, t) => jws(ctx, t, { header: { 'io.cncf.notary.timestampSignature': b64(derNested(100_000)) } }), TimestampProblem, { profile: 'notation-tsa', cli: cliVerify(1, TimestampProblem) }),
    jwsCase('timestamp-indefinite', 'an unprotected countersignature with indefinite BER lengths and no end', (ctx, t) => jws(ctx, t, { header: { 'io.cncf.notary.timestampSignature': b64(Buffer.concat([Buffer.from([0x30, 0x80, 0x06, 0x09]), Buffer.from('2a864886f70d010702', 'hex'), Buffer.from([0xa0, 0x80, 0x30, 0x80])])) } }), TimestampProblem, { profile: 'notation-tsa' }),
    jwsCase('timestamp-huge-length', 'an unprotected countersignature whose length claims 4 GiB', (ctx, t) => jws(ctx, t, { header: { 'io.cncf.notary.timestampSignature': b64(Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x06])) } }), TimestampProblem, { profile: 'notation-tsa' }),
    jwsCase('timestamp-oid-bomb', 'an unprotected countersignature holding an OID of 200,000 arcs', (ctx, t) => jws(ctx, t, { header: { 'io.cncf.notary.timestampSignature': b64(derSeq(derLongOid(200_000))) } }), TimestampProblem, { profile: 'notation-tsa' }),
    jwsCase('timestamp-integer-1mib', 'an unprotected countersignature holding a 1 MiB INTEGER', (ctx, t) => jws(ctx, t, { header: { 'io.cncf.notary.timestampSignature': b64(derSeq(der(0x02, Buffer.alloc(1 << 20, 0x7f)))) } }), TimestampProblem, { profile: 'notation-tsa' }),
    jwsCase('timestamp-other-data', 'a real countersignature over other bytes than the signature', async (ctx, t) => signJWS({ target: t, chain: [ctx.world.trust.notation.leaf, ctx.world.trust.notation.root], alg: 'ES256', timestamp: () => ctx.world.trust.tsa.tsa.token(Buffer.from('something else')) }), TimestampProblem, { profile: 'notation-tsa' }),

    // Notation COSE (CBOR).
    coseCase('not-cbor', 'a COSE envelope of text', () => Buffer.from('garbage'), /cbor|COSE|malformed|invalid/i, { cli: cliVerify(1, /cbor|COSE|malformed|invalid/i) }),
    coseCase('deep-arrays', 'a COSE envelope of 100,000 nested arrays', () => Buffer.concat([Buffer.alloc(100_000, 0x81), Buffer.from([0x00])]), CBORDepth),
    coseCase('deep-tags', 'a COSE envelope of 100,000 nested tags', () => Buffer.concat([Buffer.alloc(100_000, 0xd2), Buffer.from([0x00])]), CBORDepth),
    coseCase('indefinite-array', 'an indefinite-length array that never ends', () => coseSign1(Buffer.concat([Buffer.from([0x9f]), Buffer.alloc(10_000, 0x01)])), /indefinite|cbor|end/i),
    coseCase('indefinite-bytes', 'an indefinite-length byte string of 100,000 one-byte chunks', () => coseSign1(cborArray(Buffer.concat([Buffer.from([0x5f]), Buffer.concat(Array.from({ length: 100_000 }, () => Buffer.from([0x41, 0x00]))), Buffer.from([0xff])]), cborMap(), cborBytes(Buffer.alloc(0)), cborBytes(Buffer.alloc(64)))), /indefinite|cbor/i),
    coseCase('huge-length', 'a byte string whose length claims 2^62 bytes', () => coseSign1(Buffer.concat([cborHead(4, 4), cborHead(2, 2n ** 62n), Buffer.alloc(16)])), /length|end|cbor/i),
    coseCase('array-length-lie', 'an array whose length claims 2^32 items', () => coseSign1(Buffer.concat([cborHead(4, 2 ** 32), cborUint(1)])), /length|end|cbor/i),
    coseCase('map-flood', 'a protected header map of 200,000 entries', () => {
      const entries = Buffer.concat(Array.from({ length: 200_000 }, (_, i) => Buffer.concat([cborUint(i + 100), cborUint(0)])));
      const prot = Buffer.concat([cborHead(5, 200_000), entries]);
      return coseSign1(cborArray(cborBytes(prot), cborMap(), cborBytes(Buffer.from('{}')), cborBytes(Buffer.alloc(64))));
    }, /header|cbor|map|limit|invalid|malformed/i),
    coseCase('untagged', 'a COSE_Sign1 array without tag 18', () => cborArray(cborBytes(Buffer.alloc(0)), cborMap(), cborBytes(Buffer.alloc(0)), cborBytes(Buffer.alloc(0))), /tag|COSE|Sign1/i),
    coseCase('wrong-tag', 'a COSE envelope with tag 98 (COSE_Sign) instead of 18', () => Buffer.concat([cborHead(6, 98), cborArray(cborBytes(Buffer.alloc(0)), cborMap(), cborBytes(Buffer.alloc(0)), cborArray())]), /tag|COSE|Sign1/i),
    coseCase('x5chain-garbage', 'a COSE x5chain of bytes that are not a certificate', () => coseSign1(cborArray(cborBytes(cborMap([cborUint(1), Buffer.from([0x26])])), cborMap([cborUint(33), cborBytes(Buffer.from('not a certificate'))]), cborBytes(Buffer.from('{}')), cborBytes(Buffer.alloc(64)))), /certificate|x5chain|invalid|malformed/i),
    coseCase('text-keys', 'a protected header whose keys are 10,000 long strings', () => coseSign1(cborArray(cborBytes(cborMap(...Array.from({ length: 10_000 }, (_, i): [Buffer, Buffer] => [cborText(`k${i}-${'x'.repeat(40)}`), cborUint(1)]))), cborMap(), cborBytes(Buffer.from('{}')), cborBytes(Buffer.alloc(64)))), /header|cbor|alg|invalid|malformed|critical/i),
    coseCase('trailing-bytes', 'a valid COSE envelope followed by 1 MiB of extra bytes', async (ctx, t) => Buffer.concat([await signCOSE({ target: t, chain: [ctx.world.trust.notation.leaf, ctx.world.trust.notation.root], alg: 'ES256' }), Buffer.alloc(1 << 20, 0x00)]), /cbor|trailing|extra|malformed|invalid/i),
    coseCase('timestamp-deep', 'a real COSE signature whose countersignature is 100,000 nested SEQUENCEs', async (ctx, t) => signCOSE({ target: t, chain: [ctx.world.trust.notation.leaf, ctx.world.trust.notation.root], alg: 'ES256', timestamp: () => derNested(100_000) }), TimestampProblem, { profile: 'notation-tsa' }),

    // cosign simple-signing layers (key-signed: the tenant's key signed whatever it is).
    cosignCase('payload-not-json', 'a signed payload that is not JSON', (ctx) => keySigned(ctx, Buffer.from('not json')), /payload|JSON|malformed/i, { cli: cliVerify(1, /payload|JSON|malformed/i) }),
    cosignCase('payload-deep-json', 'a signed payload of 500,000 nested arrays', (ctx) => keySigned(ctx, Buffer.from(jsonDeepArrays(500_000))), JSONDepth),
    cosignCase('payload-huge', `a signed payload of ${envelopeMax / (1 << 20) + 1} MiB (over the envelope budget)`, (ctx, d) => keySigned(ctx, Buffer.concat([cosignPayload(d), Buffer.alloc(envelopeMax + (1 << 20), 0x20)])), EnvelopeBudget),
    cosignCase('payload-size-lie', 'a payload descriptor claiming 1 TiB', (ctx, d) => ({ ...signLegacy(ctx.world.trust.cosignKey, d), size: 2 ** 40 }), EnvelopeBudget),
    cosignCase('signature-not-base64', 'a signature annotation that is not base64', (ctx, d) => ({ payload: cosignPayload(d), annotations: { 'dev.cosignproject.cosign/signature': '!!!not base64!!!' } }), /base64|signature|malformed/i),
    cosignCase('signature-huge', 'a signature annotation of 1 MiB', (ctx, d) => ({ payload: cosignPayload(d), annotations: { 'dev.cosignproject.cosign/signature': 'A'.repeat(1 << 20) } }), TooLarge),
    cosignCase('other-digest', 'a valid signature over a payload naming another digest', (ctx) => keySigned(ctx, cosignPayload(`sha256:${'0'.repeat(64)}`)), /digest/i, { cli: cliVerify(1, /digest/i) }),
    cosignCase('bundle-annotation-deep', 'a Rekor bundle annotation of 100,000 nested objects', (ctx, d) => keySigned(ctx, cosignPayload(d), { 'dev.sigstore.cosign/bundle': jsonDeepObjects(40_000) }), /bundle|JSON|nest|depth|malformed|Rekor/i),
    cosignCase('bundle-annotation-huge', 'a Rekor bundle annotation of 2 MiB', (ctx, d) => keySigned(ctx, cosignPayload(d), { 'dev.sigstore.cosign/bundle': `{"x":"${'a'.repeat(2 << 20)}"}` }), TooLarge),
    envCase('cosign-rfc3161-deep', 'a keyless signature whose RFC 3161 annotation is 20,000 nested SEQUENCEs (no Rekor entry)', 'keyless-tsa', (ctx) => keylessWithTimestamp(ctx, () => JSON.stringify({ SignedRFC3161Timestamp: b64(derNested(20_000)) })), /timestamp|malformed|Rekor|tlog/i),
    envCase('cosign-rfc3161-not-json', 'a keyless signature whose RFC 3161 annotation is not JSON', 'keyless-tsa', (ctx) => keylessWithTimestamp(ctx, () => 'not json'), /timestamp|JSON|malformed|Rekor|tlog/i),

    // Sigstore bundles (OCI 1.1 referrers).
    bundleCase('not-json', 'a bundle that is not JSON', () => Buffer.from('not json'), /bundle|JSON|malformed/i, { cli: cliVerify(1, /bundle|JSON|malformed/i) }),
    bundleCase('deep-json', 'a bundle of 1,000,000 nested arrays', () => Buffer.from(jsonDeepArrays(1_000_000)), JSONDepth),
    bundleCase('huge', 'a bundle of 6 MiB', () => Buffer.concat([Buffer.from('{"mediaType":"'), Buffer.alloc(6 << 20, 0x61), Buffer.from('"}')]), EnvelopeBudget),
    bundleCase('tlog-flood', 'a bundle with 20,000 transparency-log entries', (ctx, d) => {
      const statement = inTotoStatement(d);
      const b = JSON.parse(dsseBundle({ statement, signature: signBytes(ctx.world.trust.cosignKey.privateKey, pae(statement)) }).toString()) as { verificationMaterial: { tlogEntries: unknown[] } };
      const entry = { logIndex: '1', logId: { keyId: 'AAAA' }, kindVersion: { kind: 'dsse', version: '0.0.1' }, integratedTime: '1', canonicalizedBody: 'AAAA' };
      b.verificationMaterial.tlogEntries = Array.from({ length: 20_000 }, () => entry);
      return Buffer.from(JSON.stringify(b));
    }, /tlog|transparency|log|bundle|limit|invalid/i),
    bundleCase('dsse-other-digest', 'a key-signed bundle whose statement names another digest', (ctx) => {
      const statement = inTotoStatement(`sha256:${'1'.repeat(64)}`);
      return dsseBundle({ statement, signature: signBytes(ctx.world.trust.cosignKey.privateKey, pae(statement)) });
    }, /digest|subject/i),
  ];
}

