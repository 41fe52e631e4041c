// The physical floor of the steady state: a bare Node loop doing what a steady-state reconcile
// must do and nothing else — one manifest HEAD per object per interval, spread evenly, with the
// controller's HTTP client (undici, keep-alive pool). bench/scale.ts runs it as its own process
// (type-stripped to plain JS first, as the controller runs compiled) and reads its CPU and RSS.
//   node floor.mjs <registry base URL> <repository prefix> <N> <interval ms> <tag>
import { Agent, request } from 'undici';

const [base, prefix, n, intervalMs, tag] = process.argv.slice(2);
const N = Number(n);
const interval = Number(intervalMs);
const accept = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');
// The same pool settings as src/oci/client.ts.
const dispatcher = new Agent({ connections: 16, keepAliveTimeout: 30_000 });
let done = 0;
let failed = 0;

async function head(i: number): Promise<void> {
  try {
    const res = await request(`${base}/v2/${prefix}${i}/manifests/${tag}`, { method: 'HEAD', headers: { accept }, dispatcher });
    await res.body.dump();
    if (res.statusCode !== 200 || !res.headers['docker-content-digest']) failed++;
    done++;
  } catch {
    failed++;
  }
}

for (let i = 0; i < N; i++) {
  setTimeout(() => {
    void head(i);
    setInterval(() => void head(i), interval);
  }, (i * interval) / N);
}
// Runs until told to stop (with N = 0 it measures an idle process with undici loaded).
setInterval(() => undefined, 1 << 30);
process.on('SIGTERM', () => {
  process.stdout.write(JSON.stringify({ done, failed }) + '\n');
  process.exit(0);
});
