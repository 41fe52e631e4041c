// Issue #7 item 2, measured: a valid Notation envelope whose unprotected timestampSignature header holds
// an `openssl ts` token carrying K certificates that share one subject and key. For each K the
// verification runs in a child process (so a stalled event loop can be timed out from outside) and the
// wall time, the outcome code and the worst event-loop delay inside the child are printed.
//
//   node bench/chain-stall.ts [K…]            default K = 8 9 12, limit BENCH_TIMEOUT_S (default 120 s)
//
// Run it from another checkout's root (the same file copied) to measure that tree's src/.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { issue, opensslTSA, pem, pushSignature, sameKeyCertificates, signJWS } from '../test/helpers/notation-sign.ts';
import { OCILayoutReader } from '../test/helpers/oci-layout.ts';

const POLICY = `{"version":"1.0","trustPolicies":[{"name":"ts","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:code", "tsa:acme"],"trustedIdentities":["*"]}]}`;

async function child(dir: string): Promise<void> {
  const { prepareNotation } = await import('../src/verify/notation/index.ts');
  const reader = new OCILayoutReader({ schemaVersion: 2, manifests: [] }, new Map());
  const config = reader.put('application/vnd.oci.image.config.v1+json', Buffer.from('{}'));
  const subject = reader.putManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [] });
  pushSignature(reader, subject, readFileSync(path.join(dir, `envelope-${subject.digest}`)), 'application/jose+json');
  const data = { 'trustpolicy.json': Buffer.from(POLICY), 'ca.code.pem': readFileSync(path.join(dir, 'ca.pem')), 'tsa.acme.pem': readFileSync(path.join(dir, 'tsa.pem')) };
  const p = prepareNotation({ provider: 'notation', secret: { name: 'bench/s', data } }, { fetch: async () => Promise.reject(new Error('offline')) });
  // Both option shapes, so the same file measures trees before and after VerifyOptions.limits.
  const verify = () => p.verify({ registry: reader, descriptor: subject }, { maxSignatures: 3, limits: { maxSignatures: 3 } } as never);
  // Warm up (module loading, JIT) on the same signature with the timestamp not required, so the
  // measured run is the chain search alone.
  if (!process.env.BENCH_COLD) {
    const warm = prepareNotation({ provider: 'notation', secret: { name: 'bench/w', data: { ...data, 'trustpolicy.json': Buffer.from(POLICY.replace(', "tsa:acme"', '')) } } }, { fetch: async () => Promise.reject(new Error('offline')) });
    await warm.verify({ registry: reader, descriptor: subject }, { maxSignatures: 3, limits: { maxSignatures: 3 } } as never);
  }
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  await new Promise((r) => setTimeout(r, 30)); // the histogram records only after its first tick
  const t = performance.now();
  const o = await verify();
  const ms = performance.now() - t;
  // A loop blocked until now is only recorded when the histogram's timer gets to run again.
  await new Promise((r) => setTimeout(r, 50));
  delay.disable();
  const code = o.status === 'failed' ? (o as { code: string }).code : o.status;
  process.stdout.write(JSON.stringify({ ms, code, maxDelayMs: delay.max / 1e6, message: o.message.slice(-160) }) + '\n');
}

async function prepare(k: number, dir: string): Promise<void> {
  const caRoot = await issue({ subject: 'CN=Code Root,O=Acme,ST=WA,C=US', ca: true });
  const tsaRoot = await issue({ subject: 'CN=TSA Root,O=Acme,ST=WA,C=US', ca: true });
  const loop = await sameKeyCertificates(k, 'CN=Loop CA,O=Loop,ST=WA,C=US');
  const tsaLeaf = await issue({ subject: 'CN=Loop TSA,O=Loop,ST=WA,C=US', issuer: loop[0]!, eku: ['1.3.6.1.5.5.7.3.8'], ekuCritical: true });
  const stamp = await opensslTSA(tsaLeaf, [tsaLeaf, ...loop]);
  const leaf = await issue({ subject: 'CN=signer,O=Acme,ST=WA,C=US', issuer: caRoot });
  const reader = new OCILayoutReader({ schemaVersion: 2, manifests: [] }, new Map());
  const config = reader.put('application/vnd.oci.image.config.v1+json', Buffer.from('{}'));
  const subject = reader.putManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [] });
  writeFileSync(path.join(dir, `envelope-${subject.digest}`), await signJWS({ target: subject, chain: [leaf, caRoot], alg: 'ES256', timestamp: stamp }));
  writeFileSync(path.join(dir, 'ca.pem'), pem(caRoot));
  writeFileSync(path.join(dir, 'tsa.pem'), pem(tsaRoot));
}

function run(dir: string, timeoutS: number): Promise<string> {
  return new Promise((resolve) => {
    const started = performance.now();
    const p = spawn(process.execPath, [...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []), import.meta.filename, '--child', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutS * 1000);
    p.on('exit', () => {
      clearTimeout(timer);
      if (!out) return resolve(`did not finish within ${timeoutS} s (killed; ${((performance.now() - started) / 1000).toFixed(0)} s)`);
      const r = JSON.parse(out) as { ms: number; code: string; maxDelayMs: number; message: string };
      resolve(`${r.ms.toFixed(0)} ms, outcome ${r.code}, worst event-loop delay ${r.maxDelayMs.toFixed(0)} ms: …${r.message}`);
    });
  });
}

if (process.argv[2] === '--child') {
  await child(process.argv[3]!);
} else {
  const ks = process.argv.slice(2).map(Number);
  const timeoutS = Number(process.env.BENCH_TIMEOUT_S ?? 120);
  for (const k of ks.length ? ks : [8, 9, 12]) {
    const dir = mkdtempSync(path.join(tmpdir(), `osc-chain-${k}-`));
    try {
      await prepare(k, dir);
      process.stdout.write(`K=${k}: ${await run(dir, timeoutS)}\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
