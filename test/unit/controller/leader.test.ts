// Leader election against an in-memory Lease with compare-and-swap: acquisition, waiting out a
// live lease, the renew deadline (a hanging request cannot keep us leading), and release.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { KubeError } from '../../../src/controller/kube.ts';
import { LeaderElector } from '../../../src/controller/leader.ts';

interface LeaseObj {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; renewTime?: string; leaseTransitions?: number };
}

/** One Lease in memory; `hang` makes every request wait until its signal aborts. */
class FakeLeases {
  lease: LeaseObj | undefined;
  rv = 0;
  hang = false;
  calls = 0;
  request = async <T>(method: string, _path: string, body?: unknown, _ct?: string, _accept?: string, signal?: AbortSignal): Promise<T> => {
    this.calls++;
    if (this.hang) {
      await new Promise((_, reject) => signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true }));
    }
    const b = body as LeaseObj | undefined;
    if (method === 'GET') {
      if (!this.lease) throw new KubeError(404, 'not found');
      return structuredClone(this.lease) as T;
    }
    if (method === 'POST') {
      if (this.lease) throw new KubeError(409, 'exists');
      this.lease = { ...b!, metadata: { ...b!.metadata, resourceVersion: String(++this.rv) } };
      return structuredClone(this.lease) as T;
    }
    if (b!.metadata.resourceVersion !== this.lease?.metadata.resourceVersion) throw new KubeError(409, 'conflict');
    this.lease = { ...b!, metadata: { ...b!.metadata, resourceVersion: String(++this.rv) } };
    return structuredClone(this.lease) as T;
  };
}

const log = pino({ level: 'silent' });
const opts = { namespace: 'ns', name: 'lease', leaseDurationMs: 1000, renewDeadlineMs: 400, retryPeriodMs: 50, log };

test('first candidate takes a free lease; a second waits until the holder stops renewing', async () => {
  const kube = new FakeLeases();
  const a = new LeaderElector(kube, { ...opts, identity: 'a' });
  await a.acquire();
  assert.equal(kube.lease?.spec.holderIdentity, 'a');
  let lost = false;
  a.keepRenewing(() => (lost = true));
  const b = new LeaderElector(kube, { ...opts, identity: 'b' });
  const bWins = b.acquire().then(() => Date.now());
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(kube.lease?.spec.holderIdentity, 'a', 'a live lease is not taken');
  await a.release();
  await bWins;
  assert.equal(kube.lease?.spec.holderIdentity, 'b', 'a released lease is taken at once');
  assert.equal(kube.lease?.spec.leaseTransitions, 1);
  assert.equal(lost, false, 'a graceful release is not a loss');
  await b.release();
});

test('a renewal that hangs ends leadership when the renew deadline passes', { timeout: 20_000 }, async () => {
  const kube = new FakeLeases();
  const a = new LeaderElector(kube, { ...opts, identity: 'a' });
  await a.acquire();
  const lost = new Promise<void>((resolve) => a.keepRenewing(resolve));
  await new Promise((r) => setTimeout(r, 120));
  // From now on no request ever answers unless the deadline cancels it: only the renew deadline
  // can end leadership here (a request bounded by nothing would hold it forever).
  kube.hang = true;
  await lost;
  assert.equal(a.leading, false);
  await a.release();
});
