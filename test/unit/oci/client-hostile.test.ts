// The registry client against registries that misbehave on purpose (stand-ins on 127.0.0.1: no
// real registry sends these answers): tag floods, non-JSON answers, token endpoints failing, and
// a redirect from https to http on the same host and port.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { LimitError } from '../../../src/api/limits.ts';
import { RegistryClient, type ClientOptions } from '../../../src/oci/client.ts';
import { RegistryError } from '../../../src/oci/errors.ts';
import { resolveRef } from '../../../src/oci/resolve.ts';
import { Transport } from '../../../src/oci/transport.ts';
import { createCA, createServerCert, makeTempDir, removeTempDir } from '../../harness/index.ts';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, base: string) => void;

/** A plain-HTTP server on 127.0.0.1 answering with `handler`. */
async function serve(handler: Handler): Promise<{ host: string; close(): void }> {
  const srv = http.createServer((req, res) => handler(req, res, `http://${host}`));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const host = `127.0.0.1:${(srv.address() as net.AddressInfo).port}`;
  return {
    host,
    close: () => {
      srv.closeAllConnections();
      srv.close();
    },
  };
}

const transport = new Transport();
after(() => transport.close());
const client = (host: string, opts: Partial<ClientOptions> = {}) => new RegistryClient({ registry: host, apiHost: host, repository: 'x/y' }, { transport, insecure: true, ...opts });

describe('tag listing is bounded across all pages (issue 7 item 3)', () => {
  test('a registry that pages forever hits maxTags', async () => {
    let pages = 0;
    const reg = await serve((req, res) => {
      pages++;
      const tags = Array.from({ length: 100 }, (_, i) => `1.${pages}.${i}`);
      res.writeHead(200, { 'content-type': 'application/json', link: `</v2/x/y/tags/list?last=${pages}>; rel="next"` }).end(JSON.stringify({ name: 'x/y', tags }));
    });
    try {
      const err = await client(reg.host, { limits: { maxTags: 5000 } }).listTags().then(() => undefined, (e: Error) => e);
      assert.ok(err instanceof LimitError, `expected LimitError, got ${err?.message ?? 'a tag list'}`);
      assert.equal(err.limit, 'maxTags');
      assert.match(err.message, /has more than 5000 tags \(limit maxTags; raise it with --max-tags\)/);
      assert.equal(pages, 51, 'stopped at the page that crossed the budget');
    } finally {
      reg.close();
    }
  });

  test('pages of 30 MiB: the byte budget holds across pages, and a semver resolve says which budget', async () => {
    const page = Buffer.from(JSON.stringify({ tags: Array.from({ length: 3000 }, (_, i) => `1.0.${i}`) }));
    let pages = 0;
    const reg = await serve((_req, res) => {
      pages++;
      res.writeHead(200, { 'content-type': 'application/json', link: `</v2/x/y/tags/list?last=${pages}>; rel="next"` }).end(page);
    });
    try {
      const c = client(reg.host, { limits: { tagListMaxSize: page.length * 3 + 10 } });
      const err = await resolveRef(c, { semver: '>=1.0.0' }).then(() => undefined, (e: Error) => e);
      assert.ok(err instanceof LimitError, err?.message);
      assert.equal(err.limit, 'tagListMaxSize');
      assert.match(err.message, /tag list of 127\.0\.0\.1:\d+\/x\/y is larger than \d+ bytes \(limit tagListMaxSize; raise it with --tag-list-max-size\)/);
      assert.equal(pages, 4);
      // The default budget (8 MiB) stops a single 30 MiB page while reading it.
      pages = 0;
      const huge = Buffer.alloc(30 << 20, 0x20);
      const flood = await serve((_req, res) => {
        pages++;
        res.writeHead(200, { 'content-type': 'application/json' }).end(huge);
      });
      try {
        const e2 = await client(flood.host).listTags().then(() => undefined, (e: Error) => e);
        assert.ok(e2 instanceof LimitError && e2.limit === 'tagListMaxSize', e2?.message);
      } finally {
        flood.close();
      }
    } finally {
      reg.close();
    }
  });

  test('an empty page that links to a next page is an error, not a loop', async () => {
    const reg = await serve((_req, res) => res.writeHead(200, { link: '</v2/x/y/tags/list?last=z>; rel="next"' }).end('{"tags":[]}'));
    try {
      await assert.rejects(client(reg.host).listTags(), (e: Error) => e instanceof RegistryError && /an empty page links to a next page/.test(e.message));
    } finally {
      reg.close();
    }
  });
});

describe('manifests and referrers are bounded', () => {
  test('a manifest over manifestMaxSize is refused while it is read', async () => {
    const reg = await serve((_req, res) => res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(Buffer.alloc(5 << 20, 0x20)));
    try {
      const err = await client(reg.host).fetchManifest('v1').then(() => undefined, (e: Error) => e);
      assert.ok(err instanceof LimitError && err.limit === 'manifestMaxSize', err?.message);
      assert.match(err.message, /manifest 'v1' of 127\.0\.0\.1:\d+\/x\/y is larger than 4194304 bytes \(limit manifestMaxSize; raise it with --manifest-max-size\)/);
    } finally {
      reg.close();
    }
  });

  test('a referrers flood across pages hits maxReferrers', async () => {
    const subject = `sha256:${'a'.repeat(64)}`;
    let pages = 0;
    const reg = await serve((_req, res) => {
      pages++;
      const manifests = Array.from({ length: 400 }, (_, i) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${String(i % 10).repeat(64)}`, size: 10, artifactType: 'application/vnd.cncf.notary.signature' }));
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json', link: `</v2/x/y/referrers/${subject}?page=${pages}>; rel="next"` }).end(JSON.stringify({ schemaVersion: 2, manifests }));
    });
    try {
      const err = await client(reg.host).referrers(subject).then(() => undefined, (e: Error) => e);
      assert.ok(err instanceof LimitError && err.limit === 'maxReferrers', err?.message);
      assert.match(err.message, /has more than 1000 referrers \(limit maxReferrers; raise it with --max-referrers\)/);
      assert.equal(pages, 3);
    } finally {
      reg.close();
    }
  });
});

describe('non-JSON answers are typed errors with a clear message', () => {
  test('tag list', async () => {
    for (const body of ['<html>rate limited</html>', '{"tags": "1.0.0"}', '{"tags": [1, 2]}']) {
      const reg = await serve((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(body));
      try {
        const err = await client(reg.host).listTags().then(() => undefined, (e: Error) => e);
        assert.ok(err instanceof RegistryError, `${body}: ${err?.name}: ${err?.message}`);
        assert.match(err.message, /tag list of 127\.0\.0\.1:\d+\/x\/y (is not valid JSON|is not a tag list|holds a tag that is not a string)/);
      } finally {
        reg.close();
      }
    }
  });

  test('token endpoint', async () => {
    const reg = await serve((req, res, base) => {
      if (req.url?.startsWith('/token')) return res.writeHead(200, { 'content-type': 'text/html' }).end('<html>login</html>');
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${base}/token",service="reg"` }).end();
    });
    try {
      const err = await client(reg.host, { credentials: { username: 'u', password: 'p' } }).head('v1').then(() => undefined, (e: Error) => e);
      assert.ok(err instanceof RegistryError, `${err?.name}: ${err?.message}`);
      assert.equal(err.code, 'INVALID_TOKEN_RESPONSE');
      assert.match(err.message, /token request to http:\/\/127\.0\.0\.1:\d+\/token for repository:x\/y:pull: the answer is not JSON/);
      assert.equal(err.isAuth, false);
    } finally {
      reg.close();
    }
  });
});

test('token endpoint status: 5xx is a retryable fetch failure, 401/403 an authentication failure (issue 8)', async () => {
  let status = 503;
  const reg = await serve((req, res, base) => {
    if (req.url?.startsWith('/token')) return res.writeHead(status).end('{}');
    res.writeHead(401, { 'www-authenticate': `Bearer realm="${base}/token",service="reg"` }).end();
  });
  try {
    for (const [s, auth] of [[503, false], [500, false], [401, true], [403, true]] as const) {
      status = s;
      const err = await client(reg.host, { transport: new Transport(), credentials: { username: 'u', password: 'p' } }).head('v1').then(() => undefined, (e: Error) => e);
      assert.ok(err instanceof RegistryError, `${s}: ${err?.message}`);
      assert.equal(err.status, s);
      assert.equal(err.isAuth, auth, `${s}: isAuth`);
      assert.match(err.message, s >= 500 ? /HTTP 50\d \(the token service failed; will retry\)/ : /HTTP 40\d \(check the credentials from spec.secretRef\)/);
    }
    // The hint names where the refused credentials came from (a cloud identity is not spec.secretRef).
    status = 401;
    const err = await client(reg.host, { transport: new Transport(), credentials: { username: 'u', password: 'p' }, credentialSource: 'provider azure (the controller\'s workload identity)' }).head('v1').then(() => undefined, (e: Error) => e);
    assert.match(err?.message ?? '', /HTTP 401 \(check the credentials from provider azure \(the controller's workload identity\)\)/);
  } finally {
    reg.close();
  }
});

describe('credentials go to the registry origin only', () => {
  let dir: string;
  let port: number;
  let caPem: string;
  let server: net.Server;
  let inner: (http.Server | https.Server)[] = [];
  const seen: { proto: string; url: string; auth: string | undefined }[] = [];
  before(async () => {
    dir = makeTempDir('osc-redirect-');
    const ca = await createCA(path.join(dir, 'pki'));
    const cert = await createServerCert(ca, { dir: path.join(dir, 'pki') });
    // One port speaking TLS and plain HTTP (told apart by the first byte, then relayed to an
    // HTTPS or an HTTP server), so that an https URL can redirect to http on the same host and port.
    const onRequest = (proto: string) => (req: http.IncomingMessage, res: http.ServerResponse) => {
      seen.push({ proto, url: req.url ?? '', auth: req.headers.authorization });
      if (proto === 'https' && !req.headers.authorization) return res.writeHead(401, { 'www-authenticate': 'Basic realm="reg"' }).end();
      if (proto === 'https') return res.writeHead(307, { location: `http://127.0.0.1:${port}/storage/blob` }).end();
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end('blob');
    };
    const tlsServer = https.createServer({ key: cert.keyPem, cert: cert.certPem }, onRequest('https'));
    const plainServer = http.createServer(onRequest('http'));
    inner = [tlsServer, plainServer];
    const ports = await Promise.all(inner.map((srv) => new Promise<number>((r) => srv.listen(0, '127.0.0.1', () => r((srv.address() as net.AddressInfo).port)))));
    server = net.createServer((socket) => {
      socket.once('data', (first) => {
        const upstream = net.connect(first[0] === 0x16 ? ports[0]! : ports[1]!, '127.0.0.1', () => {
          upstream.write(first);
          socket.pipe(upstream).pipe(socket);
        });
        upstream.on('error', () => socket.destroy());
        socket.on('error', () => upstream.destroy());
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as net.AddressInfo).port;
    caPem = ca.certPem;
  });
  after(() => {
    server.close();
    for (const srv of inner) {
      srv.closeAllConnections();
      srv.close();
    }
    removeTempDir(dir);
  });

  test('a redirect from https to http on the same host and port drops Authorization', async () => {
    const host = `127.0.0.1:${port}`;
    const body = Buffer.from('blob');
    const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    const c = new RegistryClient({ registry: host, apiHost: host, repository: 'x/y' }, { transport, tls: { ca: caPem }, credentials: { username: 'u', password: 'secret' } });
    const got = await c.fetchBlob({ mediaType: 'application/octet-stream', digest, size: body.length });
    assert.equal(got.toString(), 'blob');
    const https2 = seen.filter((s) => s.proto === 'https');
    assert.ok(https2.some((s) => s.auth?.startsWith('Basic ')), 'the registry itself got the credentials');
    const plain = seen.filter((s) => s.proto === 'http');
    assert.equal(plain.length, 1);
    assert.equal(plain[0]!.auth, undefined, 'no credentials over plain HTTP after the redirect');
  });
});

test('steady state: repeated manifest HEADs reuse one connection (undici would close it after each HEAD)', async () => {
  const digest = `sha256:${'b'.repeat(64)}`;
  let connections = 0;
  const srv = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': digest, 'content-length': '1234' }).end();
  });
  srv.on('connection', () => connections++);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const host = `127.0.0.1:${(srv.address() as net.AddressInfo).port}`;
  const own = new Transport();
  try {
    const c = new RegistryClient({ registry: host, apiHost: host, repository: 'x/y' }, { transport: own, insecure: true });
    for (let i = 0; i < 5; i++) {
      assert.equal((await c.head('v1'))?.digest, digest);
      // Reconciles of one object are an interval apart: let the pool take the connection back.
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(connections, 1);
  } finally {
    await own.close();
    srv.closeAllConnections();
    srv.close();
  }
});
