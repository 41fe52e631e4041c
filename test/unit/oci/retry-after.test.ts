// A registry's Retry-After (429 storms, 503) travels with the RegistryError so the manager can
// requeue no sooner (issue 8 fault matrix); a hostile value cannot park an object for long.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { RegistryClient } from '../../../src/oci/client.ts';
import { MaxRetryAfterMs, parseRetryAfter, RegistryError, retryAfterOf } from '../../../src/oci/errors.ts';
import { Transport } from '../../../src/oci/transport.ts';

const transport = new Transport();
after(() => transport.close());

test('parseRetryAfter: delta-seconds, HTTP-date, garbage, and the cap', () => {
  const now = Date.parse('2026-12-02T03:00:00Z');
  assert.equal(parseRetryAfter('2', now), 2000);
  assert.equal(parseRetryAfter(' 0 ', now), 0);
  assert.equal(parseRetryAfter('Wed, 02 Dec 2026 03:00:30 GMT', now), 30_000);
  assert.equal(parseRetryAfter('Wed, 02 Dec 2026 02:59:00 GMT', now), 0, 'a date in the past means now');
  assert.equal(parseRetryAfter('soon', now), undefined);
  assert.equal(parseRetryAfter('-5', now), undefined);
  assert.equal(parseRetryAfter(undefined, now), undefined);
  assert.equal(parseRetryAfter('999999999', now), MaxRetryAfterMs);
});

test('retryAfterOf finds the registry answer through wrapping errors', () => {
  const reg = new RegistryError('HTTP 429', 429, 'TOOMANYREQUESTS', { retryAfterMs: 3000 });
  const wrapped = new Error('step failed', { cause: new Error('pull failed', { cause: reg }) });
  assert.equal(retryAfterOf(wrapped), 3000);
  assert.equal(retryAfterOf(new Error('plain')), undefined);
  assert.equal(retryAfterOf(new RegistryError('HTTP 500', 500)), undefined);
});

test('a 429 with Retry-After from the registry carries retryAfterMs and says so', async () => {
  const srv = http.createServer((_req, res) => {
    res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' }).end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] }));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const host = `127.0.0.1:${(srv.address() as net.AddressInfo).port}`;
  try {
    const client = new RegistryClient({ registry: host, apiHost: host, repository: 'x/y' }, { transport, insecure: true });
    const err = await client.head('latest').then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof RegistryError, String(err));
    assert.equal(err.status, 429);
    assert.equal(err.retryAfterMs, 7000);
    assert.match(err.message, /HTTP 429 .*Retry-After: 7s/);
  } finally {
    srv.closeAllConnections();
    srv.close();
  }
});
