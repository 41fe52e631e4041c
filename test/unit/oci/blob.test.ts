// A layer whose digest does not match must be refused even when the tar reader finishes at the
// archive's end marker before the blob ends (this used to surface as a late, unhandled stream
// error that crashed the process).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { verifyingStream } from '../../../src/oci/client.ts';
import { extractTarGz, walk } from '../../../src/storage/archive.ts';

async function tarGz(): Promise<Buffer> {
  const pack = tar.pack();
  pack.entry({ name: 'a.txt' }, 'hello');
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  // Real tar writers pad to a 10 KiB record: plenty of bytes after the end marker.
  return gzipSync(Buffer.concat([...chunks, Buffer.alloc(8192)]));
}
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

test('extraction succeeds but verification fails for a wrong digest, with no unhandled error', async () => {
  const body = await tarGz();
  let unhandled: unknown;
  const onUnhandled = (e: unknown) => (unhandled = e);
  process.on('uncaughtException', onUnhandled);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'osc-blob-'));
  try {
    const bad = verifyingStream(Readable.from([body.subarray(0, 100), body.subarray(100)]), { mediaType: 'x', digest: `sha256:${'0'.repeat(64)}`, size: body.length });
    const x = await extractTarGz(bad.stream, dir, { limits: { artifactMaxSize: 0 } });
    await assert.rejects(bad.verified, /failed digest verification/);
    await x.cleanup();
    const good = verifyingStream(Readable.from([body]), { mediaType: 'x', digest: sha(body), size: body.length });
    const y = await extractTarGz(good.stream, dir, { limits: { artifactMaxSize: 0 } });
    await good.verified;
    assert.deepEqual([...walk(y.root)].map(([p]) => p), ['a.txt']);
    await y.cleanup();
    const short = verifyingStream(Readable.from([body]), { mediaType: 'x', digest: sha(body), size: body.length + 1 });
    await extractTarGz(short.stream, dir, { limits: { artifactMaxSize: 0 } }).then((z) => z.cleanup());
    await assert.rejects(short.verified, /descriptor says/);
    const long = verifyingStream(Readable.from([body]), { mediaType: 'x', digest: sha(body), size: 10 });
    await assert.rejects(extractTarGz(long.stream, dir, { limits: { artifactMaxSize: 0 } }));
    await assert.rejects(long.verified, /larger than its descriptor/);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(unhandled, undefined);
  } finally {
    process.off('uncaughtException', onUnhandled);
    rmSync(dir, { recursive: true, force: true });
  }
});
