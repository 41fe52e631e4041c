// The floor for the `pull` CLI in Node: the same three registry requests (HEAD the tag, GET the
// manifest by digest, GET the layer), both digests checked, the layer inflated, its regular files
// re-packed in name order with fixed headers, gzipped, hashed and written; node:http, node:zlib
// and node:crypto only, no libraries, no budgets, no hostile-input checks, no atomic rename.
// Plain CommonJS on purpose: a .ts entry would have Node load its type stripper first, which the
// compiled CLI does not pay, and an ESM import of node:http loads Node's own WebSocket client
// (src/util/node-http.ts), which the CLI does not pay either.
//   node bench/lib/bare-pull.cjs HOST:PORT REPO TAG OUTFILE
'use strict';
const { createHash } = require('node:crypto');
const { writeFileSync } = require('node:fs');
const http = require('node:http');
const { gunzipSync, gzipSync } = require('node:zlib');

const [host, repo, tag, out] = process.argv.slice(2);
const [hostname, port] = host.split(':');
const agent = new http.Agent({ keepAlive: true });
const manifestTypes = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';
const sha256 = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function request(method, path) {
  return new Promise((resolve, reject) => {
    const req = http.request({ method, hostname, port, path, agent, headers: { accept: manifestTypes } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => (res.statusCode === 200 ? resolve({ headers: res.headers, body: Buffer.concat(chunks) }) : reject(new Error(`${method} ${path}: ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function header(name, size) {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write(' '.repeat(8), 148);
  h[156] = 0x30;
  h.write('ustar\x0000', 257);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

async function main() {
  const digest = (await request('HEAD', `/v2/${repo}/manifests/${tag}`)).headers['docker-content-digest'];
  const manifest = await request('GET', `/v2/${repo}/manifests/${digest}`);
  if (sha256(manifest.body) !== digest) throw new Error('manifest digest mismatch');
  const layer = JSON.parse(manifest.body.toString()).layers[0];
  const blob = (await request('GET', `/v2/${repo}/blobs/${layer.digest}`)).body;
  if (sha256(blob) !== layer.digest) throw new Error('layer digest mismatch');
  const tar = gunzipSync(blob);
  const files = [];
  for (let off = 0; off + 512 <= tar.length && tar[off] !== 0; ) {
    const size = parseInt(tar.toString('ascii', off + 124, off + 136), 8) || 0;
    if (tar[off + 156] === 0x30 || tar[off + 156] === 0) files.push([tar.toString('utf8', off, off + 100).replace(/\0.*$/s, ''), tar.subarray(off + 512, off + 512 + size)]);
    off += 512 + Math.ceil(size / 512) * 512;
  }
  files.sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const parts = files.flatMap(([name, data]) => [header(name, data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
  const gz = gzipSync(Buffer.concat([...parts, Buffer.alloc(1024)]));
  writeFileSync(out, gz);
  process.stdout.write(`${JSON.stringify({ digest: sha256(gz), files: files.length })}\n`);
}

main()
  .catch((err) => {
    process.stderr.write(`${err.message}\n`);
    process.exitCode = 1;
  })
  .finally(() => agent.destroy());
