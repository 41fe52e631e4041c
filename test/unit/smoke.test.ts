import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryError } from '../../src/oci/errors.ts';

test('type stripping loads project modules', () => {
  assert.equal(new RegistryError('x', 404).isNotFound, true);
});
