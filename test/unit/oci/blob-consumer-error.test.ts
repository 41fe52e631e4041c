// Who is at fault when a blob download fails: a consumer whose write fails (ENOSPC on the work
// directory) gave up on the stream, and `verified` must say so (INCOMPLETE) instead of passing
// the write error off as the registry's; the registry's own failures keep their error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { verifyingStream } from '../../../src/oci/client.ts';
import { RegistryError } from '../../../src/oci/errors.ts';

const desc = { mediaType: 'x', digest: `sha256:${'0'.repeat(64)}`, size: 1 << 20 };
const chunks = () => Readable.from(Array.from({ length: 16 }, () => Buffer.alloc(64 << 10)));

test('a consumer whose write fails: verified is INCOMPLETE, carrying the write error', async () => {
  const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  const blob = verifyingStream(chunks(), desc);
  let n = 0;
  const disk = new Writable({ write: (_c, _e, cb) => cb(++n > 2 ? enospc : null) });
  await assert.rejects(pipeline(blob.stream, disk), /ENOSPC/);
  const err = await blob.verified.then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof RegistryError, String(err));
  assert.equal(err.code, 'INCOMPLETE');
  assert.equal(err.cause, enospc);
});

test('the registry connection failing mid-blob: verified rejects with that error', async () => {
  const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
  const source = new Readable({ read() {} });
  const blob = verifyingStream(source, desc);
  source.push(Buffer.alloc(1024));
  setImmediate(() => source.destroy(reset));
  await assert.rejects(pipeline(blob.stream, new Writable({ write: (_c, _e, cb) => cb() })));
  await assert.rejects(blob.verified, (e: unknown) => e === reset);
});
