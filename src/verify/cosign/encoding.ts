import { createHash } from 'node:crypto';
import { fail } from '../errors.ts';

const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Strict standard base64 that tolerates embedded whitespace (cosign annotations written by
 * c/image wrap at 76 columns). Anything else (URL alphabet, stray bytes, bad padding) is
 * malformed rather than silently skipped as Buffer.from(…, 'base64') would.
 */
export function decodeBase64(text: string, what: string): Buffer {
  const compact = text.replace(/[\r\n\t ]+/g, '');
  if (compact.length === 0) fail('malformed', `${what} is empty`);
  if (compact.length % 4 !== 0 || !B64_RE.test(compact)) fail('malformed', `${what} is not valid base64`);
  return Buffer.from(compact, 'base64');
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface PemBlock {
  type: string;
  der: Buffer;
}

/** Every PEM block in `text`, in order. Bodies must be valid base64. */
export function pemBlocks(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  for (const m of text.matchAll(re)) {
    const type = m[1] ?? '';
    const body = m[2] ?? '';
    out.push({ type, der: decodeBase64(body, `PEM ${type} body`) });
  }
  return out;
}

export function toPem(type: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${type}-----\n${b64}\n-----END ${type}-----\n`;
}
