// What a hostile tenant controls: the Secrets its object names (trust policies, certificates,
// keys, trusted roots, registry credentials, TLS and proxy settings) and the spec itself (names
// pasted into API paths, regular expressions run against signature identities and tags). A bad
// one must fail that object with a message naming the Secret key or field, and nothing else.
import { generateKeyPairSync } from 'node:crypto';
import { cosignPayload, legacyLayer, signBytes } from '../../helpers/cosign-sign.ts';
import { pushCosignSig } from '../../helpers/push-signatures.ts';
import { derNested, jsonDeepArrays } from '../bytes.ts';
import { pem } from '../pki.ts';
import { send } from '../server.ts';
import { authFailed, cliVerify, notVerified, readFailed, refusedByAPI, type CaseContext, type HostileCase } from '../types.ts';
import { trustPolicy, trustedRoot } from '../world.ts';
import { unsignedArtifact } from './envelope.ts';

const certPem = (der: Buffer): string => `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`;

function notationSecret(id: string, title: string, data: (ctx: CaseContext) => Record<string, string | Buffer> | Promise<Record<string, string | Buffer>>, message: RegExp, extra: Partial<HostileCase> = {}): HostileCase {
  return { id: `secret-notation-${id}`, category: 'secret', title, attacker: 'tenant', profile: 'notation', attack: { kind: 'secret', secret: 'verify', data }, expect: notVerified(message), ...extra };
}
function cosignSecret(id: string, title: string, data: (ctx: CaseContext) => Record<string, string | Buffer>, message: RegExp, extra: Partial<HostileCase> = {}): HostileCase {
  return { id: `secret-cosign-${id}`, category: 'secret', title, attacker: 'tenant', profile: 'cosign-key', attack: { kind: 'secret', secret: 'verify', data }, expect: notVerified(message), ...extra };
}
function rootSecret(id: string, title: string, data: (ctx: CaseContext) => Record<string, string | Buffer>, message: RegExp, extra: Partial<HostileCase> = {}): HostileCase {
  return { id: `secret-root-${id}`, category: 'secret', title, attacker: 'tenant', profile: 'keyless', attack: { kind: 'secret', secret: 'trustedRoot', data }, expect: notVerified(message), ...extra };
}
function registrySecret(id: string, secret: 'auth' | 'cert' | 'proxy', title: string, data: Record<string, string>, message: RegExp): HostileCase {
  return { id: `secret-${secret}-${id}`, category: 'secret', title, attacker: 'tenant', profile: 'cosign-key', attack: { kind: 'secret', secret, data: () => data }, expect: authFailed(message) };
}

/** The namespace CA's certificate (valid) with the policy `doc`. */
const withPolicy = (ctx: CaseContext, doc: string | Buffer) => ({ 'trustpolicy.json': doc, 'ca.hostile.pem': pem(ctx.world.trust.notation.root) });

/** A keyless signature of a new artifact whose SAN (e-mail) and issuer are chosen by the case. */
async function keylessSignedAs(ctx: CaseContext, email: string, issuer = 'https://issuer.test'): Promise<void> {
  const a = await unsignedArtifact(ctx);
  const s = ctx.world.trust.sigstore;
  const leaf = await s.issueLeaf({ email, issuer, notBefore: new Date(Date.now() - 60_000) });
  const payload = cosignPayload(a.manifestDigest);
  const sig = signBytes(leaf.privateKey, payload);
  await pushCosignSig(ctx.world.registry, ctx.repo, a.manifestDigest, [legacyLayer(payload, sig, { 'dev.sigstore.cosign/certificate': leaf.pem, 'dev.sigstore.cosign/chain': s.chainPem, 'dev.sigstore.cosign/bundle': s.legacyBundleAnnotation(payload, sig, leaf.pem, Math.floor(Date.now() / 1000)) })]);
}

/** Tenant regular expressions in matchOIDCIdentity, met by a signature made for them. */
function identityCase(id: string, title: string, rule: { issuer: string; subject: string }, signAs: { email: string; issuer?: string }, message: RegExp, extra: Partial<HostileCase> = {}): HostileCase {
  return {
    id: `secret-identity-${id}`,
    category: 'secret',
    title,
    attacker: 'tenant',
    profile: 'keyless',
    attack: { kind: 'spec', prepare: (ctx) => keylessSignedAs(ctx, signAs.email, signAs.issuer), patch: () => ({ verify: { provider: 'cosign', matchOIDCIdentity: [rule] } }) },
    expect: notVerified(message),
    ...extra,
  };
}

/** A hostile spec field that must never reach an API path: refused by the CRD schema. */
function nameCase(id: string, title: string, patch: Record<string, unknown>, field: RegExp): HostileCase {
  return { id: `secret-name-${id}`, category: 'secret', title, attacker: 'tenant', profile: 'cosign-key', attack: { kind: 'spec', patch: () => patch }, expect: refusedByAPI(field) };
}

export function secretCases(): HostileCase[] {
  const redos = 'a'.repeat(48) + '!';
  return [
    // Notation trust policies and trust stores.
    notationSecret('policy-missing', 'a verification Secret without trustpolicy.json', (ctx) => ({ 'ca.hostile.pem': pem(ctx.world.trust.notation.root) }), /trustpolicy\.json/, { cli: cliVerify(2, /trustpolicy\.json/) }),
    notationSecret('policy-not-json', 'trustpolicy.json that is not JSON', (ctx) => withPolicy(ctx, '{"version": "1.0", trustPolicies'), /trustpolicy\.json|malformed|JSON/),
    notationSecret('policy-deep-json', 'trustpolicy.json of 400,000 nested arrays', (ctx) => withPolicy(ctx, jsonDeepArrays(400_000)), /trustpolicy\.json.*limit maxJSONDepth/, { cli: cliVerify(2, /trustpolicy\.json.*limit maxJSONDepth/) }),
    notationSecret('policy-20000-statements', 'trustpolicy.json with 5,000 statements (850 KB)', (ctx) => withPolicy(ctx, JSON.stringify({ version: '1.0', trustPolicies: Array.from({ length: 5000 }, (_, i) => ({ name: `s${i}`, registryScopes: [`r.example/p${i}`], signatureVerification: { level: 'strict' }, trustStores: ['ca:hostile'], trustedIdentities: ['*'] })) })), /trustpolicy\.json|statement|limit|registry scope|no applicable/i, { solo: true }),
    notationSecret('policy-version', 'trustpolicy.json of version 2.0', (ctx) => withPolicy(ctx, JSON.stringify({ version: '2.0', trustPolicies: [] })), /version/),
    notationSecret('policy-no-statements', 'trustpolicy.json without statements', (ctx) => withPolicy(ctx, JSON.stringify({ version: '1.0', trustPolicies: [] })), /statement/),
    notationSecret('policy-bad-level', "a verification level 'paranoid'", (ctx) => withPolicy(ctx, trustPolicy(['ca:hostile'], ['*'], 'paranoid')), /level/),
    notationSecret('identity-huge-dn', 'a trusted identity DN of 50,000 attributes', (ctx) => withPolicy(ctx, trustPolicy(['ca:hostile'], [`x509.subject: ${Array.from({ length: 50_000 }, (_, i) => `OU=u${i}`).join(',')}`])), /trusted identity of \d+ characters .*more than 4096/),
    notationSecret('identities-flood', '20,000 distinct trusted identities (pairwise overlap checks)', (ctx) => withPolicy(ctx, trustPolicy(['ca:hostile'], Array.from({ length: 20_000 }, (_, i) => `x509.subject: CN=signer-${i},O=Acme`))), /identit|does not match|limit/i, { solo: true }),
    notationSecret('cert-garbage', 'a certificate key holding garbage', () => ({ 'trustpolicy.json': trustPolicy(['ca:hostile']), 'ca.hostile.pem': 'garbage' }), /ca\.hostile\.pem|certificate/i),
    notationSecret('cert-bad-base64', 'a PEM block whose body is not base64', () => ({ 'trustpolicy.json': trustPolicy(['ca:hostile']), 'ca.hostile.pem': '-----BEGIN CERTIFICATE-----\n!!!!not base64!!!!\n-----END CERTIFICATE-----\n' }), /ca\.hostile\.pem|certificate|PEM/i),
    notationSecret('cert-deep-asn1', 'a PEM certificate of 100,000 nested SEQUENCEs', () => ({ 'trustpolicy.json': trustPolicy(['ca:hostile']), 'ca.hostile.pem': certPem(derNested(100_000)) }), /ca\.hostile\.pem|certificate/i, { cli: cliVerify(2, /ca\.hostile\.pem|certificate/i) }),
    notationSecret('cert-huge-length', 'a PEM certificate whose DER length claims 2 GiB', () => ({ 'trustpolicy.json': trustPolicy(['ca:hostile']), 'ca.hostile.pem': certPem(Buffer.from([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02, 0x01, 0x01])) }), /ca\.hostile\.pem|certificate/i),
    notationSecret('cert-not-ca', 'a leaf certificate where a CA is due', (ctx) => ({ 'trustpolicy.json': trustPolicy(['ca:hostile']), 'ca.hostile.pem': pem(ctx.world.trust.tsa.leaf) }), /CA|certificate/),
    notationSecret('tsa-not-root', 'a TSA store holding a leaf, not a root', (ctx) => ({ 'trustpolicy.json': trustPolicy(['ca:hostile', 'tsa:hostile']), 'ca.hostile.pem': pem(ctx.world.trust.notation.root), 'tsa.hostile.pem': pem(ctx.world.trust.tsa.leaf) }), /root|tsa/i, { profile: 'notation-tsa' }),
    notationSecret('no-certificates', 'a trust policy and no certificate', () => ({ 'trustpolicy.json': trustPolicy(['ca:hostile']) }), /certificate/i),
    notationSecret('pem-flood', '1,300 CERTIFICATE blocks in one key (none the signer\'s CA)', (ctx) => ({ 'trustpolicy.json': trustPolicy(['ca:hostile']), 'ca.hostile.pem': Buffer.concat(Array.from({ length: 1300 }, () => pem(ctx.world.trust.tsa.root))) }), /ca\.hostile\.pem.*limit maxTrustedCertificates/),

    // cosign public keys.
    cosignSecret('no-pub', "no key ending in '.pub'", () => ({ 'cosign.key': 'x' }), /\.pub/, { cli: cliVerify(2, /\.pub/) }),
    cosignSecret('pub-garbage', 'cosign.pub holding garbage', () => ({ 'cosign.pub': 'garbage' }), /cosign\.pub|PEM|key/),
    cosignSecret('pub-private-key', 'cosign.pub holding a private key', () => ({ 'cosign.pub': generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() }), /cosign\.pub|PUBLIC KEY|unsupported/),
    cosignSecret('pub-rsa-1024', 'a 1024-bit RSA key', () => ({ 'cosign.pub': generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'pem', type: 'spki' }).toString() }), /cosign\.pub|RSA|small|2048/),
    cosignSecret('pub-secp256k1', 'an ECDSA key on secp256k1', () => ({ 'cosign.pub': generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey.export({ format: 'pem', type: 'spki' }).toString() }), /cosign\.pub|curve|unsupported/),
    cosignSecret('pub-deep-asn1', 'a PUBLIC KEY block of 100,000 nested SEQUENCEs', () => ({ 'cosign.pub': `-----BEGIN PUBLIC KEY-----\n${derNested(100_000).toString('base64').replace(/.{64}/g, '$&\n')}\n-----END PUBLIC KEY-----\n` }), /cosign\.pub|key/i),
    cosignSecret('key-flood', '4,000 public keys, none of them the signer', () => Object.fromEntries(Array.from({ length: 4000 }, (_, i) => [`k${i}.pub`, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ format: 'pem', type: 'spki' }).toString()])), /4000 keys ending in '\.pub', more than 100 \(limit maxPublicKeys\)/, { solo: true }),

    // Sigstore trusted roots (keyless).
    rootSecret('missing-key', 'a trusted-root Secret without trusted_root.json', () => ({ 'root.json': '{}' }), /trusted_root\.json/, { cli: cliVerify(2, /trusted_root\.json/) }),
    rootSecret('not-json', 'trusted_root.json that is not JSON', () => ({ 'trusted_root.json': '{"mediaType":' }), /trusted_root\.json|JSON/),
    rootSecret('deep-json', 'trusted_root.json of 400,000 nested arrays', () => ({ 'trusted_root.json': jsonDeepArrays(400_000) }), /trusted_root\.json.*limit maxJSONDepth/),
    rootSecret('no-authorities', 'trusted_root.json without certificate authorities', (ctx) => ({ 'trusted_root.json': JSON.stringify({ ...JSON.parse(trustedRoot(ctx.world.trust, false)), certificateAuthorities: [] }) }), /certificate authorit/i),
    rootSecret('garbage-ca', 'a certificate authority whose certificate is garbage', (ctx) => {
      const r = JSON.parse(trustedRoot(ctx.world.trust, false)) as { certificateAuthorities: { certChain: { certificates: { rawBytes: string }[] } }[] };
      r.certificateAuthorities[0]!.certChain.certificates = [{ rawBytes: Buffer.from('garbage').toString('base64') }];
      return { 'trusted_root.json': JSON.stringify(r) };
    }, /trusted_root\.json|certificate|trusted root/i),

    // Registry credentials, TLS and proxy Secrets.
    registrySecret('not-json', 'auth', '.dockerconfigjson that is not JSON', { '.dockerconfigjson': '{"auths":' }, /dockerconfigjson|JSON|secret/i),
    registrySecret('missing-key', 'auth', 'a registry Secret without .dockerconfigjson', { password: 'x' }, /\.dockerconfigjson/),
    registrySecret('deep-json', 'auth', '.dockerconfigjson of 400,000 nested arrays', { '.dockerconfigjson': jsonDeepArrays(400_000) }, /dockerconfig|JSON|secret/i),
    registrySecret('garbage', 'cert', 'ca.crt holding garbage', { 'ca.crt': 'garbage' }, /ca\.crt/),
    registrySecret('key-without-cert', 'cert', 'tls.key without tls.crt', { 'tls.key': 'x' }, /tls\.crt/),
    registrySecret('not-url', 'proxy', 'a proxy address that is not a URL', { address: 'not a url' }, /address/),

    // Regular expressions in matchOIDCIdentity and semverFilter, run against input the tenant also shapes.
    identityCase('redos-subject', "subject '^(a+)+$' against a certificate whose e-mail SAN is 48 a's and a '!'", { issuer: '^https://issuer\\.test$', subject: '^(a+)+$' }, { email: redos }, /identity|matchOIDCIdentity|match/i, { solo: true, cli: cliVerify(1, /identity|matchOIDCIdentity|match/i) }),
    identityCase('redos-issuer', "issuer '^(a|aa)+$' against an issuer of 48 a's and a '!'", { issuer: '^(a|aa)+$', subject: '.*' }, { email: 'dev@example.com', issuer: redos }, /identity|matchOIDCIdentity|match/i, { solo: true }),
    identityCase('backreference', "subject '^(dev)@example\\.com\\1$' (a backreference: not RE2)", { issuer: '^https://issuer\\.test$', subject: '^(dev)@example\\.com\\1$' }, { email: 'dev@example.comdev' }, /regular expression|invalid|backreference|not supported/i),
    identityCase('lookahead', "subject '^(?=dev)dev@example\\.com$' (a lookahead: not RE2)", { issuer: '^https://issuer\\.test$', subject: '^(?=dev)dev@example\\.com$' }, { email: 'dev@example.com' }, /regular expression|invalid|lookahead|not supported/i),
    identityCase('huge-alternation', 'a subject expression of 20,000 alternatives', { issuer: '^https://issuer\\.test$', subject: `^(${Array.from({ length: 20_000 }, (_, i) => `user${i}@example\\.com`).join('|')})$` }, { email: 'dev@example.com' }, /matchOIDCIdentity expressions are \d+ characters long together.*limit identityPatternsMaxLength/),
    {
      id: 'secret-semverfilter-redos',
      category: 'secret',
      title: "semverFilter '^(a+)+$' against a registry tag of 48 a's and a '!'",
      attacker: 'tenant',
      profile: 'cosign-key',
      viaHostile: true,
      ref: 'semver',
      solo: true,
      attack: {
        kind: 'spec',
        prepare: async (ctx) => ctx.world.hostile.set(ctx.repo, (req, res) => (req.kind === 'tags' ? send(res, 200, JSON.stringify({ tags: ['1.0.0', redos] }), { 'content-type': 'application/json' }) : 'pass')),
        patch: () => ({ ref: { semver: '>=1.0.0', semverFilter: '^(a+)+$' } }),
      },
      expect: readFailed(/no tag|semver|filter/i),
    },

    // Names pasted into API paths: the schema refuses them (DNS-1123).
    nameCase('verify-traversal', "spec.verify.secretRef.name '../../kube-system/secrets/x'", { verify: { provider: 'cosign', secretRef: { name: '../../kube-system/secrets/x' } } }, /secretRef\.name|name/),
    nameCase('auth-slash', "spec.secretRef.name 'a/b'", { secretRef: { name: 'a/b' } }, /secretRef\.name|name/),
    nameCase('sa-traversal', "spec.serviceAccountName '../default'", { serviceAccountName: '../default' }, /serviceAccountName/),
    nameCase('cert-query', "spec.certSecretRef.name 'x?watch=true'", { certSecretRef: { name: 'x?watch=true' } }, /certSecretRef\.name|name/),
    nameCase('proxy-upper', "spec.proxySecretRef.name 'Proxy_Secret' (not DNS-1123)", { proxySecretRef: { name: 'Proxy_Secret' } }, /proxySecretRef\.name|name/),
  ];
}

