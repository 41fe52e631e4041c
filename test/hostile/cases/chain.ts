// Certificate-chain bombs and loops: many certificates sharing one subject and key (each
// "issues" every other, so exhaustive path building is factorial), issuance cycles, and floods of
// trust anchors. Issue 7 item 2 is the first shape, carried in the *unprotected* RFC 3161
// countersignature of an otherwise valid Notation signature (the registry can swap it).
import { signCOSE, signJWS } from '../../helpers/notation-sign.ts';
import { cosignPayload, legacyLayer, signBytes } from '../../helpers/cosign-sign.ts';
import { pushCosignSig, pushReferrer } from '../../helpers/push-signatures.ts';
import { issuanceCycle, opensslTSA, pem, sharedKeyBomb, type Issued } from '../pki.ts';
import { cliVerify, notVerified, type CaseContext, type HostileCase } from '../types.ts';
import { trustPolicy, trustedRoot } from '../world.ts';
import { unsignedArtifact } from './envelope.ts';

const NotarySig = 'application/vnd.cncf.notary.signature';
/** Path building stops at a budget (src/api/limits.ts) and says which. */
const ChainBounded = /limit (maxChainCandidates|maxChainSignatureChecks|maxChainDepth|maxCertificates)/;

/** A valid Notation signature by the trusted leaf whose countersignature is made by `tsaLeaf`, carrying `certs`. */
async function countersignedBy(ctx: CaseContext, bomb: { certs: Issued[]; tsaLeaf: Issued }, format: 'jws' | 'cose'): Promise<void> {
  const a = await unsignedArtifact(ctx);
  const tsa = opensslTSA(bomb.tsaLeaf, bomb.certs);
  const { leaf, root } = ctx.world.trust.notation;
  const opts = { target: a.desc, chain: [leaf, root], alg: 'ES256' as const, timestamp: (sig: Buffer) => tsa.token(sig) };
  const env = format === 'jws' ? await signJWS(opts) : await signCOSE(opts);
  await pushReferrer(ctx.world.registry, ctx.repo, a.desc, NotarySig, env, format === 'jws' ? 'application/jose+json' : 'application/cose');
}

/** A keyless `.sig` whose leaf is issued by `issuer` (untrusted) with `chain` as its chain annotation; Rekor bundle valid. */
async function keylessIssuedBy(ctx: CaseContext, issuer: Issued, chain: Issued[]): Promise<void> {
  const a = await unsignedArtifact(ctx);
  const s = ctx.world.trust.sigstore;
  const leaf = await s.issueLeaf({ email: 'dev@example.com', issuer: 'https://issuer.test', notBefore: new Date(Date.now() - 60_000), signer: { cert: issuer.cert, key: issuer.keys.privateKey } });
  const payload = cosignPayload(a.manifestDigest);
  const sig = signBytes(leaf.privateKey, payload);
  const bundle = s.legacyBundleAnnotation(payload, sig, leaf.pem, Math.floor(Date.now() / 1000));
  await pushCosignSig(ctx.world.registry, ctx.repo, a.manifestDigest, [legacyLayer(payload, sig, { 'dev.sigstore.cosign/certificate': leaf.pem, 'dev.sigstore.cosign/chain': pem(...chain).toString(), 'dev.sigstore.cosign/bundle': bundle })]);
}

function chainCase(id: string, title: string, profile: HostileCase['profile'], run: (ctx: CaseContext) => Promise<void>, message: RegExp, extra: Partial<HostileCase> = {}): HostileCase {
  return { id: `chain-${id}`, category: 'chain', title, attacker: 'registry', profile, attack: { kind: 'push', run }, expect: notVerified(message), ...extra };
}

export function chainCases(): HostileCase[] {
  const tsaBomb = (k: number, format: 'jws' | 'cose' = 'jws') => async (ctx: CaseContext) => countersignedBy(ctx, await sharedKeyBomb(k), format);
  return [
    chainCase('tsa-shared-key-8', 'an RFC 3161 token carrying 8 certificates that share one subject and key, swapped into the unprotected header', 'notation-tsa', tsaBomb(8), ChainBounded, { item: 2, solo: true, cli: cliVerify(1, ChainBounded) }),
    chainCase('tsa-shared-key-12', 'the same with 12 certificates (hours of path building without a bound)', 'notation-tsa', tsaBomb(12), ChainBounded, { item: 2, solo: true, cli: cliVerify(1, ChainBounded) }),
    chainCase('tsa-shared-key-40', 'the same with 40 certificates', 'notation-tsa', tsaBomb(40), ChainBounded, { item: 2, solo: true }),
    chainCase('tsa-shared-key-cose', 'a COSE signature whose countersignature carries 12 shared-key certificates', 'notation-tsa', tsaBomb(12, 'cose'), ChainBounded, { item: 2, solo: true }),
    chainCase('tsa-cycle', 'an RFC 3161 token whose CA certificates issue each other (A→B→A)', 'notation-tsa', async (ctx) => countersignedBy(ctx, await issuanceCycle(), 'jws'), /timestamp countersignature.*certificate signed by unknown authority/),
    chainCase('x5c-shared-key', 'an x5c chain of a leaf and 64 certificates that share one subject and key', 'notation', async (ctx) => {
      const a = await unsignedArtifact(ctx);
      const bomb = await sharedKeyBomb(64);
      const env = await signJWS({ target: a.desc, chain: [ctx.world.trust.notation.leaf, ...bomb.certs], alg: 'ES256' });
      await pushReferrer(ctx.world.registry, ctx.repo, a.desc, NotarySig, env, 'application/jose+json');
    }, /certificate|chain/i),
    chainCase('x5c-cycle', 'an x5c chain whose CA certificates issue each other', 'notation', async (ctx) => {
      const a = await unsignedArtifact(ctx);
      const cyc = await issuanceCycle();
      const env = await signJWS({ target: a.desc, chain: [ctx.world.trust.notation.leaf, ...cyc.certs, ...cyc.certs], alg: 'ES256' });
      await pushReferrer(ctx.world.registry, ctx.repo, a.desc, NotarySig, env, 'application/jose+json');
    }, /certificate|chain/i),
    chainCase('keyless-shared-key', 'a keyless certificate issued by one of 400 certificates sharing a subject and key (chain annotation)', 'keyless', async (ctx) => {
      const bomb = await sharedKeyBomb(400, 'O=hostile.sigstore.test, CN=hostile-intermediate');
      await keylessIssuedBy(ctx, bomb.certs[0]!, bomb.certs);
    }, ChainBounded, { cli: cliVerify(1, ChainBounded) }),
    chainCase('keyless-cycle', 'a keyless certificate issued by A, with A and B issuing each other in the chain annotation', 'keyless', async (ctx) => {
      const cyc = await issuanceCycle();
      await keylessIssuedBy(ctx, cyc.certs[0]!, cyc.certs);
    }, /chain|issuer|trusted|certificate/i),
    {
      id: 'chain-truststore-flood',
      category: 'chain',
      title: "a notation trust store key of 1,000 CA certificates sharing one subject and key (none of them the signer's)",
      attacker: 'tenant',
      profile: 'notation',
      attack: { kind: 'secret', secret: 'verify', data: async () => ({ 'trustpolicy.json': trustPolicy(['ca:hostile']), 'ca.hostile.pem': pem(...(await sharedKeyBomb(1000)).certs) }) },
      expect: notVerified(/trust stores hold more than 100 certificates.*limit maxTrustedCertificates/),
      cli: cliVerify(2, /limit maxTrustedCertificates/),
    },
    {
      id: 'chain-trusted-root-ca-flood',
      category: 'chain',
      title: 'a trusted root listing 1,000 certificate authorities that share one subject and key (none the real one)',
      attacker: 'tenant',
      profile: 'keyless',
      attack: {
        kind: 'secret',
        secret: 'trustedRoot',
        data: async (ctx) => {
          const root = JSON.parse(trustedRoot(ctx.world.trust, false)) as { certificateAuthorities: unknown[] };
          const bomb = await sharedKeyBomb(1000, 'O=hostile.sigstore.test, CN=hostile-root');
          root.certificateAuthorities = bomb.certs.map((c, i) => ({ subject: { organization: 'flood', commonName: `ca-${i}` }, uri: `https://ca-${i}.test`, certChain: { certificates: [{ rawBytes: c.der.toString('base64') }] }, validFor: { start: '2020-01-01T00:00:00Z' } }));
          return { 'trusted_root.json': JSON.stringify(root) };
        },
      },
      expect: notVerified(/trusted_root\.json.*1000 certificates, more than 100 \(limit maxTrustedCertificates\)/),
    },
  ];
}
