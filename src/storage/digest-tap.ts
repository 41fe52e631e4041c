import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';

/** A pass-through that digests and counts what flows to the file, so nothing is read twice. */
export function digestTap(): { stream: PassThrough; result(): { digest: string; size: number } } {
  const hash = createHash('sha256');
  let size = 0;
  const stream = new PassThrough();
  stream.on('data', (c: Buffer) => {
    hash.update(c);
    size += c.length;
  });
  return { stream, result: () => ({ digest: `sha256:${hash.digest('hex')}`, size }) };
}
