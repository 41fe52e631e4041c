import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { startArtifactServer } from '../src/storage/server.ts';
import { Storage } from '../src/storage/store.ts';
import { makeTempDir, startProcess, freePort } from '../test/harness/index.ts';
const work = makeTempDir('serve-probe-');
const storage = new Storage({ root: path.join(work, 'data'), retentionRecords: 2, retentionTTLms: 60_000, advertisedAddr: 'bench' });
const rels: string[] = [];
for (const [label, bytes] of [['64k', 64 << 10], ['4m', 4 << 20]] as const) {
  const rel = storage.artifactPath('default', 'bench', `sha256:${(label === '4m' ? 'a' : 'b').repeat(64)}`);
  await storage.writeStream(rel, Readable.from([randomBytes(bytes)]));
  rels.push(rel);
}
const srv = await startArtifactServer(storage, '127.0.0.1', 0);
const nginxPort = await freePort();
const conf = path.join(work, 'nginx.conf');
writeFileSync(conf, `daemon off; worker_processes 1; user root; pid ${work}/nginx.pid; error_log ${work}/nginx-error.log;
events { worker_connections 256; }
http { access_log off; sendfile on; tcp_nopush on; client_body_temp_path ${work}/t; proxy_temp_path ${work}/t; fastcgi_temp_path ${work}/t; uwsgi_temp_path ${work}/t; scgi_temp_path ${work}/t;
  server { listen 127.0.0.1:${nginxPort}; root ${storage.root}; location / { } } }
`);
const nginx = await startProcess({ name: 'nginx', cmd: '/usr/sbin/nginx', args: ['-c', conf, '-p', work], logFile: path.join(work, 'nginx.log'), ready: { tcpPort: nginxPort } });
const wrk = async (url: string) => Number(/Requests\/sec:\s+([\d.]+)/.exec((await promisify(execFile)('wrk', ['-t2', '-c16', '-d4s', url])).stdout)?.[1]);
for (const rel of rels) {
  const o = await wrk(`http://127.0.0.1:${srv.address.port}/${rel}`);
  const n = await wrk(`http://127.0.0.1:${nginxPort}/${rel}`);
  console.log(rel.slice(-20), 'ours', o, 'nginx', n, 'ratio', (o / n).toFixed(2));
}
await nginx.stop();
await srv.close();
