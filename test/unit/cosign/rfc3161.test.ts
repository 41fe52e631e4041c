// RFC 3161 timestamps on legacy `.sig` signatures (`dev.sigstore.cosign/rfc3161timestamp`), with a
// real TSA made here with `openssl ts`. The annotation is what cosign writes
// (`pkg/cosign/bundle/tsa.go` TimestampToRFC3161Timestamp): JSON {"SignedRFC3161Timestamp":
// "<base64 DER TimeStampResp>"}, the message imprint being SHA-256 over the raw signature bytes
// (`pkg/cosign/verify.go` VerifyRFC3161Timestamp). Keyless signatures without a Rekor bundle
// take their signing time from the timestamp; the TSA must be in the trusted root's
// `timestampAuthorities`. A timestamp never stands in for the Rekor entry when the trusted root lists a
// transparency log (cosign requires the log unless --insecure-ignore-tlog), so these tests use a
// TSA-only trusted root unless they say otherwise.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { makeTempDir, runOk } from '../../harness/proc.ts';
import { MemoryRegistry, pushBundleReferrer, pushSigManifest } from '../../helpers/cosign-registry.ts';
import { cosignPayload, dsseBundle, inTotoStatement, legacyLayer, pae, signBytes } from '../../helpers/cosign-sign.ts';
import { TestSigstore, type Leaf } from '../../helpers/cosign-sigstore.ts';
import { codes, prepareKeyless, run } from '../../helpers/cosign-verify.ts';
import type { Descriptor } from '../../../src/oci/types.ts';

const ID = { issuer: '^https://issuer\\.test$', subject: '^dev@example\\.com$' };
const OPENSSL = 'openssl';

interface TSA {
  dir: string;
  rootPem: string;
  leafPem: string;
  config: string;
}

/**
 * A TSA: an ECDSA P-256 root and a leaf signed by it, then an `openssl ts` config. `eku` is the
 * leaf's extendedKeyUsage line (RFC 3161 §2.3: critical, timeStamping only).
 */
async function makeTSA(name: string, opts: { rootCN?: string; leafCN?: string; serial?: string; eku?: string } = {}): Promise<TSA> {
  const dir = makeTempDir(`osc-tsa-${name}-`);
  const f = (n: string) => path.join(dir, n);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await runOk(OPENSSL, ['req', '-x509', ...ec, '-keyout', f('root.key'), '-out', f('root.crt'), '-days', '3650', '-subj', `/O=tsa.test/CN=${opts.rootCN ?? `${name} TSA root`}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await runOk(OPENSSL, ['req', '-new', ...ec, '-keyout', f('tsa.key'), '-out', f('tsa.csr'), '-subj', `/O=tsa.test/CN=${opts.leafCN ?? `${name} TSA`}`]);
  writeFileSync(f('ext.cnf'), [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    `extendedKeyUsage=${opts.eku ?? 'critical,timeStamping'}`,
    'subjectKeyIdentifier=hash',
    'authorityKeyIdentifier=keyid',
    '',
  ].join('\n'));
  await runOk(OPENSSL, ['x509', '-req', '-in', f('tsa.csr'), '-CA', f('root.crt'), '-CAkey', f('root.key'), '-set_serial', opts.serial ?? '0x7a11', '-days', '365', '-extfile', f('ext.cnf'), '-out', f('tsa.crt')]);
  writeFileSync(f('serial'), '01\n');
  const config = f('tsa.cnf');
  writeFileSync(config, [
    '[ tsa ]',
    'default_tsa = tsa_config',
    '[ tsa_config ]',
    `dir = ${dir}`,
    'serial = $dir/serial',
    'crypto_device = builtin',
    'signer_cert = $dir/tsa.crt',
    'certs = $dir/root.crt',
    'signer_key = $dir/tsa.key',
    'signer_digest = sha256',
    'default_policy = 1.3.6.1.4.1.57264.99.1',
    'digests = sha256, sha384, sha512',
    'accuracy = secs:1',
    'ordering = yes',
    'tsa_name = yes',
    'ess_cert_id_chain = no',
    'ess_cert_id_alg = sha256',
    '',
  ].join('\n'));
  return { dir, rootPem: readFileSync(f('root.crt'), 'utf8'), leafPem: readFileSync(f('tsa.crt'), 'utf8'), config };
}

/**
 * The same TSA key, issuer and serial with other extensions: `openssl ts` refuses to sign with a
 * certificate lacking the timeStamping purpose, so tokens come from the real TSA and only the
 * trusted root lists this certificate (the verifier picks it by issuer and serial).
 */
async function reissue(tsa: TSA, eku: string | null): Promise<TSA> {
  const f = (n: string) => path.join(tsa.dir, n);
  const tag = (eku ?? 'none').replace(/\W/g, '_');
  const ext = f(`ext-${tag}.cnf`);
  writeFileSync(ext, readFileSync(f('ext.cnf'), 'utf8').replace(/^extendedKeyUsage=.*$/m, eku === null ? '' : `extendedKeyUsage=${eku}`));
  const out = f(`tsa-${tag}.crt`);
  await runOk(OPENSSL, ['x509', '-req', '-in', f('tsa.csr'), '-CA', f('root.crt'), '-CAkey', f('root.key'), '-set_serial', '0x7a11', '-days', '365', '-extfile', ext, '-out', out]);
  return { ...tsa, leafPem: readFileSync(out, 'utf8') };
}

/** `openssl ts -query` over `data` then `openssl ts -reply`: the DER TimeStampResp and its genTime. */
async function timestamp(tsa: TSA, data: Buffer): Promise<{ der: Buffer; genTime: Date }> {
  const f = (n: string) => path.join(tsa.dir, n);
  writeFileSync(f('data.bin'), data);
  await runOk(OPENSSL, ['ts', '-query', '-data', f('data.bin'), '-sha256', '-cert', '-out', f('req.tsq')]);
  await runOk(OPENSSL, ['ts', '-reply', '-config', tsa.config, '-queryfile', f('req.tsq'), '-out', f('resp.tsr')]);
  const text = await runOk(OPENSSL, ['ts', '-reply', '-in', f('resp.tsr'), '-text']);
  const m = /Time stamp: (.+ GMT)/.exec(text);
  assert.ok(m, text);
  assert.match(text, /Status: Granted/);
  return { der: readFileSync(f('resp.tsr')), genTime: new Date(m[1]!) };
}

const TSA_ONLY = { tlogs: false };
const annotationOf = (der: Buffer): string => JSON.stringify({ SignedRFC3161Timestamp: der.toString('base64') });

function derOf(pem: string): string {
  return new X509Certificate(pem).raw.toString('base64');
}

/** The private Sigstore's trusted root plus `tsas` as timestampAuthorities. */
function rootWith(s: TestSigstore, tsas: TSA[], opts: { tlogs?: boolean } = {}): string {
  const root = JSON.parse(s.trustedRoot({ tlogs: opts.tlogs })) as Record<string, unknown>;
  root.timestampAuthorities = tsas.map((t, i) => ({
    subject: { organization: 'tsa.test', commonName: `tsa-${i}` },
    uri: `https://tsa-${i}.tsa.test`,
    certChain: { certificates: [{ rawBytes: derOf(t.leafPem) }, { rawBytes: derOf(t.rootPem) }] },
    validFor: { start: '2020-01-01T00:00:00Z' },
  }));
  return JSON.stringify(root);
}

function image(): { reg: MemoryRegistry; target: Descriptor } {
  const reg = new MemoryRegistry();
  const cfg = reg.putBlob(Buffer.from('{}'), 'application/vnd.oci.image.config.v1+json');
  return { reg, target: reg.putJSONManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: cfg, layers: [] }) };
}

describe('RFC 3161 timestamps on legacy .sig (openssl ts TSA)', () => {
  let s: TestSigstore;
  let tsa: TSA;
  let impostor: TSA;
  let noEku: TSA;
  let serverAuth: TSA;
  let noEkuAtAll: TSA;
  let nonCriticalEku: TSA;
  let leaf: Leaf;

  before(async () => {
    s = await TestSigstore.create('tsa');
    [tsa, impostor] = await Promise.all([
      makeTSA('good'),
      // Same root and leaf names and serial as `good`, other keys: only the signature tells them apart.
      makeTSA('impostor', { rootCN: 'good TSA root', leafCN: 'good TSA' }),
    ]);
    [noEku, serverAuth, noEkuAtAll, nonCriticalEku] = await Promise.all([
      reissue(tsa, 'critical,codeSigning'),
      reissue(tsa, 'serverAuth,timeStamping'),
      reissue(tsa, null),
      reissue(tsa, 'timeStamping'),
    ]);
    // A Fulcio-like 10-minute certificate valid now, since `openssl ts` stamps the current time.
    leaf = await s.issueLeaf({ email: 'dev@example.com', issuer: 'https://issuer.test', notBefore: new Date(Date.now() - 60_000) });
  });

  /** A keyless `.sig` layer with only the RFC 3161 annotation as signing-time evidence (no Rekor bundle). */
  async function outcome(o: { tsaFor?: TSA; root?: string; stampData?: (sig: Buffer, payload: Buffer) => Buffer; tamper?: (der: Buffer) => Buffer; leaf?: Leaf } = {}) {
    const { reg, target } = image();
    const signer = o.leaf ?? leaf;
    const payload = cosignPayload(target.digest);
    const sig = signBytes(signer.privateKey, payload);
    const ts = await timestamp(o.tsaFor ?? tsa, o.stampData ? o.stampData(sig, payload) : sig);
    const der = o.tamper ? o.tamper(Buffer.from(ts.der)) : ts.der;
    pushSigManifest(reg, target.digest, [legacyLayer(payload, sig, {
      'dev.sigstore.cosign/certificate': signer.pem,
      'dev.sigstore.cosign/chain': s.chainPem,
      'dev.sigstore.cosign/rfc3161timestamp': annotationOf(der),
    })]);
    const v = await prepareKeyless([ID], o.root ?? rootWith(s, [tsa], TSA_ONLY));
    return { o: await run(v, reg, target), genTime: ts.genTime };
  }

  test('PASS: the timestamp proves the signing time; the certificate is checked at that time', async () => {
    const { o, genTime } = await outcome();
    assert.equal(o.status, 'verified', JSON.stringify(o));
    assert.equal(o.details.signingTime, genTime.toISOString());
    assert.equal(o.details.rekor, undefined);
    assert.match(o.message, /dev@example\.com/);
  });

  // Issue #7 item 5: the legacy path accepted this; cosign and our bundle path require the log.
  test('FAIL: a valid timestamp and no Rekor entry when the trusted root lists a transparency log → tlog-missing', async () => {
    const { o } = await outcome({ root: rootWith(s, [tsa]) });
    assert.equal(o.status, 'failed', JSON.stringify(o));
    assert.deepEqual(codes(o), ['tlog-missing']);
  });

  test('FAIL: tampered token (genTime changed after signing)', async () => {
    const { o } = await outcome({
      tamper: (der) => {
        // GeneralizedTime "YYYYMMDDHHMMSSZ" inside TSTInfo: change the year's last digit.
        const i = der.indexOf(Buffer.from([0x18, 0x0f]));
        assert.ok(i > 0, 'GeneralizedTime found');
        const y = i + 2 + 3;
        der[y] = der[y] === 0x39 ? 0x30 : der[y]! + 1;
        return der;
      },
    });
    assert.equal(o.status, 'failed');
    assert.deepEqual(codes(o), ['timestamp-invalid']);
  });

  test('FAIL: tampered token (signature byte flipped)', async () => {
    const { o } = await outcome({ tamper: (der) => { der[der.length - 3]! ^= 0x01; return der; } });
    assert.equal(o.status, 'failed');
    assert.deepEqual(codes(o), ['timestamp-invalid']);
  });

  test('FAIL: token from another TSA (same names and serial, different keys)', async () => {
    const { o } = await outcome({ tsaFor: impostor });
    assert.equal(o.status, 'failed');
    assert.deepEqual(codes(o), ['timestamp-invalid']);
    assert.match(o.attempts[0]!.failure!.message, /RFC 3161 timestamp does not verify/);
  });

  test('FAIL: token over the payload instead of the signature bytes', async () => {
    const { o } = await outcome({ stampData: (_sig, payload) => payload });
    assert.equal(o.status, 'failed');
    assert.deepEqual(codes(o), ['timestamp-invalid']);
  });

  test('FAIL: the TSA is not in the trusted root (and there is no Rekor bundle)', async () => {
    const noTsa = await outcome({ root: s.trustedRoot() });
    assert.deepEqual(codes(noTsa.o), ['tlog-missing']);
    const other = await outcome({ root: rootWith(s, [impostor], TSA_ONLY) });
    assert.deepEqual(codes(other.o), ['timestamp-invalid']);
  });

  test('TSA certificate extended key usage: exactly one, timeStamping (as sigstore/timestamp-authority)', async () => {
    const eku = await outcome({ root: rootWith(s, [noEku], TSA_ONLY) });
    assert.deepEqual(codes(eku.o), ['timestamp-invalid']);
    assert.match(eku.o.attempts[0]!.failure!.message, /TSA certificate 'O=tsa\.test, CN=good TSA' has extended key usages \[1\.3\.6\.1\.5\.5\.7\.3\.3\]; exactly one, timeStamping/);
    const mixed = await outcome({ root: rootWith(s, [serverAuth], TSA_ONLY) });
    assert.deepEqual(codes(mixed.o), ['timestamp-invalid']);
    const none = await outcome({ root: rootWith(s, [noEkuAtAll], TSA_ONLY) });
    assert.deepEqual(codes(none.o), ['timestamp-invalid']);
    assert.match(none.o.attempts[0]!.failure!.message, /has no extended key usage/);
    // Not critical is accepted: public-good TSA certificates (sigstore-go public-good.json) are so.
    const nonCritical = await outcome({ root: rootWith(s, [nonCriticalEku], TSA_ONLY) });
    assert.equal(nonCritical.o.status, 'verified', JSON.stringify(nonCritical.o));
  });

  test('FAIL: the certificate had expired at the timestamped time', async () => {
    const old = await s.issueLeaf({ email: 'dev@example.com', issuer: 'https://issuer.test', notBefore: new Date('2025-03-01T12:00:00Z') });
    const { o } = await outcome({ leaf: old });
    assert.equal(o.status, 'failed');
    assert.match(codes(o)[0]!, /certificate-time-invalid|chain-invalid/);
  });

  test('malformed annotation: not JSON, no SignedRFC3161Timestamp, not DER', async () => {
    for (const [ann, re] of [['not json', /not valid JSON/], ['{"Other":"x"}', /lacks SignedRFC3161Timestamp/], [JSON.stringify({ SignedRFC3161Timestamp: Buffer.from('garbage').toString('base64') }), /does not parse/]] as const) {
      const { reg, target } = image();
      const payload = cosignPayload(target.digest);
      const sig = signBytes(leaf.privateKey, payload);
      pushSigManifest(reg, target.digest, [legacyLayer(payload, sig, {
        'dev.sigstore.cosign/certificate': leaf.pem,
        'dev.sigstore.cosign/chain': s.chainPem,
        'dev.sigstore.cosign/rfc3161timestamp': ann,
      })]);
      const o = await run(await prepareKeyless([ID], rootWith(s, [tsa], TSA_ONLY)), reg, target);
      assert.deepEqual(codes(o), ['malformed'], ann);
      assert.match(o.attempts[0]!.failure!.message, re);
    }
  });

  test('v0.3 bundle: keyless DSSE with an RFC 3161 timestamp and no tlog; the same TSA rules apply', async () => {
    const bundleOutcome = async (root: string, tamper = false) => {
      const { reg, target } = image();
      const statement = inTotoStatement(target.digest);
      const sig = signBytes(leaf.privateKey, pae(statement));
      const ts = await timestamp(tsa, sig);
      const der = Buffer.from(ts.der);
      if (tamper) der[der.length - 3]! ^= 0x01;
      const b = JSON.parse(dsseBundle({ statement, signature: sig, certDer: leaf.der }).toString()) as { verificationMaterial: Record<string, unknown> };
      b.verificationMaterial.timestampVerificationData = { rfc3161Timestamps: [{ signedTimestamp: der.toString('base64') }] };
      pushBundleReferrer(reg, target, Buffer.from(JSON.stringify(b)));
      return run(await prepareKeyless([ID], root), reg, target);
    };
    const ok = await bundleOutcome(rootWith(s, [tsa], { tlogs: false }));
    assert.equal(ok.status, 'verified', JSON.stringify(ok));
    assert.equal(ok.details.format, 'bundle');
    assert.deepEqual(codes(await bundleOutcome(rootWith(s, [tsa], { tlogs: false }), true)), ['timestamp-invalid']);
    assert.deepEqual(codes(await bundleOutcome(rootWith(s, [noEku], { tlogs: false }))), ['timestamp-invalid']);
    assert.deepEqual(codes(await bundleOutcome(rootWith(s, [impostor], { tlogs: false }))), ['timestamp-invalid']);
  });
});
