// Issue 7 items 4 and 5 (items 1–3 are in tarball.ts/descriptor.ts, chain.ts and tags.ts, marked
// `item`). 4: a policy pinning `O=Acme 🔒 Release` must not accept `O=Acme 👾 Release` from the
// same CA (characters outside the BMP are not one U+FFFD). 5: a legacy keyless `.sig` with an RFC
// 3161 timestamp but no Rekor entry is refused when the trusted root lists a transparency log.
import { signJWS } from '../../helpers/notation-sign.ts';
import { cosignPayload, legacyLayer, signBytes } from '../../helpers/cosign-sign.ts';
import { pushCosignSig, pushReferrer } from '../../helpers/push-signatures.ts';
import { issue, pem } from '../pki.ts';
import { cliVerify, notVerified, type CaseContext, type HostileCase } from '../types.ts';
import { NotationSigner, putSecret, trustPolicy } from '../world.ts';
import { unsignedArtifact } from './envelope.ts';

/** A policy pinning the corpus signer's subject exactly (the signer's certificate has it). */
async function pinnedPolicy(ctx: CaseContext, identity: string): Promise<Record<string, unknown>> {
  await putSecret(ctx.world.cluster, ctx.namespace, `${ctx.id}-policy`, { 'trustpolicy.json': trustPolicy(['ca:hostile'], [`x509.subject:${identity}`]), 'ca.hostile.pem': pem(ctx.world.trust.notation.root) });
  return { verify: { provider: 'notation', secretRef: { name: `${ctx.id}-policy` } } };
}

/** A new artifact signed by a leaf of the same trusted CA with `subject`. */
async function signedByLookalike(ctx: CaseContext, subject: string): Promise<void> {
  const a = await unsignedArtifact(ctx);
  const leaf = await issue({ subject, issuer: ctx.world.trust.notation.root, eku: ['1.3.6.1.5.5.7.3.3'] });
  const env = await signJWS({ target: a.desc, chain: [leaf, ctx.world.trust.notation.root], alg: 'ES256' });
  await pushReferrer(ctx.world.registry, ctx.repo, a.desc, 'application/vnd.cncf.notary.signature', env, 'application/jose+json');
}

const Mismatch = /trusted identit|does not match/i;

export function itemCases(): HostileCase[] {
  return [
    {
      id: 'item4-astral-dn-collapse',
      category: 'chain',
      title: "a policy pins 'O=Acme 🔒 Release'; a leaf of the same CA says 'O=Acme 👾 Release'",
      attacker: 'registry',
      item: 4,
      profile: 'notation',
      setup: (ctx) => pinnedPolicy(ctx, NotationSigner),
      attack: { kind: 'push', run: (ctx) => signedByLookalike(ctx, NotationSigner.replace('🔒', '👾')) },
      expect: notVerified(Mismatch),
    },
    {
      id: 'item4-astral-other-lookalike',
      category: 'chain',
      title: "the same with another astral-plane lookalike ('O=Acme 🔓 Release')",
      attacker: 'registry',
      item: 4,
      profile: 'notation',
      setup: (ctx) => pinnedPolicy(ctx, NotationSigner),
      attack: { kind: 'push', run: (ctx) => signedByLookalike(ctx, NotationSigner.replace('🔒', '🔓')) },
      expect: notVerified(Mismatch),
    },
    {
      id: 'item5-keyless-no-tlog',
      category: 'envelope',
      title: 'a legacy keyless .sig with an RFC 3161 timestamp and no Rekor entry, while the trusted root lists a log',
      attacker: 'registry',
      item: 5,
      profile: 'keyless-tsa',
      attack: {
        kind: 'push',
        run: async (ctx) => {
          const a = await unsignedArtifact(ctx);
          const s = ctx.world.trust.sigstore;
          const leaf = await s.issueLeaf({ email: 'dev@example.com', issuer: 'https://issuer.test', notBefore: new Date(Date.now() - 60_000) });
          const payload = cosignPayload(a.manifestDigest);
          const sig = signBytes(leaf.privateKey, payload);
          const ts = JSON.stringify({ SignedRFC3161Timestamp: ctx.world.trust.keylessTsa.tsa.response(sig).toString('base64') });
          await pushCosignSig(ctx.world.registry, ctx.repo, a.manifestDigest, [legacyLayer(payload, sig, { 'dev.sigstore.cosign/certificate': leaf.pem, 'dev.sigstore.cosign/chain': s.chainPem, 'dev.sigstore.cosign/rfc3161timestamp': ts })]);
        },
      },
      expect: notVerified(/Rekor|transparency|tlog/i),
      cli: cliVerify(1, /Rekor|transparency|tlog/i),
    },
  ];
}
