// The physical floor of the steady state: a bare Node loop doing what a steady-state reconcile
// must do and nothing else — one manifest HEAD per object per interval, spread evenly.
// bench/scale.ts runs it as its own process (transpiled to plain JS first, as the controller runs
// compiled) and reads its CPU and RSS. Two clients:
//   undici     the controller's client with its pool settings. undici closes the connection after
//              every HEAD (undici#258, servers that send a body anyway), so each HEAD connects anew;
//   undici-keepalive  the same with undici's `reset: false` request option, which overrides that
//              close: what the controller's HEAD would cost over kept-alive connections;
//   node-http  node:http with a keep-alive agent: HEADs over one kept-alive connection.
//   undici-aligned  undici-keepalive with the controller's requeue alignment: the HEADs due within
//              the same second run together, four at a time (the controller's default workers).
//   node floor.mjs <client> <registry base URL> <repository prefix> <N> <interval ms> <tag>
import http from 'node:http';
import { Agent, request } from 'undici';

const [client = 'undici', base, prefix, n, intervalMs, tag] = process.argv.slice(2);
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
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
let done = 0;
let failed = 0;

function headNodeHttp(url: string): Promise<{ status: number; digest: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'HEAD', headers: { accept }, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, digest: res.headers['docker-content-digest'] }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function head(i: number): Promise<void> {
  const url = `${base}/v2/${prefix}${i}/manifests/${tag}`;
  try {
    let r: { status: number; digest: unknown };
    if (client.startsWith('undici')) {
      const res = await request(url, { method: 'HEAD', headers: { accept }, dispatcher, ...(client !== 'undici' ? { reset: false } : {}) });
      await res.body.dump();
      r = { status: res.statusCode, digest: res.headers['docker-content-digest'] };
    } else r = await headNodeHttp(url);
    if (r.status !== 200 || !r.digest) failed++;
    done++;
  } catch {
    failed++;
  }
}

const AlignMs = 1000;
if (client === 'undici-aligned') {
  const slots = new Map<number, number[]>();
  for (let i = 0; i < N; i++) {
    const at = Math.ceil((i * interval) / N / AlignMs) * AlignMs;
    const keys = slots.get(at);
    if (keys) keys.push(i);
    else slots.set(at, [i]);
  }
  const run = async (keys: number[]) => {
    let next = 0;
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (next < keys.length) await head(keys[next++]!);
    }));
  };
  for (const [at, keys] of slots) {
    setTimeout(() => {
      void run(keys);
      setInterval(() => void run(keys), interval);
    }, at);
  }
} else {
  for (let i = 0; i < N; i++) {
    setTimeout(() => {
      void head(i);
      setInterval(() => void head(i), interval);
    }, (i * interval) / N);
  }
}
// Runs until told to stop (with N = 0 it measures an idle process with undici loaded).
setInterval(() => undefined, 1 << 30);
process.on('SIGTERM', () => {
  process.stdout.write(JSON.stringify({ done, failed }) + '\n');
  process.exit(0);
});
