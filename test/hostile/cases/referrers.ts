// Referrer and signature floods: thousands of signature candidates, referrers indexes that are
// huge, not JSON, or paginate forever (the OCI 1.1 Referrers API, served by the hostile server),
// and cosign `.sig` manifests with a thousand layers. At most --max-signatures candidates may be
// examined, and listing them is bounded too.
import { signLegacy } from '../../helpers/cosign-sign.ts';
import { pushCosignSig } from '../../helpers/push-signatures.ts';
import { send, sha256 } from '../server.ts';
import { cliVerify, notVerified, type Attack, type CaseContext, type HostileCase } from '../types.ts';
import { OCIIndex, OCIManifest } from './common.ts';
import { pushBlob, pushRawManifest } from '../world.ts';
import { unsignedArtifact } from './envelope.ts';

const NotarySig = 'application/vnd.cncf.notary.signature';
const Limited = /limit|max-signatures|exceed|too many|stopped/i;
const subjects = new Map<string, string>();

/** The referrers index (`sha256-<hex>` tag) of a new unsigned artifact is answered by `answer`. */
function onReferrersTag(answer: (ctx: CaseContext, subject: string) => Buffer): Attack {
  const made = new Map<string, string>();
  return {
    kind: 'serve',
    prepare: async (ctx) => {
      made.set(ctx.id, (await unsignedArtifact(ctx)).manifestDigest);
    },
    behaviour: (ctx) => {
      const subject = made.get(ctx.id)!;
      const tag = subject.replace(':', '-');
      const body = answer(ctx, subject);
      return (req, res) => {
        if (req.kind === 'referrers') return send(res, 404);
        if (req.kind !== 'manifest' || req.ref !== tag) return 'pass';
        send(res, 200, req.method === 'HEAD' ? '' : body, { 'content-type': OCIIndex, 'docker-content-digest': sha256(body) });
      };
    },
  };
}

/** A referrers index of `n` descriptors (of missing manifests unless `digest` is given). */
const indexOf = (n: number, artifactType = NotarySig, digest?: string): Buffer =>
  Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCIIndex, manifests: Array.from({ length: n }, (_, i) => ({ mediaType: OCIManifest, digest: digest ?? sha256(`missing-${i}`), size: 500, artifactType })) }));

/**
 * What pushReferrer does once per signature, for many: the signature manifests go up eight at a
 * time, then the referrers tag (`sha256-<hex>`) is written once listing all of them.
 */
async function pushReferrers(ctx: CaseContext, subject: { digest: string; size: number; mediaType: string }, envelopes: Buffer[]): Promise<void> {
  const reg = ctx.world.registry;
  const empty = await pushBlob(reg, ctx.repo, Buffer.from('{}'));
  const entries: object[] = new Array(envelopes.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let i = next++; i < envelopes.length; i = next++) {
        const env = envelopes[i]!;
        const layer = await pushBlob(reg, ctx.repo, env);
        const manifest = { schemaVersion: 2, mediaType: OCIManifest, artifactType: NotarySig, config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty, size: 2 }, layers: [{ mediaType: 'application/jose+json', digest: layer, size: env.length }], subject };
        const m = await pushRawManifest(reg, ctx.repo, sha256(Buffer.from(JSON.stringify(manifest))), manifest, OCIManifest);
        entries[i] = { mediaType: OCIManifest, digest: m.digest, size: m.bytes.length, artifactType: NotarySig };
      }
    }),
  );
  await pushRawManifest(reg, ctx.repo, subject.digest.replace(':', '-'), { schemaVersion: 2, mediaType: OCIIndex, manifests: entries }, OCIIndex);
}

function refCase(id: string, title: string, profile: HostileCase['profile'], attack: Attack, message: RegExp, extra: Partial<HostileCase> = {}): HostileCase {
  return { id: `referrers-${id}`, category: 'referrers', title, attacker: 'registry', profile, viaHostile: attack.kind === 'serve', attack, expect: notVerified(message), ...extra };
}

export function referrerCases(): HostileCase[] {
  return [
    refCase('notation-200-bad', '200 Notation signatures that all fail, stored in the real registry', 'notation', {
      kind: 'push',
      run: async (ctx) => {
        const a = await unsignedArtifact(ctx);
        await pushReferrers(ctx, a.desc, Array.from({ length: 200 }, (_, i) => Buffer.from(`{"bad":${i}}`)));
      },
    }, Limited, { cli: cliVerify(1, Limited) }),
    refCase('notation-index-25000', 'a referrers index of 25,000 signature descriptors (missing manifests)', 'notation', onReferrersTag(() => indexOf(25_000)), /limit|max-signatures|exceed|cannot be found|not found/i),
    refCase('notation-index-oversized', 'a referrers index of 6 MiB', 'notation', onReferrersTag(() => Buffer.concat([indexOf(1).subarray(0, -1), Buffer.alloc(6 << 20, 0x20), Buffer.from('}')])), /limit|exceed|too large|bytes/i),
    refCase('notation-index-not-json', 'a referrers index that is not JSON', 'notation', onReferrersTag(() => Buffer.from('<html>nope</html>')), /referrers|JSON/i, { cli: cliVerify(2, /referrers|JSON/i) }),
    refCase('notation-index-other-types', 'a referrers index of 30,000 entries of other artifact types and no signature', 'notation', onReferrersTag(() => indexOf(30_000, 'application/vnd.example.sbom')), /no signature|limit|exceed/i),
    refCase('api-endless', 'the Referrers API answers 1,000 entries a page and always links to another page', 'notation', {
      kind: 'serve',
      prepare: async (ctx) => void (await unsignedArtifact(ctx)),
      behaviour: () => (req, res) => {
        if (req.kind !== 'referrers') return 'pass';
        const n = Number(req.url.searchParams.get('page') ?? 0);
        const body = indexOf(1000);
        res.writeHead(200, { 'content-type': OCIIndex, 'content-length': body.length, link: `<${req.url.pathname}?page=${n + 1}>; rel="next"` });
        res.end(body);
      },
    }, Limited),
    refCase('api-huge-page', 'the Referrers API answers one page of 50 MiB', 'notation', {
      kind: 'serve',
      prepare: async (ctx) => void (await unsignedArtifact(ctx)),
      behaviour: () => (req, res) => (req.kind === 'referrers' ? send(res, 200, Buffer.concat([indexOf(1).subarray(0, -1), Buffer.alloc(50 << 20, 0x20), Buffer.from('}')]), { 'content-type': OCIIndex }) : 'pass'),
    }, /limit|exceed|too large|bytes/i),
    refCase('notation-sig-manifest-huge', 'one referrer whose signature manifest is 10 MiB', 'notation', {
      kind: 'serve',
      prepare: async (ctx) => {
        subjects.set(ctx.id, (await unsignedArtifact(ctx)).manifestDigest);
      },
      behaviour: (ctx) => {
        const subject = subjects.get(ctx.id)!;
        const huge = Buffer.concat([Buffer.from('{"schemaVersion":2,"x":"'), Buffer.alloc(10 << 20, 0x61), Buffer.from('"}')]);
        const index = indexOf(1, NotarySig, sha256(huge));
        return (req, res) => {
          if (req.kind === 'referrers') return send(res, 404);
          if (req.kind === 'manifest' && req.ref === subject.replace(':', '-')) return send(res, 200, index, { 'content-type': OCIIndex });
          if (req.kind === 'manifest' && req.ref === sha256(huge)) return send(res, 200, huge, { 'content-type': OCIManifest });
          return 'pass';
        };
      },
    }, /limit|exceed|too large|bytes/i),
    refCase('cosign-sig-1001-layers', 'a cosign .sig manifest with 1,001 layers', 'cosign-key', {
      kind: 'push',
      run: async (ctx) => {
        const a = await unsignedArtifact(ctx);
        const layer = signLegacy(ctx.world.trust.cosignKey, `sha256:${'0'.repeat(64)}`);
        await pushCosignSig(ctx.world.registry, ctx.repo, a.manifestDigest, Array.from({ length: 1001 }, () => layer));
      },
    }, /layers|limit/i),
    refCase('cosign-sig-999-bad', 'a cosign .sig manifest with 999 signatures over another digest', 'cosign-key', {
      kind: 'push',
      run: async (ctx) => {
        const a = await unsignedArtifact(ctx);
        const layer = signLegacy(ctx.world.trust.cosignKey, `sha256:${'0'.repeat(64)}`);
        await pushCosignSig(ctx.world.registry, ctx.repo, a.manifestDigest, Array.from({ length: 999 }, () => layer));
      },
    }, /digest|limit|max-signatures/i, { cli: cliVerify(1, /digest|limit|max-signatures/i) }),
    refCase('cosign-bundles-flood', 'a referrers index listing 20,000 cosign bundles (missing manifests)', 'cosign-key', onReferrersTag(() => indexOf(20_000, 'application/vnd.dev.sigstore.bundle.v0.3+json')), /limit|max-signatures|exceed|not found|no signatures/i),
  ];
}

