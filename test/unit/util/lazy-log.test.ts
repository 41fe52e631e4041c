import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { lazyChild } from '../../../src/util/log.ts';

test('lazyChild: logs with its bindings once used; a call at a level that is off makes no child', () => {
  const lines: Record<string, unknown>[] = [];
  const parent = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  let made = 0;
  const child = parent.child.bind(parent);
  parent.child = ((b: pino.Bindings) => (made++, child(b))) as typeof parent.child;
  const log = lazyChild(parent, { ocirepository: 'ns/a', reconcileID: 'r1' });
  log.debug({ revision: 'x' }, 'reconciled');
  log.trace('nothing');
  assert.equal(made, 0, 'debug and trace are off: no child');
  assert.equal(lines.length, 0);
  log.info({ step: 'source' }, 'failed');
  log.warn('again');
  assert.equal(made, 1, 'one child, made on first use');
  assert.deepEqual(lines.map((l) => [l.ocirepository, l.reconcileID, l.msg, l.step]), [['ns/a', 'r1', 'failed', 'source'], ['ns/a', 'r1', 'again', undefined]]);
  assert.equal(log.isLevelEnabled('debug'), false);
  delete (parent as Partial<typeof parent>).child; // the counting wrapper goes; pino's own child() again
  log.child({ more: 1 }).info('nested');
  assert.equal(lines.at(-1)!.more, 1);
  assert.equal(lines.at(-1)!.ocirepository, 'ns/a');
});
