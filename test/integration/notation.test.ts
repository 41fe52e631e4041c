// Notation end to end: real etcd + kube-apiserver, a real docker-registry (no Referrers API, so
// signatures are found through the `sha256-<hex>` referrers tag schema), a referrers proxy in front
// of it (OCI 1.1 Referrers API), the controller as a separate process with the shipped RBAC, and the
// `verify` CLI as a separate process.
//
// Signatures are real: the complete signed OCI layouts of notation/test/e2e (INDEX §1) pushed
// unchanged with pushOciLayout, verified with the trust policies and certificates INDEX pairs them
// with (read from ../shared/vectors, never copied); and signatures made here (ECDSA chains, COSE,
// RFC 3161 tokens from `openssl ts`, OCSP answers from `openssl ocsp`).
//
// About the referrers tag index: three layouts ship none or an incomplete one.
// `e2e-valid-multiple-signatures` carries the index of e2e-valid-signature (it lists only 90ceaff2,
// not the second signature c3ebe4a2), and the two timestamped layouts carry none, because upstream
// pushes them to zot (Referrers API) with oras.ExtendedCopy. Pushing those layouts with oras to a
// registry without the API makes oras write the `sha256-<hex>` index listing every manifest whose
// `subject` is the artifact; `pushReferrersIndex` below does exactly that from the layout's own
// manifests (nothing invented: descriptors of the vector manifests, artifactType per the
// distribution spec = artifactType or config.mediaType, annotations copied).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  makeTempDir,
  pushManifest,
  pushOciLayout,
  pushTarGzArtifact,
  run,
  startCluster,
  startReferrersProxy,
  startRegistry,
  type Cluster,
  type ReferrersProxy,
  type Registry,
} from '../harness/index.ts';
import { applyRepo, cond, getRepo, installController, startControllerProcess, waitRepo, type ControllerProcess, type RepoObject } from '../helpers/controller-env.ts';
import { pushReferrer } from '../helpers/push-signatures.ts';
import { issue, opensslOCSP, opensslTSA, pem, signCOSE, signJWS, type Issued, type OCSPResponder } from '../helpers/notation-sign.ts';
import { projectRoot, vectorPath } from '../helpers/shared.ts';
import { EKU } from '../../src/verify/x509/certs.ts';

const NS = 'default';
const E2E = (...p: string[]): string => vectorPath('notation', 'notation', 'test', 'e2e', 'testdata', ...p);
const LAYOUT = (name: string): string => E2E('registry', 'oci_layout', name);
const POLICY = (name: string): string => E2E('config', 'trustpolicies', name);
const KEY = (name: string): string => E2E('config', 'localkeys', name);

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const SIG_TYPE = 'application/vnd.cncf.notary.signature';
/** The e2e subject: config application/vnd.notation.config, one layer "awesome notation\n" of this media type. */
const TAR_LAYER = 'application/vnd.oci.image.layer.v1.tar';
const SUBJECT = 'sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9';
const SUBJECT_LAYER = 'sha256:6de5fe1f75e4b1094c98086f403d5fd8117776ebe5aad1609281403d13dea070';
const TS_SUBJECT = 'sha256:53b0191218aed9a3c1f7c661736ac40cfc8eb928642348fd843ba3f0483c0c20';
const INVALID_TS_SUBJECT = 'sha256:f1da8cd70d6d851fa2313c8d6618f79508cf1e86877edf1c0bfe49a1b0a6467a';
const E2E_DN = 'CN=e2e,O=Notary,L=Seattle,ST=WA,C=US';
const E2E_FP = 'e38aea13f2b051f7183cca64a51ee676f4d4456f41d9fecf15eb367efc7343b9';
const SIG_VALID = 'sha256:90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f';
const SIG_TESTCERT11 = 'sha256:c3ebe4a20b6832328fc5078a7795ddc1114b896e13fca2add38109c3866b5fbf';

const LAYOUTS = [
  'e2e',
  'e2e-valid-signature',
  'e2e-expired-signature',
  'e2e-with-expired-cert',
  'e2e-invalid-signature',
  'e2e-valid-multiple-signatures',
  'e2e-with-timestamped-signature',
  'e2e-with-invalid-timestamped-signature',
] as const;
/** Layouts whose referrers tag index is missing or incomplete (see the header). */
const NEEDS_INDEX = new Set(['e2e-valid-multiple-signatures', 'e2e-with-timestamped-signature', 'e2e-with-invalid-timestamped-signature']);
const repoOf = (layout: string): string => `notation/${layout}`;

const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

type Expect =
  | { kind: 'verified'; words?: (string | RegExp)[]; warnings?: (string | RegExp)[] }
  | { kind: 'audited'; words?: (string | RegExp)[] }
  | { kind: 'skipped'; words?: (string | RegExp)[] }
  | { kind: 'rejected'; words?: (string | RegExp)[] };

interface Case {
  name: string;
  layout: string;
  /** Secret keys → files. */
  files: Record<string, string>;
  expect: Expect;
  /** Artifact revision (tag v1 of the layout). */
  subject?: string;
}

/** Pushes the `sha256-<hex>` referrers index oras writes for a registry without the Referrers API. */
async function pushReferrersIndex(reg: Registry, repo: string, layoutDir: string): Promise<Record<string, string[]>> {
  const index = JSON.parse(readFileSync(path.join(layoutDir, 'index.json'), 'utf8')) as { manifests: { digest: string; mediaType?: string }[] };
  const bySubject = new Map<string, unknown[]>();
  for (const d of index.manifests) {
    if (d.mediaType !== OCI_MANIFEST) continue;
    const bytes = readFileSync(path.join(layoutDir, 'blobs', 'sha256', d.digest.slice('sha256:'.length)));
    const m = JSON.parse(bytes.toString()) as { artifactType?: string; config: { mediaType: string }; subject?: { digest: string }; annotations?: Record<string, string> };
    if (!m.subject) continue;
    const list = bySubject.get(m.subject.digest) ?? [];
    list.push({ mediaType: OCI_MANIFEST, digest: sha256(bytes), size: bytes.length, artifactType: m.artifactType ?? m.config.mediaType, ...(m.annotations ? { annotations: m.annotations } : {}) });
    bySubject.set(m.subject.digest, list);
  }
  const out: Record<string, string[]> = {};
  for (const [subject, manifests] of bySubject) {
    await pushManifest(reg, repo, subject.replace(':', '-'), { schemaVersion: 2, mediaType: OCI_INDEX, manifests }, OCI_INDEX);
    out[subject] = manifests.map((m) => (m as { digest: string }).digest);
  }
  return out;
}

/** PEM of x5c[0] of a JWS envelope blob inside a layout (the timestamped layouts' testcert7 is in no vector file). */
function envelopeLeafPem(layout: string, blobHex: string): string {
  const env = JSON.parse(readFileSync(path.join(LAYOUT(layout), 'blobs', 'sha256', blobHex), 'utf8')) as { header: { x5c: string[] } };
  return `-----BEGIN CERTIFICATE-----\n${env.header.x5c[0]!.replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`;
}

const policyDoc = (level: string, stores: string[], extra: Record<string, unknown> = {}, name = 'gen'): string =>
  JSON.stringify({ version: '1.0', trustPolicies: [{ name, registryScopes: ['*'], signatureVerification: { level, ...extra }, trustStores: stores, trustedIdentities: ['*'] }] });

describe('notation end to end (controller + CLI + real registry)', { timeout: 900_000 }, () => {
  let cluster: Cluster;
  let reg: Registry;
  let proxy: ReferrersProxy;
  let ctrl: ControllerProcess;
  const dir = makeTempDir('osc-notation-e2e-');
  const filesDir = path.join(dir, 'files');
  mkdirSync(filesDir, { recursive: true });
  const stops: (() => unknown)[] = [];

  /** Writes a generated file (policy, generated cert) for --from-file and returns its path. */
  function file(name: string, content: string | Buffer): string {
    const p = path.join(filesDir, name);
    writeFileSync(p, content);
    return p;
  }

  const fromFiles = (files: Record<string, string>): string[] => Object.entries(files).map(([k, p]) => `--from-file=${k}=${p}`);

  async function createSecret(name: string, files: Record<string, string>): Promise<void> {
    await cluster.kubectlOk(['create', 'secret', 'generic', name, '-n', NS, ...fromFiles(files)]);
  }

  /**
   * Updates a Secret from files: `kubectl create … --dry-run=client -o json | kubectl <verb> -f -`. `apply`
   * (key rotation) merges, so it cannot drop a key of a Secret made by `kubectl create`; `replace`
   * sets the whole content (used to remove keys).
   */
  async function updateSecret(name: string, files: Record<string, string>, verb: 'apply' | 'replace' = 'apply'): Promise<void> {
    const json = await cluster.kubectlOk(['create', 'secret', 'generic', name, '-n', NS, ...fromFiles(files), '--dry-run=client', '-o', 'json']);
    await cluster.kubectlOk([verb, '-f', '-'], { input: json });
    const got = JSON.parse(await cluster.kubectlOk(['get', 'secret', name, '-n', NS, '-o', 'json'])) as { data?: Record<string, string> };
    assert.deepEqual(Object.keys(got.data ?? {}).sort(), Object.keys(files).sort(), `secret ${name} holds exactly the new keys`);
  }

  async function notationRepo(name: string, repo: string, secret: string, opts: { host?: string; layerMediaType?: string | null } = {}): Promise<void> {
    const layer = opts.layerMediaType === undefined ? TAR_LAYER : opts.layerMediaType;
    await applyRepo(cluster, {
      metadata: { name, namespace: NS },
      spec: {
        url: `oci://${opts.host ?? reg.host}/${repo}`,
        interval: '1h',
        insecure: true,
        ref: { tag: 'v1' },
        ...(layer ? { layerSelector: { mediaType: layer, operation: 'copy' } } : {}),
        verify: { provider: 'notation', secretRef: { name: secret } },
      },
    });
  }

  const sv = (o: RepoObject | null) => cond(o, 'SourceVerified');
  /** The reconcile of the current generation has decided SourceVerified and Ready. */
  // (status.observedGeneration stays -1 while the object has never reconciled successfully, so the
  // Ready condition's own observedGeneration tells that this generation has been decided.)
  const settled = (o: RepoObject): boolean => {
    const r = cond(o, 'Ready') as (ReturnType<typeof cond> & { observedGeneration?: number }) | undefined;
    return r?.observedGeneration === o.metadata.generation && sv(o) !== undefined && (r.status === 'True' || r.status === 'False');
  };
  const waitSettled = (name: string, timeoutMs = 60_000): Promise<RepoObject> => waitRepo(cluster, NS, name, settled, 'SourceVerified decided and Ready True/False', timeoutMs);

  const has = (msg: string, w: string | RegExp): boolean => (typeof w === 'string' ? msg.includes(w) : w.test(msg));

  async function assertServed(o: RepoObject, content?: string): Promise<void> {
    const art = o.status?.artifact;
    assert.ok(art, `no artifact stored: ${JSON.stringify(o.status)}`);
    const res = await fetch(art.url);
    assert.equal(res.status, 200, art.url);
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(sha256(body), art.digest);
    if (content !== undefined) assert.equal(body.toString(), content);
  }

  /** Asserts the object's conditions and storage match `e`. `revision` is the expected stored revision. */
  async function check(name: string, o: RepoObject, e: Expect, revision: string, content?: string): Promise<void> {
    const c = sv(o)!;
    const ready = cond(o, 'Ready')!;
    const ctx = `${name}: SourceVerified=${c.status}/${c.reason}: ${c.message}`;
    for (const w of e.words ?? []) assert.ok(has(c.message, w), `${ctx}\n  missing ${String(w)}`);
    switch (e.kind) {
      case 'verified':
        assert.equal(c.status, 'True', ctx);
        assert.equal(c.reason, 'Succeeded', ctx);
        assert.match(c.message, new RegExp(`^verified signature of revision ${esc(revision)}: verified notation (JWS|COSE) signature `), ctx);
        for (const w of e.warnings ?? []) assert.ok(has(c.message.slice(c.message.indexOf('; warnings: ')), w), `${ctx}\n  missing warning ${String(w)}`);
        if (!e.warnings) assert.ok(!c.message.includes('; warnings: '), ctx);
        break;
      case 'audited':
        assert.equal(c.status, 'Unknown', ctx);
        assert.equal(c.reason, 'VerificationAudited', ctx);
        assert.match(c.message, new RegExp(`^signature of revision ${esc(revision)} is not authenticated; stored because the trust policy only audits: `), ctx);
        break;
      case 'skipped':
        assert.equal(c.status, 'Unknown', ctx);
        assert.equal(c.reason, 'VerificationSkipped', ctx);
        assert.match(c.message, new RegExp(`^verification of revision ${esc(revision)} skipped: `), ctx);
        break;
      case 'rejected':
        assert.equal(c.status, 'False', ctx);
        assert.equal(c.reason, 'VerificationError', ctx);
        assert.ok(c.message.startsWith("failed to verify the signature using provider 'notation': "), ctx);
        assert.equal(ready.status, 'False', ctx);
        assert.equal(ready.reason, 'VerificationError', ctx);
        assert.equal(ready.message, c.message, ctx);
        assert.equal(o.status?.artifact, undefined, `${name}: nothing may be stored`);
        return;
    }
    assert.equal(ready.status, 'True', `${name}: Ready ${ready.status}/${ready.reason}: ${ready.message}`);
    assert.equal(o.status?.artifact?.revision, revision, name);
    await assertServed(o, content);
  }

  async function runCases(cases: Case[], opts: { host?: string } = {}): Promise<Map<string, RepoObject>> {
    await Promise.all(cases.map((k) => createSecret(k.name, k.files)));
    await Promise.all(cases.map((k) => notationRepo(k.name, repoOf(k.layout), k.name, opts)));
    const objs = await Promise.all(cases.map((k) => waitSettled(k.name)));
    const out = new Map<string, RepoObject>();
    const failures: string[] = [];
    for (const [i, k] of cases.entries()) {
      const subject = k.subject ?? SUBJECT;
      try {
        await check(k.name, objs[i]!, k.expect, `v1@${subject}`, subject === SUBJECT ? 'awesome notation\n' : undefined);
      } catch (err) {
        failures.push((err as Error).message);
      }
      out.set(k.name, objs[i]!);
    }
    assert.deepEqual(failures, [], failures.join('\n\n'));
    return out;
  }

  async function events(name: string): Promise<{ type: string; reason: string; message: string }[]> {
    const out = await cluster.kubectlOk(['get', 'events', '-n', NS, '--field-selector', `involvedObject.name=${name}`, '-o', 'json']);
    return (JSON.parse(out) as { items: { type: string; reason: string; message: string }[] }).items;
  }

  async function waitEvent(name: string, reason: string): Promise<{ type: string; reason: string; message: string }> {
    for (let i = 0; i < 100; i++) {
      const e = (await events(name)).find((x) => x.reason === reason);
      if (e) return e;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no ${reason} event for ${name}: ${JSON.stringify(await events(name))}`);
  }

  const referrersIndexes: Record<string, Record<string, string[]>> = {};

  before(async () => {
    [cluster, reg] = await Promise.all([startCluster(), startRegistry()]);
    proxy = await startReferrersProxy({ upstream: reg.host, pageSize: 1 });
    const pushing = (async () => {
      for (const l of LAYOUTS) {
        const pushed = await pushOciLayout(reg, LAYOUT(l), repoOf(l));
        assert.ok(pushed.tags.v1, `${l}: tag v1 pushed`);
        if (NEEDS_INDEX.has(l)) referrersIndexes[l] = await pushReferrersIndex(reg, repoOf(l), LAYOUT(l));
      }
    })();
    const kubeconfig = await installController(cluster, dir);
    ctrl = await startControllerProcess({ kubeconfig, dir });
    await pushing;
  });

  after(async () => {
    for (const s of stops) await s();
    await ctrl?.stop();
    await proxy?.stop();
    await Promise.all([cluster?.stop(), reg?.stop()]);
  });

  test('every e2e layout through the controller, tag-schema discovery (docker-registry has no Referrers API)', async () => {
    // The registry really has no Referrers API: the fallback is the only path.
    const api = await fetch(`${reg.url}/v2/${repoOf('e2e-valid-signature')}/referrers/${SUBJECT}`);
    assert.equal(api.status, 404);
    assert.deepEqual(referrersIndexes['e2e-valid-multiple-signatures']?.[SUBJECT]?.sort(), [SIG_VALID, SIG_TESTCERT11].sort());

    const e2e = KEY('e2e.crt');
    const newE2e = KEY('new_e2e.crt');
    const expired = KEY('expired_e2e.crt');
    const tp = (p: string, cert: string, key = 'ca.e2e.pem'): Record<string, string> => ({ 'trustpolicy.json': POLICY(p), [key]: cert });
    const testcert7 = file('testcert7.pem', envelopeLeafPem('e2e-with-timestamped-signature', '603ff134e97a79cd7a15560b76137c2c4a10451daab11327a7c6f86dac250fee'));
    const testcert7b = file('testcert7b.pem', envelopeLeafPem('e2e-with-invalid-timestamped-signature', '8d2e70ffc2af68b7f2df6f30dfefcb7bcda1db5f9ac2566fc8c6c2248c8d4c5f'));
    // strict, expiry logged (the timestamped signatures expired 2025-01-21), with a tsa store: the timestamp is enforced.
    const tsPolicy = file('ts-policy.json', policyDoc('strict', ['ca:e2e', 'tsa:e2e'], { override: { expiry: 'log' } }, 'e2e'));
    const globalsignTSA = E2E('config', 'timestamp', 'globalsignTSARoot.cer');
    const authFail = ['authenticity validation failed', "the signature's certificate chain does not contain any trusted certificate"];
    const expiredMsg = 'digital signature has expired on "Tue, 27 Jun 2023 05:21:21 +0000"';
    const certExpiredMsg = 'verification time is after certificate "O=Internet Widgits Pty Ltd,ST=Some-State,C=AU" validity period, it was expired at "Tue, 27 Jun 2023 06:10:00 +0000"';
    const valid = ['notation JWS signature (notary.x509)', `by "${E2E_DN}"`, `sha256:${E2E_FP}`, 'signed at 2023-06-27T05:30:33'];

    const cases: Case[] = [
      // e2e-valid-signature (verification_level.go, trust_store.go, trusted_identity.go)
      { name: 'valid-strict', layout: 'e2e-valid-signature', files: tp('trustpolicy.json', e2e), expect: { kind: 'verified', words: [...valid, "trust policy statement 'e2e' (level strict)"] } },
      { name: 'valid-permissive', layout: 'e2e-valid-signature', files: tp('permissive_trustpolicy.json', e2e), expect: { kind: 'verified', words: [...valid, '(level permissive)'] } },
      { name: 'valid-audit', layout: 'e2e-valid-signature', files: tp('audit_trustpolicy.json', e2e), expect: { kind: 'verified', words: [...valid, '(level audit)'] } },
      { name: 'valid-anyscope', layout: 'e2e-valid-signature', files: tp('any_registry_scope_trust_policy.json', e2e), expect: { kind: 'verified', words: valid } },
      { name: 'wrongstore-strict', layout: 'e2e-valid-signature', files: tp('trustpolicy.json', newE2e), expect: { kind: 'rejected', words: [...authFail, 'level strict'] } },
      { name: 'wrongstore-permissive', layout: 'e2e-valid-signature', files: tp('permissive_trustpolicy.json', newE2e), expect: { kind: 'rejected', words: [...authFail, 'level permissive'] } },
      { name: 'wrongstore-audit', layout: 'e2e-valid-signature', files: tp('audit_trustpolicy.json', newE2e), expect: { kind: 'audited', words: ['authenticity NOT established', ...authFail] } },
      { name: 'wrongstore-ovr-strict', layout: 'e2e-valid-signature', files: tp('override_strict_trustpolicy.json', newE2e), expect: { kind: 'audited', words: authFail } },
      { name: 'wrongstore-ovr-permissive', layout: 'e2e-valid-signature', files: tp('override_permissive_trustpolicy.json', newE2e), expect: { kind: 'audited', words: authFail } },
      { name: 'wrongstore-ovr-audit', layout: 'e2e-valid-signature', files: tp('override_audit_trustpolicy.json', newE2e), expect: { kind: 'rejected', words: authFail } },
      { name: 'identity-match', layout: 'e2e-valid-signature', files: tp('valid_trusted_identity_trustpolicy.json', e2e), expect: { kind: 'verified', words: valid } },
      { name: 'identity-mismatch', layout: 'e2e-valid-signature', files: tp('invalid_trusted_identity_trustpolicy.json', e2e), expect: { kind: 'rejected', words: ['signing certificate from the digital signature does not match the X.509 trusted identities'] } },
      { name: 'valid-skip', layout: 'e2e-valid-signature', files: { 'trustpolicy.json': POLICY('skip_trustpolicy.json') }, expect: { kind: 'skipped', words: ["skipped by trust policy statement 'e2e' (level \"skip\")"] } },
      // Flux compatibility: a key not named <type>.<store>.pem is trusted for every store, and the message says so.
      { name: 'unnamed-crt', layout: 'e2e-valid-signature', files: tp('trustpolicy.json', e2e, 'e2e.crt'), expect: { kind: 'verified', words: [...valid, "certificate from key 'e2e.crt', which is trusted for every trust store the policy names"] } },
      // e2e-expired-signature
      { name: 'expsig-strict', layout: 'e2e-expired-signature', files: tp('trustpolicy.json', e2e), expect: { kind: 'rejected', words: ['expiry validation failed', expiredMsg] } },
      { name: 'expsig-permissive', layout: 'e2e-expired-signature', files: tp('permissive_trustpolicy.json', e2e), expect: { kind: 'verified', words: ['(level permissive)'], warnings: ['expiry validation failed', expiredMsg] } },
      { name: 'expsig-audit', layout: 'e2e-expired-signature', files: tp('audit_trustpolicy.json', e2e), expect: { kind: 'verified', words: ['(level audit)'], warnings: [expiredMsg] } },
      { name: 'expsig-ovr-strict', layout: 'e2e-expired-signature', files: tp('override_strict_trustpolicy.json', e2e), expect: { kind: 'verified', warnings: [expiredMsg] } },
      { name: 'expsig-ovr-permissive', layout: 'e2e-expired-signature', files: tp('override_permissive_trustpolicy.json', e2e), expect: { kind: 'rejected', words: ['expiry validation failed'] } },
      { name: 'expsig-ovr-audit', layout: 'e2e-expired-signature', files: tp('override_audit_trustpolicy.json', e2e), expect: { kind: 'rejected', words: ['expiry validation failed'] } },
      // e2e-with-expired-cert (store = expired_e2e.crt)
      { name: 'expcert-strict', layout: 'e2e-with-expired-cert', files: tp('trustpolicy.json', expired), expect: { kind: 'rejected', words: ['authenticTimestamp validation failed', certExpiredMsg] } },
      { name: 'expcert-permissive', layout: 'e2e-with-expired-cert', files: tp('permissive_trustpolicy.json', expired), expect: { kind: 'verified', warnings: [certExpiredMsg] } },
      { name: 'expcert-audit', layout: 'e2e-with-expired-cert', files: tp('audit_trustpolicy.json', expired), expect: { kind: 'verified', warnings: [certExpiredMsg] } },
      { name: 'expcert-ovr-strict', layout: 'e2e-with-expired-cert', files: tp('override_strict_trustpolicy.json', expired), expect: { kind: 'verified', warnings: [certExpiredMsg] } },
      // e2e-invalid-signature: the "envelope" is a tar layer holding "invalid signature\n"
      ...(['trustpolicy.json', 'permissive_trustpolicy.json', 'audit_trustpolicy.json'] as const).map(
        (p, i): Case => ({
          name: `invalid-${['strict', 'permissive', 'audit'][i]}`,
          layout: 'e2e-invalid-signature',
          files: tp(p, e2e),
          expect: { kind: 'rejected', words: ['integrity validation failed', 'signature envelope format with media type "application/vnd.oci.image.layer.v1.tar" is not supported'] },
        }),
      ),
      { name: 'invalid-skip', layout: 'e2e-invalid-signature', files: { 'trustpolicy.json': POLICY('skip_trustpolicy.json') }, expect: { kind: 'skipped' } },
      // e2e-valid-multiple-signatures: both signatures discovered; the e2e one passes.
      { name: 'multi-strict', layout: 'e2e-valid-multiple-signatures', files: tp('trustpolicy.json', e2e), expect: { kind: 'verified', words: valid } },
      { name: 'multi-wrongstore', layout: 'e2e-valid-multiple-signatures', files: tp('trustpolicy.json', newE2e), expect: { kind: 'rejected', words: ['none of 2 signatures passed', `signature ${SIG_VALID}: authenticity validation failed`, `signature ${SIG_TESTCERT11}: authenticity validation failed`] } },
      // e2e: unsigned
      { name: 'unsigned-strict', layout: 'e2e', files: tp('trustpolicy.json', e2e), expect: { kind: 'rejected', words: [`no signature is associated with "${reg.host}/${repoOf('e2e')}@${SUBJECT}", make sure the artifact was signed successfully`] } },
      { name: 'unsigned-skip', layout: 'e2e', files: { 'trustpolicy.json': POLICY('skip_trustpolicy.json') }, expect: { kind: 'skipped' } },
      // Timestamped layouts (Microsoft TSA token; its root is not among the vectors): the signature and testcert7
      // expired on 2025-01-21, so permissive verifies with both logged; with a tsa store the timestamp is enforced.
      { name: 'ts-permissive', layout: 'e2e-with-timestamped-signature', subject: TS_SUBJECT, files: tp('permissive_trustpolicy.json', testcert7), expect: { kind: 'verified', words: ['by "CN=testcert7'], warnings: ['expiry validation failed', 'authenticTimestamp validation failed'] } },
      { name: 'ts-strict', layout: 'e2e-with-timestamped-signature', subject: TS_SUBJECT, files: tp('trustpolicy.json', testcert7), expect: { kind: 'rejected', words: ['expiry validation failed'] } },
      { name: 'ts-wrong-tsa', layout: 'e2e-with-timestamped-signature', subject: TS_SUBJECT, files: { 'trustpolicy.json': tsPolicy, 'ca.e2e.pem': testcert7, 'tsa.e2e.pem': globalsignTSA }, expect: { kind: 'rejected', words: ['authenticTimestamp validation failed', 'failed to verify the timestamp countersignature', 'certificate signed by unknown authority'] } },
      { name: 'ts-invalid-token', layout: 'e2e-with-invalid-timestamped-signature', subject: INVALID_TS_SUBJECT, files: { 'trustpolicy.json': tsPolicy, 'ca.e2e.pem': testcert7b, 'tsa.e2e.pem': globalsignTSA }, expect: { kind: 'rejected', words: ['authenticTimestamp validation failed', 'failed to parse timestamp countersignature'] } },
    ];
    const objs = await runCases(cases);

    // The skipped objects fetched no signatures; the audited and warned ones emitted Warning events.
    assert.equal(objs.get('valid-skip')!.status?.artifact?.digest, SUBJECT_LAYER);
    const audited = await waitEvent('wrongstore-audit', 'VerificationAudited');
    assert.equal(audited.type, 'Warning');
    assert.match(audited.message, /does not contain any trusted certificate/);
    const warned = await waitEvent('expsig-permissive', 'VerificationWarning');
    assert.equal(warned.type, 'Warning');
    assert.match(warned.message, new RegExp(`signature of revision v1@${SUBJECT} passed with logged failures: expiry validation failed`));
    // The unnamed key is also reported as a configuration note.
    assert.match(sv(objs.get('unnamed-crt')!)!.message, /\(certificates in key 'e2e.crt' are trusted for every trust store the policy names/);
  });

  test('Referrers API through the proxy: no tag fallback, paginated', async () => {
    const before = { api: proxy.referrersCalls(), tag: proxy.tagFallbackCalls() };
    const e2e = KEY('e2e.crt');
    await runCases(
      [
        { name: 'api-valid', layout: 'e2e-valid-signature', files: { 'trustpolicy.json': POLICY('trustpolicy.json'), 'ca.e2e.pem': e2e }, expect: { kind: 'verified', words: [`sha256:${E2E_FP}`] } },
        // pageSize 1: both signatures only come together through the Link header.
        { name: 'api-multi-wrong', layout: 'e2e-valid-multiple-signatures', files: { 'trustpolicy.json': POLICY('trustpolicy.json'), 'ca.e2e.pem': KEY('new_e2e.crt') }, expect: { kind: 'rejected', words: ['none of 2 signatures passed', SIG_VALID, SIG_TESTCERT11] } },
        { name: 'api-unsigned', layout: 'e2e', files: { 'trustpolicy.json': POLICY('trustpolicy.json'), 'ca.e2e.pem': e2e }, expect: { kind: 'rejected', words: ['no signature is associated with'] } },
      ],
      { host: proxy.host },
    );
    assert.ok(proxy.referrersCalls() - before.api >= 4, `referrers calls: ${proxy.referrersCalls() - before.api}`);
    assert.equal(proxy.tagFallbackCalls() - before.tag, 0);
  });

  test('COSE with an ECDSA chain: notary.x509 with an openssl ts timestamp, and signingAuthority', async () => {
    const root = await issue({ subject: 'CN=Acme Root,O=Acme,ST=WA,C=US', key: { kind: 'ec', curve: 'P-384' }, ca: true });
    const inter = await issue({ subject: 'CN=Acme Signing CA,O=Acme,ST=WA,C=US', issuer: root, ca: true, pathLength: 0 });
    const leaf = await issue({ subject: 'CN=signer,O=Acme,ST=WA,C=US', issuer: inter, eku: [EKU.codeSigning] });
    const saLeaf = await issue({ subject: 'CN=sa-signer,O=Acme,ST=WA,C=US', key: { kind: 'ec', curve: 'P-384' }, issuer: inter });
    const tsaRoot = await issue({ subject: 'CN=TSA Root,O=Acme,ST=WA,C=US', ca: true });
    const tsaLeaf = await issue({ subject: 'CN=Acme TSA,O=Acme,ST=WA,C=US', issuer: tsaRoot, eku: [EKU.timeStamping], ekuCritical: true });
    const otherRoot = await issue({ subject: 'CN=Other TSA Root,O=Acme,ST=WA,C=US', ca: true });
    const stamp = await opensslTSA(tsaLeaf, [tsaLeaf, tsaRoot]);

    const art = await pushTarGzArtifact(reg, 'cose/app', 'v1', { 'app.yaml': 'kind: ConfigMap\n' });
    const subject = { mediaType: OCI_MANIFEST, digest: art.manifestDigest, size: art.manifestBytes.length };
    await pushReferrer(reg, 'cose/app', subject, SIG_TYPE, await signCOSE({ target: subject, chain: [leaf, inter, root], alg: 'ES256', timestamp: stamp }), 'application/cose');
    const saArt = await pushTarGzArtifact(reg, 'cose/sa', 'v1', { 'sa.yaml': 'kind: Secret\n' });
    const saSubject = { mediaType: OCI_MANIFEST, digest: saArt.manifestDigest, size: saArt.manifestBytes.length };
    // signingAuthority ignores a timestamp token; one is attached anyway, as a real signer may do.
    await pushReferrer(reg, 'cose/sa', saSubject, SIG_TYPE, await signCOSE({ target: saSubject, chain: [saLeaf, inter, root], alg: 'ES384', scheme: 'notary.x509.signingAuthority', timestamp: stamp }), 'application/cose');

    const rootPem = file('acme-root.pem', pem(root));
    await createSecret('cose-ts', { 'trustpolicy.json': file('cose-ts.json', policyDoc('strict', ['ca:acme', 'tsa:acme'])), 'ca.acme.pem': rootPem, 'tsa.acme.pem': file('tsa-root.pem', pem(tsaRoot)) });
    await createSecret('cose-ts-wrong', { 'trustpolicy.json': file('cose-ts.json', policyDoc('strict', ['ca:acme', 'tsa:acme'])), 'ca.acme.pem': rootPem, 'tsa.acme.pem': file('other-root.pem', pem(otherRoot)) });
    await createSecret('cose-sa', { 'trustpolicy.json': file('cose-sa.json', policyDoc('strict', ['signingAuthority:acme'])), 'signingAuthority.acme.pem': rootPem });
    await notationRepo('cose-ts', 'cose/app', 'cose-ts', { layerMediaType: null });
    await notationRepo('cose-ts-wrong', 'cose/app', 'cose-ts-wrong', { layerMediaType: null });
    await notationRepo('cose-sa', 'cose/sa', 'cose-sa', { layerMediaType: null });
    const [ts, wrong, sa] = await Promise.all(['cose-ts', 'cose-ts-wrong', 'cose-sa'].map((n) => waitSettled(n)));
    await check('cose-ts', ts!, { kind: 'verified', words: ['notation COSE signature (notary.x509) by "CN=signer,O=Acme,ST=WA,C=US"', `sha256:${sha256(root.der).slice(7)} "CN=Acme Root,O=Acme,ST=WA,C=US"`, /timestamped at \d{4}-\d\d-\d\dT/] }, `v1@${art.manifestDigest}`);
    await check('cose-ts-wrong', wrong!, { kind: 'rejected', words: ['authenticTimestamp validation failed', 'certificate signed by unknown authority'] }, `v1@${art.manifestDigest}`);
    await check('cose-sa', sa!, { kind: 'verified', words: ['notation COSE signature (notary.x509.signingAuthority) by "CN=sa-signer,O=Acme,ST=WA,C=US"', 'authentic signing time'] }, `v1@${saArt.manifestDigest}`);
    assert.ok(!sv(sa!)!.message.includes('timestamped at'), sv(sa!)!.message);
  });

  test('OCSP revocation through the controller: revoked, responder down, responder hanging', async () => {
    const root = await issue({ subject: 'CN=OCSP Root,O=Acme,ST=WA,C=US', ca: true });
    // The responder URL must be in the certificates: reserve a port, issue, then start on it.
    const placeholder = await opensslOCSP(root, {});
    placeholder.stop();
    const url = placeholder.url;
    const downPlaceholder = await opensslOCSP(root, {});
    downPlaceholder.stop(); // nothing listens there any more: connection refused
    const sockets: net.Socket[] = [];
    const blackhole = net.createServer((s) => sockets.push(s)); // accepts, never answers
    await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r));
    stops.push(() => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      blackhole.close(() => r());
    }));
    const hangUrl = `http://127.0.0.1:${(blackhole.address() as net.AddressInfo).port}`;

    const good = await issue({ subject: 'CN=good,O=Acme,ST=WA,C=US', issuer: root, ocspUrl: url });
    const revoked = await issue({ subject: 'CN=revoked,O=Acme,ST=WA,C=US', issuer: root, ocspUrl: url });
    const down = await issue({ subject: 'CN=down,O=Acme,ST=WA,C=US', issuer: root, ocspUrl: downPlaceholder.url });
    const hang = await issue({ subject: 'CN=hang,O=Acme,ST=WA,C=US', issuer: root, ocspUrl: hangUrl });
    const responder: OCSPResponder = await opensslOCSP(root, { good: [good], revoked: [revoked] }, Number(new URL(url).port));
    stops.push(() => responder.stop());

    const digests: Record<string, string> = {};
    for (const [name, leaf] of Object.entries({ good, revoked, down, hang }) as [string, Issued][]) {
      const a = await pushTarGzArtifact(reg, `rev/${name}`, 'v1', { 'x.yaml': `name: ${name}\n` });
      const subject = { mediaType: OCI_MANIFEST, digest: a.manifestDigest, size: a.manifestBytes.length };
      await pushReferrer(reg, `rev/${name}`, subject, SIG_TYPE, await signJWS({ target: subject, chain: [leaf, root], alg: 'ES256' }), 'application/jose+json');
      digests[name] = a.manifestDigest;
    }
    const rootPem = file('ocsp-root.pem', pem(root));
    for (const level of ['strict', 'permissive']) {
      await createSecret(`ocsp-${level}`, { 'trustpolicy.json': file(`ocsp-${level}.json`, policyDoc(level, ['ca:acme'])), 'ca.acme.pem': rootPem });
    }
    const cases: [string, string, string, Expect][] = [
      ['rev-good', 'good', 'strict', { kind: 'verified', words: ['by "CN=good,O=Acme,ST=WA,C=US"'] }],
      ['rev-revoked', 'revoked', 'strict', { kind: 'rejected', words: ['revocation validation failed', 'certificate with subject "CN=revoked,O=Acme,ST=WA,C=US" is revoked'] }],
      ['rev-revoked-permissive', 'revoked', 'permissive', { kind: 'verified', warnings: ['is revoked'] }],
      ['rev-down', 'down', 'strict', { kind: 'rejected', words: ['revocation validation failed', '"CN=down,O=Acme,ST=WA,C=US" is unknown: revocation could not be checked'] }],
      ['rev-down-permissive', 'down', 'permissive', { kind: 'verified', warnings: ['revocation could not be checked'] }],
      ['rev-hang', 'hang', 'strict', { kind: 'rejected', words: ['"CN=hang,O=Acme,ST=WA,C=US" is unknown: revocation could not be checked'] }],
      ['rev-hang-permissive', 'hang', 'permissive', { kind: 'verified', warnings: ['revocation could not be checked'] }],
    ];
    for (const [name, repo, level] of cases) await notationRepo(name, `rev/${repo}`, `ocsp-${level}`, { layerMediaType: null });
    // A hanging responder must not hang the reconcile (2 s per-request revocation timeout): settled well within the wait.
    const objs = await Promise.all(cases.map(([name]) => waitSettled(name, 45_000)));
    for (const [i, [name, repo, , e]] of cases.entries()) await check(name, objs[i]!, e, `v1@${digests[repo]}`);
  });

  test('key rotation: the Secret changes, the object does not, SourceVerified follows', async () => {
    const good = { 'trustpolicy.json': POLICY('trustpolicy.json'), 'ca.e2e.pem': KEY('e2e.crt') };
    await createSecret('rotate', good);
    await notationRepo('rotate', repoOf('e2e-valid-signature'), 'rotate');
    const v = await waitSettled('rotate');
    await check('rotate', v, { kind: 'verified' }, `v1@${SUBJECT}`, 'awesome notation\n');
    const gen = v.metadata.generation;

    await updateSecret('rotate', { 'trustpolicy.json': POLICY('trustpolicy.json'), 'ca.e2e.pem': KEY('new_e2e.crt') });
    const rotated = await waitRepo(cluster, NS, 'rotate', (o) => sv(o)?.status === 'False', 'SourceVerified=False after the Secret changed');
    assert.equal(rotated.metadata.generation, gen, 'the OCIRepository was not touched');
    assert.equal(sv(rotated)!.reason, 'VerificationError');
    assert.match(sv(rotated)!.message, /authenticity validation failed.*does not contain any trusted certificate/);
    assert.equal(cond(rotated, 'Ready')?.status, 'False');
    // The last good artifact stays recorded and served.
    assert.equal(rotated.status?.artifact?.revision, `v1@${SUBJECT}`);
    await assertServed(rotated, 'awesome notation\n');

    await updateSecret('rotate', good);
    const back = await waitRepo(cluster, NS, 'rotate', (o) => sv(o)?.status === 'True' && cond(o, 'Ready')?.status === 'True', 'verified again after restore');
    assert.equal(back.metadata.generation, gen);
    await check('rotate', back, { kind: 'verified', words: [`sha256:${E2E_FP}`] }, `v1@${SUBJECT}`, 'awesome notation\n');
  });

  test('bad Secrets: each named in the message, the last good artifact served, the controller keeps running', async () => {
    const good = { 'trustpolicy.json': POLICY('trustpolicy.json'), 'ca.e2e.pem': KEY('e2e.crt') };
    await createSecret('badsec', good);
    await notationRepo('badsec', repoOf('e2e-valid-signature'), 'badsec');
    const first = await waitSettled('badsec');
    await check('badsec', first, { kind: 'verified' }, `v1@${SUBJECT}`, 'awesome notation\n');
    const stored = first.status!.artifact!;

    const bad: [string, Record<string, string> | null, RegExp][] = [
      ['missing trustpolicy.json', { 'ca.e2e.pem': KEY('e2e.crt') }, /'trustpolicy\.json' not found in secret 'default\/badsec'/],
      ['bad JSON', { 'trustpolicy.json': POLICY('invalid_format_trustpolicy.json'), 'ca.e2e.pem': KEY('e2e.crt') }, /secret default\/badsec: key 'trustpolicy\.json': malformed trust policy/],
      ['not a certificate', { 'trustpolicy.json': POLICY('trustpolicy.json'), 'ca.e2e.pem': POLICY('trustpolicy.json') }, /secret default\/badsec: key 'ca\.e2e\.pem': failed to read the trusted certificate/],
      ['no certificate at all', { 'trustpolicy.json': POLICY('trustpolicy.json') }, /secret default\/badsec: no certificates found in secret/],
      ['missing Secret', null, /verification secret 'default\/badsec' not found/],
    ];
    for (const [what, files, re] of bad) {
      if (files) await updateSecret('badsec', files, 'replace');
      else await cluster.kubectlOk(['delete', 'secret', 'badsec', '-n', NS]);
      const o = await waitRepo(cluster, NS, 'badsec', (x) => sv(x)?.status === 'False' && re.test(sv(x)!.message), `${what}: SourceVerified=False matching ${re}`);
      const c = sv(o)!;
      assert.equal(c.reason, 'VerificationError', what);
      assert.ok(c.message.startsWith("failed to verify the signature using provider 'notation': "), c.message);
      assert.equal(cond(o, 'Ready')?.status, 'False', what);
      assert.equal(cond(o, 'Ready')?.message, c.message, what);
      assert.deepEqual({ revision: o.status?.artifact?.revision, digest: o.status?.artifact?.digest }, { revision: stored.revision, digest: stored.digest }, what);
      await assertServed(o, 'awesome notation\n');
      const ready = await fetch(`http://127.0.0.1:${ctrl.metricsPort}/readyz`);
      assert.equal(ready.status, 200, `controller still up after: ${what}`);
    }
    // Creating the Secret again (an add event) re-verifies without touching the object.
    await createSecret('badsec', good);
    const back = await waitRepo(cluster, NS, 'badsec', (o) => sv(o)?.status === 'True' && cond(o, 'Ready')?.status === 'True', 'verified after the Secret came back');
    assert.equal(back.metadata.generation, first.metadata.generation);
    // Another object kept reconciling meanwhile: the controller is healthy.
    assert.equal(cond(await getRepo(cluster, NS, 'valid-strict'), 'Ready')?.status, 'True');
  });

  test('CLI verify: exit codes 0 / 1 / 2 with -o json', async () => {
    const secretDir = (name: string, files: Record<string, string>): string => {
      const d = path.join(dir, 'secret-dirs', name);
      mkdirSync(d, { recursive: true });
      for (const [k, p] of Object.entries(files)) writeFileSync(path.join(d, k), readFileSync(p));
      return d;
    };
    const good = secretDir('good', { 'trustpolicy.json': POLICY('trustpolicy.json'), 'ca.e2e.pem': KEY('e2e.crt') });
    const wrong = secretDir('wrong', { 'trustpolicy.json': POLICY('trustpolicy.json'), 'ca.e2e.pem': KEY('new_e2e.crt') });
    const skip = secretDir('skip', { 'trustpolicy.json': POLICY('skip_trustpolicy.json') });
    const noPolicy = secretDir('nopolicy', { 'ca.e2e.pem': KEY('e2e.crt') });
    const url = (layout: string, host = reg.host) => `oci://${host}/${repoOf(layout)}`;
    const cli = async (args: string[]): Promise<{ code: number; json: Record<string, unknown> }> => {
      const r = await run(process.execPath, [path.join(projectRoot, 'src/main.ts'), 'verify', ...args, '--provider', 'notation', '--insecure', '-o', 'json'], { timeoutMs: 60_000 });
      try {
        return { code: r.code, json: JSON.parse(r.stdout) as Record<string, unknown> };
      } catch {
        throw new Error(`verify ${args.join(' ')}: exit ${r.code}, stdout is not JSON:\n${r.stdout}\n${r.stderr}`);
      }
    };
    const [ok, viaApi, rejected, unsigned, skipped, usage, missingTag] = await Promise.all([
      cli([url('e2e-valid-signature'), '--secret-dir', good, '--digest', SUBJECT]),
      cli([url('e2e-valid-signature', proxy.host), '--secret-dir', good, '--digest', SUBJECT]),
      cli([url('e2e-valid-signature'), '--secret-dir', wrong, '--digest', SUBJECT]),
      cli([url('e2e'), '--secret-dir', good, '--digest', SUBJECT]),
      cli([url('e2e-invalid-signature'), '--secret-dir', skip, '--digest', SUBJECT]),
      cli([url('e2e-valid-signature'), '--secret-dir', noPolicy, '--digest', SUBJECT]),
      cli([url('e2e-valid-signature'), '--secret-dir', good, '--tag', 'nope']),
    ]);
    assert.equal(ok.code, 0, JSON.stringify(ok.json));
    assert.equal(ok.json.status, 'verified');
    assert.equal(ok.json.digest, SUBJECT);
    assert.equal(ok.json.revision, SUBJECT);
    assert.match(String(ok.json.message), new RegExp(`notation JWS signature \\(notary.x509\\) by "${esc(E2E_DN)}"`));
    assert.equal((ok.json.details as { signature: string }).signature, SIG_VALID);
    assert.equal(viaApi.code, 0, JSON.stringify(viaApi.json));
    assert.equal(rejected.code, 1, JSON.stringify(rejected.json));
    assert.equal(rejected.json.status, 'failed');
    assert.equal(rejected.json.code, 'authenticity');
    assert.match(String(rejected.json.message), /does not contain any trusted certificate/);
    assert.equal(unsigned.code, 1, JSON.stringify(unsigned.json));
    assert.equal(unsigned.json.code, 'no-signatures');
    assert.equal(skipped.code, 0, JSON.stringify(skipped.json));
    assert.equal(skipped.json.status, 'skipped');
    assert.equal(usage.code, 2, JSON.stringify(usage.json));
    assert.equal(usage.json.status, 'error');
    assert.equal(usage.json.code, 'no-policy');
    assert.match(String(usage.json.error), /'trustpolicy\.json' not found/);
    assert.equal(missingTag.code, 2, JSON.stringify(missingTag.json));
    assert.equal(missingTag.json.status, 'error');
  });
});
