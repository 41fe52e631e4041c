// Cosign end to end: real etcd + kube-apiserver, a real docker-registry (plain HTTP, plus a TLS +
// htpasswd one), the controller as a separate process with the shipped RBAC, and the `verify`
// CLI as a separate process. Signatures are real: the containers/image and sigstore/cosign
// vectors, and signatures made here with node:crypto and a private Sigstore instance.
//
// About the containers/image `dir-img-*` fixtures: their `manifest.json` files reference busybox
// blobs (a 1.5 kB config and a 2.9 MB layer) that are not in the vectors, and docker-registry
// (distribution 2.8) refuses a manifest PUT whose blobs are missing (MANIFEST_BLOB_UNKNOWN,
// checked). Blobs cannot be faked: their digests are sha256 of content we do not have. So the
// fixture manifests are written into the registry's filesystem storage exactly as distribution
// stores a pushed manifest (blob data + revision link + tag link): the registry then serves the
// fixture bytes, so the digest is the fixture's. The `.sig` manifests are pushed through the API.
// Verification runs before pulling, so the controller decides SourceVerified for these; the
// pull that follows fails (the busybox layer is absent), so for the passing fixtures Ready is
// False with a pull error and nothing is stored — asserted below, and the same outcomes are
// also checked with the CLI `verify` (which does not pull).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  makeTempDir,
  pushBlob,
  pushManifest,
  pushTarGzArtifact,
  run,
  startCluster,
  startRegistry,
  type Cluster,
  type Registry,
  type RegistryEndpoint,
} from '../harness/index.ts';
import { applyRepo, cond, installController, startControllerProcess, waitRepo, type RepoObject, type ControllerProcess } from '../helpers/controller-env.ts';
import { BundleType, pushCosignSig, pushReferrer } from '../helpers/push-signatures.ts';
import { readCImageSignature, type SigLayer } from '../helpers/cosign-registry.ts';
import { cosignPayload, generateKey, keyBundle, legacyLayer, signBytes, signLegacy, type TestKey } from '../helpers/cosign-sign.ts';
import { TestSigstore } from '../helpers/cosign-sigstore.ts';
import { projectRoot, vectorPath } from '../helpers/shared.ts';

const NS = 'default';
const fx = (...p: string[]): string => vectorPath('cosign/containers/image/signature/fixtures', ...p);
const DOCKER_V2 = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * Writes manifest bytes into a docker-registry's filesystem storage as distribution does on a
 * manifest PUT (blob data, revision link, tag links), without the blob-existence check.
 */
function seedManifest(reg: Registry, repo: string, tag: string, bytes: Buffer): string {
  const digest = sha256(bytes);
  const hex = digest.slice('sha256:'.length);
  const root = path.join(reg.dir, 'data/docker/registry/v2');
  const put = (p: string, data: Buffer | string): void => {
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, data);
  };
  put(path.join(root, 'blobs/sha256', hex.slice(0, 2), hex, 'data'), bytes);
  const m = path.join(root, 'repositories', repo, '_manifests');
  put(path.join(m, 'revisions/sha256', hex, 'link'), digest);
  put(path.join(m, 'tags', tag, 'current/link'), digest);
  put(path.join(m, 'tags', tag, 'index/sha256', hex, 'link'), digest);
  return digest;
}

function sigFiles(dir: string): SigLayer[] {
  const names = ['signature-1', 'signature-2'].filter((n) => {
    try {
      readFileSync(fx(dir, n));
      return true;
    } catch {
      return false;
    }
  });
  return names.map((n) => readCImageSignature(fx(dir, n)));
}

const b64 = (v: string | Buffer): string => Buffer.from(v).toString('base64');

interface CliResult {
  code: number;
  json: Record<string, unknown>;
  stderr: string;
}

describe('cosign end to end (controller + CLI + real registries)', { timeout: 900_000 }, () => {
  let cluster: Cluster;
  let reg: Registry;
  let authReg: Registry;
  let ctrl: ControllerProcess;
  let sigstore: TestSigstore;
  const dir = makeTempDir('osc-cosign-e2e-');
  let kP256: TestKey;
  let kRSA: TestKey;
  let kEd: TestKey;
  let kOther: TestKey;

  async function applySecret(name: string, data: Record<string, string | Buffer>, type = 'Opaque'): Promise<void> {
    const obj = { apiVersion: 'v1', kind: 'Secret', type, metadata: { name, namespace: NS }, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])) };
    await cluster.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(obj) });
  }

  async function verifyRepo(name: string, repo: string, verify: Record<string, unknown>, extra: Record<string, unknown> = {}, labels: Record<string, string> = {}): Promise<void> {
    await applyRepo(cluster, {
      metadata: { name, namespace: NS, labels },
      spec: { url: `oci://${reg.host}/${repo}`, interval: '1h', insecure: true, ref: { tag: 'latest' }, verify: { provider: 'cosign', ...verify }, ...extra },
    });
  }

  const sv = (o: RepoObject | null) => cond(o, 'SourceVerified');
  const waitSV = (name: string, status: 'True' | 'False', timeoutMs = 60_000): Promise<RepoObject> =>
    // A failed reconcile leaves status.observedGeneration alone; the condition records the generation.
    waitRepo(cluster, NS, name, (o) => sv(o)?.status === status && (sv(o) as { observedGeneration?: number }).observedGeneration === o.metadata.generation, `SourceVerified=${status}`, timeoutMs);

  function assertVerified(o: RepoObject, revision: RegExp | string, words: RegExp[]): void {
    const c = sv(o)!;
    assert.equal(c.status, 'True', c.message);
    assert.equal(c.reason, 'Succeeded');
    const rev = typeof revision === 'string' ? revision.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') : revision.source;
    assert.match(c.message, new RegExp(`^verified signature of revision ${rev}: cosign `));
    for (const w of words) assert.match(c.message, w);
  }

  function assertRejected(o: RepoObject, provider: 'cosign' | 'cosign keyless', words: RegExp[], opts: { servedRevision?: string } = {}): void {
    const c = sv(o)!;
    assert.equal(c.status, 'False', c.message);
    assert.equal(c.reason, 'VerificationError');
    assert.ok(c.message.startsWith(`failed to verify the signature using provider '${provider}': `), c.message);
    for (const w of words) assert.match(c.message, w);
    const ready = cond(o, 'Ready')!;
    assert.equal(ready.status, 'False');
    assert.equal(ready.reason, 'VerificationError');
    assert.equal(ready.message, c.message);
    // Nothing new is stored: no artifact at all, or still the previous revision.
    assert.equal(o.status?.artifact?.revision, opts.servedRevision);
    const stored = storedFiles(o.metadata.name);
    if (opts.servedRevision === undefined) assert.deepEqual(stored, [], `nothing stored for ${o.metadata.name}`);
    else assert.ok(stored.every((f) => opts.servedRevision!.endsWith(f.replace(/\.tar\.gz$/, ''))), `only the previous revision is stored: ${stored.join(', ')}`);
  }

  /** Artifact files the controller stored for an object (excluding the latest.tar.gz alias). */
  function storedFiles(name: string): string[] {
    const d = path.join(ctrl.storagePath, 'ocirepository', NS, name);
    return existsSync(d) ? readdirSync(d).filter((f) => f.endsWith('.tar.gz') && f !== 'latest.tar.gz') : [];
  }

  async function cli(args: string[]): Promise<CliResult> {
    const r = await run(process.execPath, [path.join(projectRoot, 'src/main.ts'), 'verify', ...args, '-o', 'json'], { timeoutMs: 60_000 });
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(r.stdout) as Record<string, unknown>;
    } catch {
      throw new Error(`verify ${args.join(' ')}: exit ${r.code}, stdout is not JSON:\n${r.stdout}\n${r.stderr}`);
    }
    return { code: r.code, json, stderr: r.stderr };
  }

  function secretDir(name: string, files: Record<string, string>): string {
    const d = path.join(dir, 'secrets', name);
    mkdirSync(d, { recursive: true });
    for (const [k, v] of Object.entries(files)) writeFileSync(path.join(d, k), v);
    return d;
  }

  async function reconcileNow(name: string): Promise<void> {
    await cluster.kubectlOk(['annotate', '--overwrite', `ocirepository/${name}`, `reconcile.ocisource.dev/requestedAt=${Date.now()}-${Math.random()}`]);
  }

  before(async () => {
    [cluster, reg, authReg, sigstore] = await Promise.all([
      startCluster(),
      startRegistry(),
      startRegistry({ tls: true, htpasswd: { user: 'puller', password: 's3cret' } }),
      TestSigstore.create('e2e'),
    ]);
    kP256 = generateKey('p256');
    kRSA = generateKey('rsa');
    kEd = generateKey('ed25519');
    kOther = generateKey('p256');
    const kubeconfig = await installController(cluster, dir);
    ctrl = await startControllerProcess({ kubeconfig, dir });
  });

  after(async () => {
    await ctrl?.stop();
    await Promise.all([cluster?.stop(), reg?.stop(), authReg?.stop()]);
  });

  test('containers/image fixtures through the controller and the CLI', async () => {
    const manifests: Record<string, string> = {};
    const seed = async (repo: string, fixtureDir: string, layers: SigLayer[]): Promise<string> => {
      const digest = seedManifest(reg, repo, 'latest', readFileSync(fx(fixtureDir, 'manifest.json')));
      await pushCosignSig(reg, repo, digest, layers);
      manifests[repo] = digest;
      return digest;
    };
    const valid = sigFiles('dir-img-cosign-valid');
    await seed('fx/valid', 'dir-img-cosign-valid', valid);
    await seed('fx/valid2', 'dir-img-cosign-valid-2', sigFiles('dir-img-cosign-valid-2'));
    await seed('fx/mixed', 'dir-img-cosign-mixed', sigFiles('dir-img-cosign-mixed'));
    await seed('fx/modified', 'dir-img-cosign-modified-manifest', sigFiles('dir-img-cosign-modified-manifest'));
    await seed('fx/keyrekor', 'dir-img-cosign-key-rekor-valid', sigFiles('dir-img-cosign-key-rekor-valid'));
    await seed('fx/keyless', 'dir-img-cosign-fulcio-rekor-valid', sigFiles('dir-img-cosign-fulcio-rekor-valid'));
    const other = sigFiles('dir-img-cosign-other-attachment');
    assert.equal(other[0]!.mimeType, 'text/plain');
    await seed('fx/other', 'dir-img-cosign-other-attachment', other);
    await seed('fx/other-and-valid', 'dir-img-cosign-other-attachment', [...other, ...valid]);
    // The registry serves the fixture bytes unchanged under the fixture's digest.
    const head = await fetch(`${reg.url}/v2/fx/valid/manifests/latest`, { headers: { accept: DOCKER_V2 } });
    assert.equal(head.headers.get('docker-content-digest'), sha256(readFileSync(fx('dir-img-cosign-valid', 'manifest.json'))));
    assert.deepEqual(Buffer.from(await head.arrayBuffer()), readFileSync(fx('dir-img-cosign-valid', 'manifest.json')));

    await applySecret('fx-cosign', { 'cosign.pub': readFileSync(fx('cosign.pub')) });
    await applySecret('fx-cosign2', { 'cosign2.pub': readFileSync(fx('cosign2.pub')) });
    const L = { suite: 'fixtures' };
    const gh = { issuer: '^https://github\\.com/login/oauth$', subject: '^mitr@redhat\\.com$' };
    await Promise.all([
      verifyRepo('fx-valid', 'fx/valid', { secretRef: { name: 'fx-cosign' } }, {}, L),
      verifyRepo('fx-valid-key2', 'fx/valid', { secretRef: { name: 'fx-cosign2' } }, {}, L),
      verifyRepo('fx-valid2', 'fx/valid2', { secretRef: { name: 'fx-cosign' } }, {}, L),
      verifyRepo('fx-mixed', 'fx/mixed', { secretRef: { name: 'fx-cosign' } }, {}, L),
      verifyRepo('fx-modified', 'fx/modified', { secretRef: { name: 'fx-cosign' } }, {}, L),
      verifyRepo('fx-keyrekor', 'fx/keyrekor', { secretRef: { name: 'fx-cosign2' } }, {}, L),
      verifyRepo('fx-keyless', 'fx/keyless', { matchOIDCIdentity: [gh] }, {}, L),
      verifyRepo('fx-keyless-wrong', 'fx/keyless', { matchOIDCIdentity: [{ issuer: gh.issuer, subject: '^someone@example\\.com$' }] }, {}, L),
      verifyRepo('fx-other', 'fx/other', { secretRef: { name: 'fx-cosign' } }, {}, L),
      verifyRepo('fx-other-and-valid', 'fx/other-and-valid', { secretRef: { name: 'fx-cosign' } }, {}, L),
    ]);

    const passing: Array<[string, string, RegExp[]]> = [
      ['fx-valid', 'fx/valid', [/legacy \.sig signature verified, signed by key 'cosign\.pub' \(ecdsa-p256, sha256:[0-9a-f]{64}\)/]],
      ['fx-valid2', 'fx/valid2', [/key 'cosign\.pub'/]],
      ['fx-mixed', 'fx/mixed', [/key 'cosign\.pub'/]],
      ['fx-keyrekor', 'fx/keyrekor', [/key 'cosign2\.pub'/, /Rekor log index \d+ integrated \d{4}-/]],
      ['fx-keyless', 'fx/keyless', [/'mitr@redhat\.com' issued by 'https:\/\/github\.com\/login\/oauth'/, /Rekor log index \d+ integrated 2023-01-20T20:51:33/]],
      ['fx-other-and-valid', 'fx/other-and-valid', [/key 'cosign\.pub'/]],
    ];
    await Promise.all(passing.map(async ([name, repo, words]) => {
      const o = await waitSV(name, 'True');
      assertVerified(o, `latest@${manifests[repo]}`, words);
      // Verified, but the fixture's busybox layer is not in the registry: the pull fails after
      // verification and nothing is stored.
      const r = await waitRepo(cluster, NS, name, (x) => cond(x, 'Ready')?.status === 'False' && sv(x)?.status === 'True', 'Ready=False after verification');
      assert.match(cond(r, 'Ready')!.message, /9d16cba9|1df32bae|blob/i, cond(r, 'Ready')!.message);
      assert.equal(r.status?.artifact, undefined);
    }));

    const rejected: Array<[string, 'cosign' | 'cosign keyless', RegExp[]]> = [
      ['fx-valid-key2', 'cosign', [/signature-invalid: signature does not verify with any configured key \(cosign2\.pub\)/]],
      ['fx-modified', 'cosign', [new RegExp(`digest-mismatch: signature payload is for ${manifests['fx/valid']}, not ${manifests['fx/modified']}`)]],
      ['fx-keyless-wrong', 'cosign keyless', [/identity-mismatch: certificate identity \(issuer 'https:\/\/github\.com\/login\/oauth', subject mitr@redhat\.com\) matches no matchOIDCIdentity entry/]],
      // The text/plain attachment is not a simple-signing layer: ignored, so there is nothing to verify.
      ['fx-other', 'cosign', [new RegExp(`no signatures found for '${reg.host}/fx/other@${manifests['fx/other']}'`)]],
    ];
    await Promise.all(rejected.map(async ([name, provider, words]) => assertRejected(await waitSV(name, 'False'), provider, words)));

    // The CLI reaches the same decisions from the real registry.
    const keys = secretDir('fx-cosign', { 'cosign.pub': readFileSync(fx('cosign.pub'), 'utf8') });
    const keys2 = secretDir('fx-cosign2', { 'cosign2.pub': readFileSync(fx('cosign2.pub'), 'utf8') });
    const url = (repo: string) => `oci://${reg.host}/${repo}`;
    const [ok, bad, modified, keyless, keylessWrong] = await Promise.all([
      cli([url('fx/valid'), '--provider', 'cosign', '--secret-dir', keys, '--insecure']),
      cli([url('fx/valid'), '--provider', 'cosign', '--secret-dir', keys2, '--insecure']),
      cli([url('fx/modified'), '--provider', 'cosign', '--secret-dir', keys, '--insecure']),
      cli([url('fx/keyless'), '--provider', 'cosign', '--match-oidc-identity', `issuer=${gh.issuer},subject=${gh.subject}`, '--insecure']),
      cli([url('fx/keyless'), '--provider', 'cosign', '--match-oidc-identity', `issuer=${gh.issuer},subject=^nobody$`, '--insecure']),
    ]);
    assert.equal(ok.code, 0, JSON.stringify(ok.json));
    assert.equal(ok.json.status, 'verified');
    assert.equal(ok.json.digest, manifests['fx/valid']);
    assert.equal(bad.code, 1);
    assert.equal(bad.json.code, 'signature-invalid');
    assert.equal(modified.code, 1);
    assert.equal(modified.json.code, 'digest-mismatch');
    assert.equal(keyless.code, 0, JSON.stringify(keyless.json));
    assert.equal(keyless.json.provider, 'cosign keyless');
    assert.deepEqual((keyless.json.details as { identity: { subjects: string[] } }).identity.subjects, ['mitr@redhat.com']);
    assert.equal(keylessWrong.code, 1);
    assert.equal(keylessWrong.json.code, 'identity-mismatch');

    await cluster.kubectlOk(['delete', 'ocirepository', '-l', 'suite=fixtures', '--wait=false']);
  });

  test('sigstore/cosign OCI bundle vector as a referrer (tag fallback)', async () => {
    // go-containerregistry's empty.Image, byte for byte: the subject of the cosign vector.
    const config = Buffer.from('{"architecture":"","created":"0001-01-01T00:00:00Z","os":"","rootfs":{"type":"layers","diff_ids":null},"config":{}}');
    await pushBlob(reg, 'bundle/pgi', config);
    const manifest = Buffer.from(`{"schemaVersion":2,"mediaType":"${DOCKER_V2}","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":${config.length},"digest":"${sha256(config)}"},"layers":[]}`);
    const pushed = await pushManifest(reg, 'bundle/pgi', 'latest', manifest, DOCKER_V2);
    assert.equal(pushed.digest, 'sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4');
    const bundle = readFileSync(vectorPath('cosign/sigstore/cosign/pkg/cosign/testdata/oci-attestation.sigstore.json'));
    const annotations = { 'dev.sigstore.bundle.content': 'dsse-envelope', 'dev.sigstore.bundle.predicateType': 'https://cosign.sigstore.dev/attestation/v1' };
    await pushReferrer(reg, 'bundle/pgi', { digest: pushed.digest, size: manifest.length, mediaType: DOCKER_V2 }, BundleType, bundle, BundleType, { annotations });
    // The same bundle attached to another image must not verify it.
    const otherImg = await pushTarGzArtifact(reg, 'bundle/pgi', 'other', { 'x.txt': 'other image' });
    await pushReferrer(reg, 'bundle/pgi', { digest: otherImg.manifestDigest, size: otherImg.manifestBytes.length, mediaType: OCI_MANIFEST }, BundleType, bundle, BundleType, { annotations });
    // docker-registry has no Referrers API: the tag fallback index is what the client reads.
    const idx = await fetch(`${reg.url}/v2/bundle/pgi/manifests/${pushed.digest.replace(':', '-')}`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } });
    assert.equal(idx.status, 200);
    assert.equal((await fetch(`${reg.url}/v2/bundle/pgi/referrers/${pushed.digest}`)).status, 404);

    const root = vectorPath('cosign/sigstore/cosign/pkg/cosign/testdata/trusted_root_pgi.json');
    const id = 'issuer=^https://github\\.com/login/oauth$,subject=^cody@soyland\\.com$';
    const url = `oci://${reg.host}/bundle/pgi`;
    const [ok, wrongId, otherImage] = await Promise.all([
      cli([url, '--provider', 'cosign', '--trusted-root', root, '--match-oidc-identity', id, '--insecure']),
      cli([url, '--provider', 'cosign', '--trusted-root', root, '--match-oidc-identity', 'issuer=.*,subject=wrong', '--insecure']),
      cli([url, '--provider', 'cosign', '--trusted-root', root, '--match-oidc-identity', id, '--tag', 'other', '--insecure']),
    ]);
    assert.equal(ok.code, 0, JSON.stringify(ok.json));
    const d = ok.json.details as { format: string; predicateType: string; identity: { subjects: string[]; issuer: string } };
    assert.equal(d.format, 'bundle');
    assert.equal(d.predicateType, 'https://cosign.sigstore.dev/attestation/v1');
    assert.deepEqual(d.identity.subjects, ['cody@soyland.com']);
    assert.equal(wrongId.code, 1);
    assert.equal(wrongId.json.code, 'identity-mismatch');
    assert.equal(otherImage.code, 1);
    assert.equal(otherImage.json.code, 'digest-mismatch');
    assert.match(String(otherImage.json.message), /in-toto statement subject is sha256:732112270d7e/);

    // The controller reaches the same verdict (the empty image has no layer to store afterwards).
    await applySecret('pgi-root', { 'trusted_root.json': readFileSync(root) });
    await verifyRepo('bundle-pgi', 'bundle/pgi', { trustedRootSecretRef: { name: 'pgi-root' }, matchOIDCIdentity: [{ issuer: '^https://github\\.com/login/oauth$', subject: '^cody@soyland\\.com$' }] });
    const o = await waitSV('bundle-pgi', 'True');
    assertVerified(o, `latest@${pushed.digest}`, [/Sigstore bundle signature verified, signed by 'cody@soyland\.com' issued by 'https:\/\/github\.com\/login\/oauth'/, /Rekor log index/]);
    const r = await waitRepo(cluster, NS, 'bundle-pgi', (x) => cond(x, 'Ready')?.status === 'False', 'Ready=False (no layers)');
    assert.match(cond(r, 'Ready')!.message, /no layers/);
    await cluster.kubectlOk(['delete', 'ocirepository/bundle-pgi', '--wait=false']);
  });

  test('own signatures: ECDSA, RSA, Ed25519, v0.3 bundle; tampered, copied, wrong key', async () => {
    await applySecret('own-keys', { 'p256.pub': kP256.pubPem, 'rsa.pub': kRSA.pubPem, 'ed25519.pub': kEd.pubPem });
    await applySecret('other-key', { 'other.pub': kOther.pubPem });
    const artifact = (repo: string, tag = 'latest', content = repo) => pushTarGzArtifact(reg, repo, tag, { 'deploy.yaml': `kind: ConfigMap\n# ${content}\n` });

    const p256 = await artifact('own/p256');
    await pushCosignSig(reg, 'own/p256', p256.manifestDigest, [signLegacy(kP256, p256.manifestDigest)]);
    const rsa = await artifact('own/rsa');
    await pushCosignSig(reg, 'own/rsa', rsa.manifestDigest, [signLegacy(kRSA, rsa.manifestDigest)]);
    const ed = await artifact('own/ed25519');
    await pushCosignSig(reg, 'own/ed25519', ed.manifestDigest, [signLegacy(kEd, ed.manifestDigest)]);
    const bun = await artifact('own/bundle');
    await pushReferrer(reg, 'own/bundle', { digest: bun.manifestDigest, size: bun.manifestBytes.length, mediaType: OCI_MANIFEST }, BundleType, keyBundle(kP256, bun.manifestDigest), BundleType, {
      annotations: { 'dev.sigstore.bundle.content': 'dsse-envelope', 'dev.sigstore.bundle.predicateType': 'https://sigstore.dev/cosign/sign/v1' },
    });
    // Signature copied from another image: a valid signature of image X in Y's .sig tag.
    const x = await artifact('own/copied', 'x', 'image X');
    const y = await artifact('own/copied', 'latest', 'image Y');
    await pushCosignSig(reg, 'own/copied', y.manifestDigest, [signLegacy(kP256, x.manifestDigest)]);
    // Tampered: starts signed and served; then the tag moves to a revision whose payload was
    // altered after signing.
    const t1 = await artifact('own/tampered', 'latest', 'v1');
    await pushCosignSig(reg, 'own/tampered', t1.manifestDigest, [signLegacy(kP256, t1.manifestDigest)]);

    const own = { secretRef: { name: 'own-keys' } };
    await Promise.all([
      verifyRepo('own-p256', 'own/p256', own),
      verifyRepo('own-rsa', 'own/rsa', own),
      verifyRepo('own-ed25519', 'own/ed25519', own),
      verifyRepo('own-bundle', 'own/bundle', own),
      verifyRepo('own-copied', 'own/copied', own),
      verifyRepo('own-tampered', 'own/tampered', own),
      verifyRepo('own-wrong-key', 'own/p256', { secretRef: { name: 'other-key' } }),
    ]);

    const cases: Array<[string, { manifestDigest: string }, RegExp[]]> = [
      ['own-p256', p256, [/legacy \.sig signature verified, signed by key 'p256\.pub' \(ecdsa-p256, sha256:[0-9a-f]{64}\)/]],
      ['own-rsa', rsa, [/legacy \.sig signature verified, signed by key 'rsa\.pub' \(rsa/]],
      ['own-ed25519', ed, [/legacy \.sig signature verified, signed by key 'ed25519\.pub' \(ed25519/]],
      ['own-bundle', bun, [/Sigstore bundle signature verified, signed by key 'p256\.pub'/]],
      ['own-tampered', t1, [/key 'p256\.pub'/]],
    ];
    await Promise.all(cases.map(async ([name, art, words]) => {
      const o = await waitRepo(cluster, NS, name, (r) => cond(r, 'Ready')?.status === 'True' && r.status?.observedGeneration === r.metadata.generation, 'Ready');
      assertVerified(o, `latest@${art.manifestDigest}`, words);
      assert.equal(o.status?.artifact?.revision, `latest@${art.manifestDigest}`);
      const got = await fetch(o.status!.artifact!.url);
      assert.equal(got.status, 200);
    }));

    assertRejected(await waitSV('own-copied', 'False'), 'cosign', [new RegExp(`digest-mismatch: signature payload is for ${x.manifestDigest}, not ${y.manifestDigest}`)]);
    assertRejected(await waitSV('own-wrong-key', 'False'), 'cosign', [/signature-invalid: signature does not verify with any configured key \(other\.pub\)/]);

    const t2 = await artifact('own/tampered', 'latest', 'v2');
    const good = signLegacy(kP256, t2.manifestDigest);
    const tamperedPayload = Buffer.from(good.payload.toString().replace('"optional":null', '"optional":{"evil":"yes"}'));
    await pushCosignSig(reg, 'own/tampered', t2.manifestDigest, [{ ...good, payload: tamperedPayload }]);
    await reconcileNow('own-tampered');
    const tampered = await waitSV('own-tampered', 'False');
    assertRejected(tampered, 'cosign', [/signature-invalid: signature does not verify with any configured key/], { servedRevision: `latest@${t1.manifestDigest}` });
    assert.equal((await fetch(tampered.status!.artifact!.url)).status, 200, 'the last good artifact is still served');
  });

  test('key rotation through the Secret re-triggers verification', async () => {
    const kA = generateKey('p256');
    const kB = generateKey('p256');
    const art = await pushTarGzArtifact(reg, 'rotate/app', 'latest', { 'app.yaml': 'kind: Deployment\n' });
    const sigA = signLegacy(kA, art.manifestDigest);
    await pushCosignSig(reg, 'rotate/app', art.manifestDigest, [sigA]);
    await applySecret('rotate-keys', { 'a.pub': kA.pubPem });
    await verifyRepo('rotate', 'rotate/app', { secretRef: { name: 'rotate-keys' } });
    const first = await waitRepo(cluster, NS, 'rotate', (o) => cond(o, 'Ready')?.status === 'True', 'Ready with key A');
    assertVerified(first, `latest@${art.manifestDigest}`, [/key 'a\.pub'/]);
    const generation = first.metadata.generation;

    // Replace the Secret's data with key B only; the OCIRepository is not touched.
    await applySecret('rotate-keys', { 'b.pub': kB.pubPem });
    const keys = JSON.parse(await cluster.kubectlOk(['get', 'secret', 'rotate-keys', '-o', 'json'])) as { data: Record<string, string> };
    assert.deepEqual(Object.keys(keys.data), ['b.pub']);
    const rejected = await waitSV('rotate', 'False');
    assert.equal(rejected.metadata.generation, generation, 'the OCIRepository spec did not change');
    assertRejected(rejected, 'cosign', [/signature-invalid: signature does not verify with any configured key \(b\.pub\)/], { servedRevision: `latest@${art.manifestDigest}` });

    // A signature by B appears; a requested reconcile verifies it.
    await pushCosignSig(reg, 'rotate/app', art.manifestDigest, [sigA, signLegacy(kB, art.manifestDigest)]);
    await reconcileNow('rotate');
    const ok = await waitRepo(cluster, NS, 'rotate', (o) => sv(o)?.status === 'True' && cond(o, 'Ready')?.status === 'True', 'verified with key B');
    assertVerified(ok, `latest@${art.manifestDigest}`, [/key 'b\.pub'/]);
    assert.equal(ok.metadata.generation, generation);
  });

  test('private Sigstore: keyless with trustedRootSecretRef and identity rules', async () => {
    const art = await pushTarGzArtifact(reg, 'private/app', 'latest', { 'p.yaml': 'kind: Service\n' });
    const signedAt = new Date('2025-03-01T12:00:00Z');
    const leaf = await sigstore.issueLeaf({ email: 'dev@example.com', issuer: 'https://issuer.test', notBefore: signedAt });
    const payload = cosignPayload(art.manifestDigest, `${reg.host}/private/app`);
    const sig = signBytes(leaf.privateKey, payload);
    const integratedTime = Math.floor(signedAt.getTime() / 1000) + 60;
    await pushCosignSig(reg, 'private/app', art.manifestDigest, [legacyLayer(payload, sig, {
      'dev.sigstore.cosign/certificate': leaf.pem,
      'dev.sigstore.cosign/chain': sigstore.chainPem,
      'dev.sigstore.cosign/bundle': sigstore.legacyBundleAnnotation(payload, sig, leaf.pem, integratedTime, 77),
    })]);
    await applySecret('private-root', { 'trusted_root.json': sigstore.trustedRoot() });
    const root = { trustedRootSecretRef: { name: 'private-root' } };
    await Promise.all([
      verifyRepo('private-ok', 'private/app', { ...root, matchOIDCIdentity: [{ issuer: '^nomatch$', subject: '.*' }, { issuer: '^https://issuer\\.test$', subject: '^dev@example\\.com$' }] }),
      verifyRepo('private-wrong', 'private/app', { ...root, matchOIDCIdentity: [{ issuer: '^https://issuer\\.test$', subject: '^ops@example\\.com$' }] }),
      verifyRepo('private-none', 'private/app', root),
      // Without the private root, the public-good root does not know this CA.
      verifyRepo('private-public-root', 'private/app', { matchOIDCIdentity: [{ issuer: '^https://issuer\\.test$', subject: '^dev@example\\.com$' }] }),
    ]);
    const ok = await waitRepo(cluster, NS, 'private-ok', (o) => cond(o, 'Ready')?.status === 'True', 'Ready');
    assertVerified(ok, `latest@${art.manifestDigest}`, [/legacy \.sig signature verified, signed by 'dev@example\.com' issued by 'https:\/\/issuer\.test'/, /Rekor log index 77 integrated 2025-03-01T12:01:00\.000Z/]);
    assert.equal(ok.status?.artifact?.revision, `latest@${art.manifestDigest}`);
    assertRejected(await waitSV('private-wrong', 'False'), 'cosign keyless', [/identity-mismatch/, /dev@example\.com/]);
    assertRejected(await waitSV('private-none', 'False'), 'cosign keyless', [/keyless cosign verification needs at least one matchOIDCIdentity entry/]);
    assertRejected(await waitSV('private-public-root', 'False'), 'cosign keyless', [/rekor-set-invalid|tlog-invalid|chain-invalid/]);
  });

  test('TLS + htpasswd registry: signatures fetched with the same credentials and CA', async () => {
    const ep: RegistryEndpoint = authReg.endpoint();
    const art = await pushTarGzArtifact(ep, 'secure/app', 'latest', { 's.yaml': 'kind: Secret\n' });
    await pushCosignSig(ep, 'secure/app', art.manifestDigest, [signLegacy(kP256, art.manifestDigest)]);
    await applySecret('secure-ca', { 'ca.crt': authReg.caPem! });
    await cluster.kubectlOk(['create', 'secret', 'docker-registry', 'secure-creds', `--docker-server=${authReg.host}`, '--docker-username=puller', '--docker-password=s3cret']);
    await applySecret('secure-keys', { 'cosign.pub': kP256.pubPem });
    await applyRepo(cluster, {
      metadata: { name: 'secure', namespace: NS },
      spec: { url: `oci://${authReg.host}/secure/app`, interval: '1h', ref: { tag: 'latest' }, certSecretRef: { name: 'secure-ca' }, secretRef: { name: 'secure-creds' }, verify: { provider: 'cosign', secretRef: { name: 'secure-keys' } } },
    });
    const o = await waitRepo(cluster, NS, 'secure', (r) => cond(r, 'Ready')?.status === 'True', 'Ready');
    assertVerified(o, `latest@${art.manifestDigest}`, [/key 'cosign\.pub'/]);
    assert.equal(o.status?.artifact?.revision, `latest@${art.manifestDigest}`);
    // The registry answers only authenticated requests (htpasswd), so the controller's successful
    // GET of the .sig manifest, logged as an "authorized request", used the credentials and CA.
    const log = readFileSync(authReg.logFile, 'utf8');
    const sigTag = `${art.manifestDigest.replace(':', '-')}.sig`;
    const lines = log.split('\n').filter((l) => l.includes(sigTag));
    assert.ok(lines.some((l) => l.includes('msg="authorized request"') && l.includes('http.request.method=GET') && l.includes('useragent=oci-source-controller')), `the controller fetched the .sig manifest with credentials:\n${lines.join('\n')}`);
  });

  test('CLI verify: exit codes 0/1/2 with -o json', async () => {
    const art = await pushTarGzArtifact(reg, 'cli/app', 'v1', { 'c.yaml': 'kind: Job\n' });
    await pushCosignSig(reg, 'cli/app', art.manifestDigest, [signLegacy(kP256, art.manifestDigest)]);
    const good = secretDir('cli-good', { 'cosign.pub': kP256.pubPem });
    const wrong = secretDir('cli-wrong', { 'cosign.pub': kOther.pubPem });
    const none = secretDir('cli-none', { 'README': 'no keys here' });
    const url = `oci://${reg.host}/cli/app`;
    const [ok, rejected, noKeys, noTag, byDigest] = await Promise.all([
      cli([url, '--provider', 'cosign', '--secret-dir', good, '--tag', 'v1', '--insecure']),
      cli([url, '--provider', 'cosign', '--secret-dir', wrong, '--tag', 'v1', '--insecure']),
      cli([url, '--provider', 'cosign', '--secret-dir', none, '--tag', 'v1', '--insecure']),
      cli([url, '--provider', 'cosign', '--secret-dir', good, '--tag', 'nope', '--insecure']),
      cli([url, '--provider', 'cosign', '--secret-dir', good, '--digest', art.manifestDigest, '--insecure']),
    ]);
    assert.equal(ok.code, 0, JSON.stringify(ok.json));
    assert.equal(ok.json.status, 'verified');
    assert.equal(ok.json.revision, `v1@${art.manifestDigest}`);
    assert.equal((ok.json.details as { key: { name: string } }).key.name, 'cosign.pub');
    assert.equal(rejected.code, 1, JSON.stringify(rejected.json));
    assert.equal(rejected.json.status, 'failed');
    assert.equal(rejected.json.code, 'signature-invalid');
    assert.equal(noKeys.code, 2, JSON.stringify(noKeys.json));
    assert.equal(noKeys.json.status, 'error');
    assert.equal(noKeys.json.code, 'no-public-keys');
    assert.equal(noTag.code, 2, JSON.stringify(noTag.json));
    assert.equal(noTag.json.status, 'error');
    assert.match(String(noTag.json.error), /tag nope not found/);
    assert.equal(byDigest.code, 0, JSON.stringify(byDigest.json));
    assert.equal(byDigest.json.revision, art.manifestDigest);
  });
});

