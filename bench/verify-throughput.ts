// Verification throughput per core, verification cache off (make bench): Notation ES256 JWS with
// a 2-certificate chain (leaf ← root, the root in the trust store) and cosign ECDSA P-256 `.sig`,
// through the providers' prepare/verify interface the controller uses, against an in-memory
// registry. The peer is the raw signature check: `openssl speed ecdsap256` verify/s (one core),
// and node:crypto's own verify for the same curve. A Notation verification needs two raw checks
// (the envelope and the leaf certificate), a cosign `.sig` one.
//   node bench/verify-throughput.ts [--seconds 3] [--targets 64] [--profile: where each case's time goes]
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { RegistryReader } from '../src/oci/reader.ts';
import type { Descriptor } from '../src/oci/types.ts';
import { createProviders } from '../src/verify/providers.ts';
import type { PreparedVerifier, VerifyConfig } from '../src/verify/types.ts';
import { MemoryRegistry, pushSigManifest } from '../test/helpers/cosign-registry.ts';
import { generateKey, signLegacy } from '../test/helpers/cosign-sign.ts';
import { issue, pem, signJWS } from '../test/helpers/notation-sign.ts';
import { printProfile, summariseProfile } from './lib/cpuprofile.ts';
import { loadAverage, machine } from './lib/proc-stats.ts';

const { values: flags } = parseArgs({ options: { seconds: { type: 'string', default: process.env.SECONDS_PER_CASE || '3' }, targets: { type: 'string', default: '64' }, profile: { type: 'boolean', default: false } } });
const seconds = Number(flags.seconds);
// Distinct artifacts and signatures, cycled, so nothing a verifier might memoise per signature helps.
const targets = Number(flags.targets);

interface Case {
  registry: RegistryReader;
  descriptor: Descriptor;
}

/** Verifications per CPU-second (process CPU: main thread plus any worker threads it uses). */
async function rate(label: string, fn: (i: number) => Promise<void>): Promise<number> {
  for (let i = 0; i < targets; i++) await fn(i); // warm-up: every case once
  const session = flags.profile ? new Session() : undefined;
  if (session) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < seconds * 1000) {
    for (let j = 0; j < 16; j++) await fn(n++ % targets);
  }
  const cpu = process.cpuUsage(c0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  const wallS = (performance.now() - t0) / 1000;
  const r = n / cpuS;
  console.log(`  ${label.padEnd(58)} ${r.toFixed(0).padStart(8)} /s per core  (${n} in ${wallS.toFixed(1)} s wall, ${cpuS.toFixed(1)} s CPU)`);
  if (session) {
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    const file = path.join(os.tmpdir(), `osc-verify-${process.pid}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    try {
      printProfile(summariseProfile(file, undefined, 12), { count: n, unit: 'verification' });
    } finally {
      rmSync(file, { force: true });
    }
  }
  return r;
}

function opensslVerifyRate(): number {
  const out = execFileSync('openssl', ['speed', '-seconds', String(seconds), 'ecdsap256'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  const m = /256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)/.exec(out);
  if (!m) throw new Error(`cannot parse openssl speed output:\n${out}`);
  return Number(m[2]);
}

async function notationCases(): Promise<{ config: VerifyConfig; cases: Case[] }> {
  const root = await issue({ subject: 'CN=Bench Root,O=Bench,ST=WA,C=US', ca: true });
  const leaf = await issue({ subject: 'CN=signer,O=Bench,ST=WA,C=US', issuer: root, eku: ['1.3.6.1.5.5.7.3.3'] });
  const policy = {
    version: '1.0',
    trustPolicies: [{ name: 'bench', registryScopes: ['*'], signatureVerification: { level: 'strict' }, trustStores: ['ca:bench'], trustedIdentities: ['x509.subject:CN=signer,O=Bench,ST=WA,C=US'] }],
  };
  const config: VerifyConfig = { provider: 'notation', secret: { name: 'bench/notation', data: { 'trustpolicy.json': Buffer.from(JSON.stringify(policy)), 'ca.bench.pem': pem(root) } } };
  const cases: Case[] = [];
  // The same in-memory registry as the cosign case (referrers from an index of manifests), so the
  // two rates carry the same registry stand-in cost.
  for (let i = 0; i < targets; i++) {
    const reg = new MemoryRegistry('registry.bench', `app-${i}`);
    const config = reg.putBlob(Buffer.from('{}'), 'application/vnd.oci.image.config.v1+json');
    const layer = reg.putBlob(Buffer.from(`content ${i}`), 'application/vnd.oci.image.layer.v1.tar');
    const descriptor = reg.putJSONManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [layer] }, 'v1');
    const envelope = reg.putBlob(await signJWS({ target: descriptor, chain: [leaf, root], alg: 'ES256' }), 'application/jose+json');
    reg.putJSONManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: reg.putBlob(Buffer.from('{}'), 'application/vnd.cncf.notary.signature'), layers: [envelope], subject: descriptor });
    cases.push({ registry: reg, descriptor });
  }
  return { config, cases };
}

function cosignCases(): { config: VerifyConfig; cases: Case[] } {
  const key = generateKey('p256');
  const config: VerifyConfig = { provider: 'cosign', secret: { name: 'bench/cosign', data: { 'cosign.pub': Buffer.from(key.pubPem) } } };
  const cases: Case[] = [];
  for (let i = 0; i < targets; i++) {
    const reg = new MemoryRegistry('registry.bench', `app-${i}`);
    const cfg = reg.putBlob(Buffer.from(`{"i":${i}}`), 'application/vnd.oci.image.config.v1+json');
    const descriptor = reg.putJSONManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: cfg, layers: [] }, 'v1');
    pushSigManifest(reg, descriptor.digest, [signLegacy(key, descriptor.digest)]);
    cases.push({ registry: reg, descriptor });
  }
  return { config, cases };
}

async function main(): Promise<void> {
  console.log(`bench/verify-throughput: ${seconds} s per case, ${targets} distinct signed artifacts cycled, verification cache off`);
  console.log(`machine: ${machine()}\n`);
  const raw = opensslVerifyRate();
  console.log(`  ${'openssl speed ecdsap256 (raw ECDSA P-256 verify)'.padEnd(58)} ${raw.toFixed(0).padStart(8)} /s per core`);
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const msgs = Array.from({ length: targets }, (_, i) => Buffer.from(`message ${i}`));
  const sigs = msgs.map((m) => sign('sha256', m, privateKey));
  const nodeRaw = await rate('node:crypto verify, ECDSA P-256 + SHA-256', async (i) => {
    if (!verify('sha256', msgs[i]!, publicKey, sigs[i]!)) throw new Error('raw verify failed');
  });

  const results: [string, number, number][] = [];
  for (const [name, setup, rawChecks] of [
    ['Notation JWS ES256, leaf <- root chain', notationCases, 2],
    ['cosign .sig ECDSA P-256 key', cosignCases, 1],
  ] as const) {
    const { config, cases } = await setup();
    const provider = createProviders()[config.provider];
    const prepared: PreparedVerifier = await provider.prepare(config);
    const check = (o: { status: string; message: string }) => {
      if (o.status !== 'verified') throw new Error(`${name}: ${o.message}`);
    };
    const v = await rate(`${name}: verify`, async (i) => check(await prepared.verify({ registry: cases[i]!.registry, descriptor: cases[i]!.descriptor }, { limits: { maxSignatures: 10 } })));
    // What a reconcile does today: prepare (parse the Secret's trust material) and verify.
    await rate(`${name}: prepare + verify`, async (i) => check(await (await provider.prepare(config)).verify({ registry: cases[i]!.registry, descriptor: cases[i]!.descriptor }, { limits: { maxSignatures: 10 } })));
    results.push([name, v, rawChecks]);
  }
  console.log(`\nRatios (load average now ${loadAverage()}; higher is worse):`);
  for (const [name, v, rawChecks] of results) {
    const goal = name.startsWith('Notation') ? `; goal: <= 4x, i.e. >= ${(raw / 4).toFixed(0)}/s here` : '';
    console.log(`  ${name}: ${(raw / v).toFixed(1)}x the time of one raw openssl verify (${rawChecks} raw verif${rawChecks > 1 ? 'ies' : 'y'} needed${goal})`);
  }
  console.log(`  node:crypto verify: ${(raw / nodeRaw).toFixed(1)}x the time of openssl's`);
}

await main();
