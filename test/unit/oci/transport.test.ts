// The Transport's pool bookkeeping (issue 8): pools keyed by what shapes a connection, one per
// owner at a time, closed when the last owner moves on (a rotated TLS or proxy Secret) or goes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Dispatcher } from 'undici';
import { Transport } from '../../../src/oci/transport.ts';

const closed = (d: Dispatcher) => (d as unknown as { closed: boolean }).closed;
/** Pools are opened (undici loaded) and closed asynchronously: let that happen. */
const settle = () => new Promise((r) => setImmediate(r));

test('rotating an owner TLS settings N times leaves one pool; the old ones are closed', async () => {
  const t = new Transport();
  const seen: Dispatcher[] = [];
  for (let i = 0; i < 20; i++) seen.push(await t.dispatcher({ tls: { ca: `-----BEGIN CERTIFICATE-----\nrotation ${i}\n` }, insecure: false }, 'default/app'));
  await settle();
  assert.equal(t.pools, 1);
  assert.equal(t.evicted, 19);
  assert.ok(seen.slice(0, -1).every(closed), 'every replaced pool is closed');
  assert.equal(closed(seen.at(-1)!), false);
  // The same settings again: the same pool, nothing evicted.
  assert.equal(await t.dispatcher({ tls: { ca: `-----BEGIN CERTIFICATE-----\nrotation 19\n` }, insecure: false }, 'default/app'), seen.at(-1));
  assert.equal(t.evicted, 19);
  await t.close();
  assert.equal(t.pools, 0);
  assert.ok(closed(seen.at(-1)!));
  assert.throws(() => t.dispatcher({ insecure: true }), /closed/);
});

test('owners share a pool; it closes when the last one moves or is released', async () => {
  const t = new Transport();
  const proxy = { address: 'http://127.0.0.1:3128' };
  const a = await t.dispatcher({ insecure: false, proxy }, 'ns/a');
  const b = await t.dispatcher({ insecure: false, proxy }, 'ns/b');
  assert.equal(a, b);
  await t.dispatcher({ insecure: false, proxy: { ...proxy, password: 'rotated' } }, 'ns/a');
  assert.equal(t.pools, 2);
  await settle();
  assert.equal(closed(a), false, 'ns/b still holds it');
  t.release('ns/b');
  assert.equal(t.pools, 1);
  await settle();
  assert.ok(closed(a));
  t.release('ns/a');
  t.release('ns/unknown');
  assert.equal(t.pools, 0);
  // Without an owner (the CLI), a pool lives until close().
  const cli = await t.dispatcher({ insecure: true });
  assert.equal(t.pools, 1);
  await t.close();
  assert.ok(closed(cli));
});

test('learned challenges and tokens belong to the transport, bounded', async () => {
  const t = new Transport({ maxChallenges: 2, maxTokens: 2 });
  const other = new Transport();
  t.learnChallenge('r1', { scheme: 'bearer', params: { realm: 'https://r1/token' } });
  t.learnChallenge('r2', { scheme: 'basic', params: {} });
  t.learnChallenge('r3', { scheme: 'basic', params: {} });
  assert.equal(t.challenge('r1'), undefined, 'oldest dropped');
  assert.equal(t.challenge('r3')?.scheme, 'basic');
  assert.equal(other.challenge('r3'), undefined, 'nothing shared between transports');
  t.tokens.set('k', 'tok', 60);
  assert.equal(t.tokens.get('k'), 'tok');
  assert.equal(other.tokens.get('k'), undefined);
  await t.close();
  assert.equal(t.tokens.get('k'), undefined);
  await other.close();
});
