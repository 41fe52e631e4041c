// `run` flags that shape the controller's timing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configFromArgs } from '../../../src/cli/run.ts';
import { UsageError } from '../../../src/cli/args.ts';

test('--requeue-alignment: 1s by default, any duration, 0 for exact requeues, nonsense refused', () => {
  assert.equal(configFromArgs([]).requeueAlignMs, 1000);
  assert.equal(configFromArgs(['--requeue-alignment', '250ms']).requeueAlignMs, 250);
  assert.equal(configFromArgs(['--requeue-alignment=0']).requeueAlignMs, 0);
  assert.throws(() => configFromArgs(['--requeue-alignment', 'soon']), UsageError);
});
