// The fault proxy of the fault matrix, against a small upstream on loopback: what each fault does
// on the wire, request classification, token realm rewriting, and the TCP relay's drop/block.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { classify, startFaultProxy, startTcpProxy, type FaultProxy } from '../../harness/fault-proxy.ts';

const BLOB = Buffer.alloc(64 << 10, 7);

function get(url: string, opts: { method?: string; timeoutMs?: number } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), ms: Date.now() - started }));
    });
    req.setTimeout(opts.timeoutMs ?? 5000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('fault proxy', () => {
  let upstream: http.Server;
  let issuer: http.Server;
  let proxy: FaultProxy;
  let issuerHits = 0;
  before(async () => {
    issuer = http.createServer((req, res) => {
      issuerHits++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 't', query: req.url }));
    });
    await new Promise<void>((r) => issuer.listen(0, '127.0.0.1', r));
    const realm = `http://127.0.0.1:${(issuer.address() as AddressInfo).port}/token`;
    upstream = http.createServer((req, res) => {
      if (req.url?.startsWith('/v2/private/')) {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm}",service="reg",scope="repository:private:pull"` }).end();
      } else if (req.url?.includes('/blobs/')) {
        res.writeHead(200, { 'content-length': BLOB.length }).end(BLOB);
      } else {
        res.writeHead(200, { 'content-type': 'application/json', 'docker-content-digest': 'sha256:x' }).end('{"ok":true}');
      }
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    proxy = await startFaultProxy({ upstream: `127.0.0.1:${(upstream.address() as AddressInfo).port}` });
  });
  after(async () => {
    await proxy.stop();
    upstream.closeAllConnections();
    issuer.closeAllConnections();
    await Promise.all([new Promise((r) => upstream.close(r)), new Promise((r) => issuer.close(r))]);
  });

  test('classifies registry requests by kind', () => {
    const hex = 'a'.repeat(64);
    assert.deepEqual(classify('/v2/'), { kind: 'ping' });
    assert.deepEqual(classify('/v2/org/app/manifests/latest'), { kind: 'manifest', repo: 'org/app', ref: 'latest' });
    assert.deepEqual(classify(`/v2/org/app/manifests/sha256-${hex}.sig`), { kind: 'signature', repo: 'org/app', ref: `sha256-${hex}.sig` });
    assert.deepEqual(classify(`/v2/org/app/manifests/sha256-${hex}`), { kind: 'referrers', repo: 'org/app', ref: `sha256-${hex}` });
    assert.deepEqual(classify(`/v2/org/app/referrers/sha256:${hex}`), { kind: 'referrers', repo: 'org/app', ref: `sha256:${hex}` });
    assert.deepEqual(classify(`/v2/a/b/c/blobs/sha256:${hex}`), { kind: 'blob', repo: 'a/b/c', ref: `sha256:${hex}` });
    assert.deepEqual(classify('/v2/org/app/tags/list'), { kind: 'tags', repo: 'org/app' });
    assert.equal(classify('/v2/org/app/blobs/uploads/').kind, 'other');
    assert.equal(classify('/__token').kind, 'token');
  });

  test('passes through, counts by kind, and storms only what matches', async () => {
    const before = proxy.counts('org/app');
    const storm = proxy.add({ repo: 'org/app', kind: 'manifest' }, { type: 'status', status: 429, retryAfterSeconds: 3 });
    const r1 = await get(`${proxy.url}/v2/org/app/manifests/latest`);
    assert.equal(r1.status, 429);
    assert.equal(r1.headers['retry-after'], '3');
    assert.match(r1.body.toString(), /TOOMANYREQUESTS/);
    const head = await get(`${proxy.url}/v2/org/app/manifests/latest`, { method: 'HEAD' });
    assert.equal(head.status, 429);
    assert.equal(head.body.length, 0);
    assert.equal((await get(`${proxy.url}/v2/other/manifests/latest`)).status, 200, 'another repository is untouched');
    assert.equal((await get(`${proxy.url}/v2/org/app/tags/list`)).status, 200, 'another kind is untouched');
    storm.clear();
    assert.equal((await get(`${proxy.url}/v2/org/app/manifests/latest`)).status, 200);
    assert.equal(storm.hits(), 2);
    const after = proxy.counts('org/app');
    assert.equal(after.manifest - before.manifest, 3);
    assert.equal(after.tags - before.tags, 1);
  });

  test('hang: no answer until cleared', async () => {
    const hang = proxy.add({ kind: 'blob' }, { type: 'hang' });
    await assert.rejects(get(`${proxy.url}/v2/org/app/blobs/sha256:${'b'.repeat(64)}`, { timeoutMs: 300 }), /client timeout/);
    const pending = get(`${proxy.url}/v2/org/app/blobs/sha256:${'b'.repeat(64)}`, { timeoutMs: 5000 });
    while (hang.hits() < 2) await new Promise((r) => setTimeout(r, 10));
    hang.clear(); // held connections are reset
    await assert.rejects(pending, /ECONNRESET|socket hang up/);
  });

  test('drip: headers at once, then the body one byte per interval', async () => {
    const drip = proxy.add({ kind: 'manifest', repo: 'drip' }, { type: 'drip', intervalMs: 30 });
    const r = await get(`${proxy.url}/v2/drip/manifests/latest`);
    drip.clear();
    assert.equal(r.body.toString(), '{"ok":true}');
    assert.ok(r.ms >= 11 * 30 * 0.8, `11 bytes took ${r.ms} ms`);
  });

  test('reset: at once, or after part of the body', async () => {
    const now = proxy.add({ kind: 'manifest', repo: 'reset' }, { type: 'reset' });
    await assert.rejects(get(`${proxy.url}/v2/reset/manifests/latest`), /ECONNRESET|socket hang up/);
    now.clear();
    const mid = proxy.add({ kind: 'blob', repo: 'reset' }, { type: 'reset', afterBytes: 1000 });
    let got = 0;
    await assert.rejects(
      new Promise((resolve, reject) => {
        http.get(`${proxy.url}/v2/reset/blobs/sha256:${'c'.repeat(64)}`, { agent: false }, (res) => {
          res.on('data', (c: Buffer) => (got += c.length));
          res.on('end', resolve);
          res.on('error', reject);
        }).on('error', reject);
      }),
      /ECONNRESET|aborted/,
    );
    mid.clear();
    assert.ok(got > 0 && got < BLOB.length, `${got} bytes before the reset`);
  });

  test('stall: part of the body, then resume() delivers the rest and cut() breaks it', async () => {
    const url = `${proxy.url}/v2/stall/blobs/sha256:${'d'.repeat(64)}`;
    const s1 = proxy.add({ kind: 'blob', repo: 'stall' }, { type: 'stall', afterBytes: 1000 });
    const whole = get(url);
    await s1.firstHit;
    s1.resume();
    assert.deepEqual((await whole).body, BLOB);
    const s2 = proxy.add({ kind: 'blob', repo: 'stall' }, { type: 'stall', afterBytes: 1000 });
    const broken = get(url);
    await s2.firstHit;
    s2.cut();
    await assert.rejects(broken, /ECONNRESET|aborted|socket hang up/);
  });

  test('token realm is rewritten to the proxy, and token requests pass through it', async () => {
    const r = await get(`${proxy.url}/v2/private/manifests/latest`);
    assert.equal(r.status, 401);
    const realm = /realm="([^"]+)"/.exec(String(r.headers['www-authenticate']))![1]!;
    assert.equal(realm, `${proxy.url}/__token`);
    const hits = issuerHits;
    const tok = await get(`${realm}?service=reg&scope=repository:private:pull`);
    assert.equal(issuerHits, hits + 1);
    assert.match(tok.body.toString(), /"query":"\/token\?service=reg&scope=repository%3Aprivate%3Apull"/);
    const storm = proxy.add({ kind: 'token' }, { type: 'status', status: 500 });
    assert.equal((await get(`${realm}?service=reg`)).status, 500);
    storm.clear();
    assert.equal(issuerHits, hits + 1);
  });
});

test('TCP relay: drops open connections and refuses new ones while blocked', async () => {
  const echo = net.createServer((s) => {
    s.on('error', () => undefined); // the relay resets its side
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const relay = await startTcpProxy({ upstreamPort: (echo.address() as AddressInfo).port });
  const roundTrip = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const s = net.connect(relay.port, '127.0.0.1', () => s.write('ping'));
      s.once('data', (d) => {
        s.destroy();
        resolve(d.toString());
      });
      s.on('error', reject);
      s.once('close', () => reject(new Error('closed')));
    });
  try {
    assert.equal(await roundTrip(), 'ping');
    const open = net.connect(relay.port, '127.0.0.1');
    await new Promise((r) => open.once('connect', r));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(relay.connections(), 1);
    const closed = new Promise((r) => open.once('close', r));
    open.on('error', () => undefined);
    relay.block();
    await closed;
    await assert.rejects(roundTrip());
    relay.unblock();
    assert.equal(await roundTrip(), 'ping');
  } finally {
    await relay.stop();
    echo.close();
  }
});
