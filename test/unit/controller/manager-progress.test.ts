// The "in progress" status of a new generation or a requested reconcile: written when the work
// runs long enough for someone to look (a slow registry, a large pull), skipped when the final
// status follows at once. Either way the final status is the same, and never the in-progress one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Condition } from '../../../src/api/schema.ts';
import { setupManager } from '../../helpers/manager-bed.ts';

const cond = (conds: Condition[] | undefined, type: string) => conds?.find((c) => c.type === type);

test('a quick reconcile of a new generation writes its final status only', async () => {
  const { manager, state } = setupManager();
  try {
    await manager.process('team/app');
    assert.equal(state.statusPatches.length, 1);
    const [final] = state.statusPatches;
    assert.equal(cond(final!.conditions, 'FetchFailed')?.status, 'True');
    assert.notEqual(cond(final!.conditions, 'Reconciling')?.reason, 'Progressing', 'the in-progress mark is not the final status');
  } finally {
    await manager.transport.close();
  }
});

test('a slow reconcile of a new generation says so first, then writes its result', async () => {
  // A registry that accepts connections and never answers: the pass lasts until spec.timeout.
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((s) => sockets.add(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const { port } = silent.address() as AddressInfo;
  const { manager, state } = setupManager({ url: `oci://127.0.0.1:${port}/app`, timeout: '3s' });
  try {
    await manager.process('team/app');
    assert.equal(state.statusPatches.length, 2);
    const [progress, final] = state.statusPatches;
    const reconciling = cond(progress!.conditions, 'Reconciling');
    assert.equal(reconciling?.status, 'True');
    assert.equal(reconciling?.reason, 'Progressing');
    assert.equal(reconciling?.message, 'processing object: new generation 0 -> 1');
    assert.equal(cond(progress!.conditions, 'Ready')?.status, 'Unknown');
    assert.equal(cond(final!.conditions, 'FetchFailed')?.status, 'True');
    assert.match(cond(final!.conditions, 'FetchFailed')?.message ?? '', /within spec\.timeout 3s/);
    // The stored object ends with the final status.
    assert.equal(cond(state.obj.status?.conditions, 'Ready')?.status, 'False');
  } finally {
    await manager.transport.close();
    for (const s of sockets) s.destroy();
    silent.close();
  }
});
