// Benchmarks against real peers, in one run, printing ratios (make bench):
//  1. pull pipeline: `oci-source-controller pull` (resolve, pull by digest, safe extract,
//     reproducible re-pack) vs `skopeo copy` + `tar -x` + `tar -cz` (what Flux does in effect),
//     and Node's floor for the same job (bench/lib/bare-pull.cjs: builtins only, no checks);
//  2. artifact serving: our HTTP server vs nginx on the same file, loaded by wrk;
//  3. steady-state check of an unchanged artifact: the controller's HEAD (pooled connection,
//     cached token) vs `skopeo inspect --raw` for the same digest.
// Everything runs on 127.0.0.1 with bounded request counts and durations.
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { RegistryClient } from '../src/oci/client.ts';
import { Transport } from '../src/oci/transport.ts';
import { parseRepositoryURL } from '../src/oci/reference.ts';
import { resolveRef } from '../src/oci/resolve.ts';
import { buildArtifact } from '../src/storage/build.ts';
import { startArtifactServer } from '../src/storage/server.ts';
import { Storage } from '../src/storage/store.ts';
import { makeTempDir, pushTarGzArtifact, startRegistry, startProcess, freePort } from '../test/harness/index.ts';

const root = path.resolve(import.meta.dirname, '..');
// The compiled CLI, as the image runs it (make bench builds it); the sources otherwise.
const cli = existsSync(path.join(root, 'dist/src/main.js')) ? path.join(root, 'dist/src/main.js') : path.join(root, 'src/main.ts');
const bareCli = path.join(root, 'bench/lib/bare-pull.cjs');
const runs = Number(process.env.BENCH_RUNS ?? 5);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (n: number) => `${n.toFixed(1)} ms`;

function time(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.toString()}`);
}

function row(name: string, ours: number, peer: number, peerName: string, unit = 'ms', higherIsBetter = false): void {
  const ratio = higherIsBetter ? ours / peer : peer / ours;
  console.log(`${name.padEnd(44)} ours ${ours.toFixed(1).padStart(9)} ${unit}   ${peerName.padEnd(22)} ${peer.toFixed(1).padStart(9)} ${unit}   ${ratio >= 1 ? `${ratio.toFixed(2)}x faster` : `${(1 / ratio).toFixed(2)}x slower`}`);
}

function content(files: number, size: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < files; i++) {
    // YAML-like text: compresses like real manifests do, not like zeros or random bytes.
    const lines: string[] = [];
    while (lines.join('\n').length < size) lines.push(`  key-${i}-${lines.length}: ${randomBytes(6).toString('hex')} # ${'value '.repeat(4)}`);
    out[`dir-${i % 20}/file-${i}.yaml`] = `apiVersion: v1\nkind: ConfigMap\ndata:\n${lines.join('\n')}\n`;
  }
  return out;
}

async function main(): Promise<void> {
  const work = makeTempDir('osc-bench-');
  const reg = await startRegistry();
  const transport = new Transport();
  try {
    console.log(`oci-source-controller benchmarks (median of ${runs} runs; node ${process.version}; CLI ${path.relative(root, cli)})\n`);
    for (const [label, files, size] of [['small artifact (50 files x 2 KiB)', 50, 2048], ['large artifact (2000 files x 8 KiB)', 2000, 8192]] as const) {
      const pushed = await pushTarGzArtifact(reg, 'bench/app', label.startsWith('small') ? 'small' : 'large', content(files, size));
      const tag = label.startsWith('small') ? 'small' : 'large';
      const ours: number[] = [];
      const peer: number[] = [];
      const bare: number[] = [];
      for (let i = 0; i < runs; i++) {
        const out = path.join(work, `ours-${tag}-${i}`);
        ours.push(time(() => sh(process.execPath, [cli, 'pull', `oci://${reg.host}/bench/app`, '--tag', tag, '--insecure', '-o', out])));
        const dir = path.join(work, `skopeo-${tag}-${i}`);
        peer.push(
          time(() => {
            sh('skopeo', ['copy', '--src-tls-verify=false', `docker://${reg.host}/bench/app:${tag}`, `dir:${dir}`]);
            const layer = path.join(dir, pushed.layerDigest.replace('sha256:', ''));
            const x = path.join(dir, 'x');
            mkdirSync(x);
            sh('tar', ['-xzf', layer, '-C', x]);
            sh('tar', ['-czf', path.join(dir, 'artifact.tar.gz'), '-C', x, '.']);
          }),
        );
        bare.push(time(() => sh(process.execPath, [bareCli, reg.host, 'bench/app', tag, path.join(work, `bare-${tag}-${i}.tar.gz`)])));
        rmSync(out, { recursive: true, force: true });
        rmSync(dir, { recursive: true, force: true });
      }
      row(`pull+extract+repack CLI, ${label}`, median(ours), median(peer), 'skopeo copy + tar');
      // What any Node program pays for the job: start-up, the builtins, the work, no safety.
      row(`  bare Node pull (floor), vs the peer`, median(bare), median(peer), 'skopeo copy + tar');
      row(`  the CLI vs the bare Node pull`, median(ours), median(bare), 'bare Node pull');
      // The controller's cost for a new revision: the same code, in the running process.
      const inproc: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t = performance.now();
        const c = new RegistryClient(parseRepositoryURL(`oci://${reg.host}/bench/app`), { transport, insecure: true });
        const r = await resolveRef(c, { tag });
        const st = new Storage({ root: path.join(work, `inproc-${tag}-${i}`), retentionRecords: 2, retentionTTLms: 60_000, advertisedAddr: 'bench' });
        await buildArtifact({ client: c, manifestDigest: r.descriptor.digest, storage: st, target: st.artifactPath('default', 'bench', r.descriptor.digest), limits: { artifactMaxSize: 0 } });
        inproc.push(performance.now() - t);
        rmSync(st.root, { recursive: true, force: true });
      }
      row(`  same, in the controller process`, median(inproc), median(peer), 'skopeo copy + tar');
    }

    // 3. steady-state check.
    const client = new RegistryClient(parseRepositoryURL(`oci://${reg.host}/bench/app`), { transport, insecure: true });
    await client.head('large');
    const heads: number[] = [];
    const inspects: number[] = [];
    for (let i = 0; i < runs * 4; i++) {
      const t = performance.now();
      await client.head('large');
      heads.push(performance.now() - t);
      inspects.push(time(() => sh('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/bench/app:large`])));
    }
    row('unchanged artifact check (per interval)', median(heads), median(inspects), 'skopeo inspect --raw');

    // 2. serving.
    const storage = new Storage({ root: path.join(work, 'data'), retentionRecords: 2, retentionTTLms: 60_000, advertisedAddr: 'bench' });
    const results: string[] = [];
    for (const [label, bytes] of [['64 KiB', 64 << 10], ['4 MiB', 4 << 20]] as const) {
      const digest = `sha256:${(label === '4 MiB' ? 'a' : 'b').repeat(64)}`;
      const rel = storage.artifactPath('default', 'bench', digest);
      await storage.writeStream(rel, Readable.from([randomBytes(bytes)]));
      results.push(rel);
    }
    const srv = await startArtifactServer(storage, '127.0.0.1', 0);
    const nginxPort = await freePort();
    const conf = path.join(work, 'nginx.conf');
    writeFileSync(conf, `daemon off; worker_processes 1; ${process.getuid?.() === 0 ? 'user root;' : ''} pid ${work}/nginx.pid; error_log ${work}/nginx-error.log;
events { worker_connections 256; }
http { access_log off; sendfile on; tcp_nopush on; client_body_temp_path ${work}/nginx-tmp; proxy_temp_path ${work}/nginx-tmp; fastcgi_temp_path ${work}/nginx-tmp; uwsgi_temp_path ${work}/nginx-tmp; scgi_temp_path ${work}/nginx-tmp;
  server { listen 127.0.0.1:${nginxPort}; root ${storage.root}; location / { } } }
`);
    const nginx = await startProcess({ name: 'nginx', cmd: '/usr/sbin/nginx', args: ['-c', conf, '-p', work], logFile: path.join(work, 'nginx.log'), ready: { tcpPort: nginxPort } });
    try {
      for (const [i, label] of ['64 KiB', '4 MiB'].entries()) {
        const rel = results[i]!;
        // wrk runs as a separate process; our server shares this process, so never block it.
        const wrk = async (url: string) => {
          const { stdout } = await promisify(execFile)('wrk', ['-t2', '-c16', '-d3s', url]);
          if (/Non-2xx or 3xx responses/.test(stdout)) throw new Error(`${url} answered errors under load:\n${stdout}`);
          return Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
        };
        // Alternated, median of three: a shared machine's hiccup during one run would otherwise
        // decide the ratio.
        const oursRps: number[] = [];
        const nginxRps: number[] = [];
        for (let round = 0; round < 3; round++) {
          oursRps.push(await wrk(`http://127.0.0.1:${srv.address.port}/${rel}`));
          nginxRps.push(await wrk(`http://127.0.0.1:${nginxPort}/${rel}`));
        }
        row(`serve ${label} artifact (wrk -c16, 1 process)`, median(oursRps), median(nginxRps), 'nginx (1 worker)', 'req/s', true);
      }
    } finally {
      await nginx.stop();
      await srv.close();
    }
    console.log('\nRatios > 1x mean ours did the same work in less time (or served more requests per second).');
  } finally {
    await transport.close();
    await reg.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
