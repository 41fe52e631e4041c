// Byte-level builders for malformed inputs: tar headers (ustar, GNU, PAX) written field by field,
// gzip streams (bombs, truncations, concatenations), CBOR and DER items with lying lengths or
// deep nesting, and JSON bombs. Libraries (tar-stream, cborg, asn1js) only write well-formed data,
// which is exactly what these cases must not be, so the few formats are encoded here directly.
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { createGzip, gzipSync } from 'node:zlib';

// ---------------------------------------------------------------------------------------------
// tar

export interface TarHeader {
  name: string | Buffer;
  /** Typeflag character: '0' file, '1' hard link, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo, 'x' PAX, 'g' global PAX, 'L'/'K' GNU long name/link, 'S' sparse, 'V' volume… */
  type?: string;
  size?: number;
  mode?: number;
  linkname?: string;
  /** ustar (default), gnu ("ustar  \0"), or none (v7, unknown to strict readers). */
  magic?: 'ustar' | 'gnu' | 'none';
  prefix?: string;
  /** Raw 12 bytes for the size field (e.g. base-256 encodings). */
  sizeField?: Buffer;
  /** A wrong checksum. */
  badChecksum?: boolean;
}

function octal(n: number, width: number): Buffer {
  const s = n.toString(8).padStart(width - 1, '0');
  return Buffer.from(s.length >= width ? s.slice(-width) : `${s}\0`, 'ascii');
}

/** One 512-byte header. */
export function tarHeader(h: TarHeader): Buffer {
  const b = Buffer.alloc(512);
  Buffer.from(h.name).copy(b, 0, 0, 100);
  octal(h.mode ?? 0o644, 8).copy(b, 100);
  octal(0, 8).copy(b, 108);
  octal(0, 8).copy(b, 116);
  (h.sizeField ?? octal(h.size ?? 0, 12)).copy(b, 124, 0, 12);
  octal(1_600_000_000, 12).copy(b, 136);
  b.write(h.type ?? '0', 156, 'ascii');
  if (h.linkname) Buffer.from(h.linkname).copy(b, 157, 0, 100);
  const magic = h.magic ?? 'ustar';
  if (magic === 'ustar') {
    b.write('ustar\0', 257, 'ascii');
    b.write('00', 263, 'ascii');
  } else if (magic === 'gnu') {
    b.write('ustar ', 257, 'ascii');
    b.write(' \0', 263, 'ascii');
  }
  if (h.prefix) Buffer.from(h.prefix).copy(b, 345, 0, 155);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  if (h.badChecksum) sum += 1;
  Buffer.from(`${sum.toString(8).padStart(6, '0')}\0 `, 'ascii').copy(b, 148);
  return b;
}

const pad = (n: number): Buffer => Buffer.alloc((512 - (n % 512)) % 512);

/** Header + body + padding; the size field says `size` (default: the body's length). */
export function tarEntry(h: TarHeader, body: Buffer | string = Buffer.alloc(0)): Buffer {
  const data = Buffer.from(body);
  return Buffer.concat([tarHeader({ ...h, size: h.size ?? data.length }), data, pad(data.length)]);
}

/** A PAX record "<len> key=value\n" whose length counts itself. */
export function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  const n = Buffer.byteLength(body);
  let len = n + String(n).length;
  if (String(len).length !== String(n).length) len = n + String(len).length;
  return Buffer.from(`${len}${body}`);
}

/** An extended header ('x', or 'g' for global) carrying `records`, raw or as key/value pairs. */
export function paxHeader(records: [string, string][] | Buffer, global = false): Buffer {
  const body = Buffer.isBuffer(records) ? records : Buffer.concat(records.map(([k, v]) => paxRecord(k, v)));
  return tarEntry({ name: global ? 'pax_global_header' : 'PaxHeaders/x', type: global ? 'g' : 'x' }, body);
}

/** A GNU long name ('L') or long link ('K') pseudo-entry. */
export function gnuLong(value: string | Buffer, kind: 'L' | 'K' = 'L', size?: number): Buffer {
  const data = Buffer.concat([Buffer.from(value), Buffer.from([0])]);
  return tarEntry({ name: '././@LongLink', type: kind, magic: 'gnu', ...(size !== undefined ? { size } : {}) }, data);
}

export const tarEnd = (): Buffer => Buffer.alloc(1024);

export function tarOf(...parts: Buffer[]): Buffer {
  return Buffer.concat([...parts, tarEnd()]);
}

export const gz = (b: Buffer): Buffer => gzipSync(b);

/** gzip of a stream of parts (for inputs too large to hold: bombs of zeros). */
export async function gzStream(parts: Iterable<Buffer>, level = 9): Promise<Buffer> {
  return buffer(Readable.from(parts).pipe(createGzip({ level })));
}

/** `n` bytes of zeros in 1 MiB chunks (one chunk reused). */
export function* zeros(n: number): Generator<Buffer> {
  const chunk = Buffer.alloc(1 << 20);
  for (let left = n; left > 0; left -= chunk.length) yield left >= chunk.length ? chunk : chunk.subarray(0, left);
}

/** A tar.gz of regular files (path → content), the shape of every good artifact. */
export function tgzFiles(files: Record<string, string | Buffer>): Buffer {
  return gz(tarOf(...Object.entries(files).map(([name, body]) => tarEntry({ name }, body))));
}

// ---------------------------------------------------------------------------------------------
// CBOR (RFC 8949): heads with any argument, including lengths that lie.

export function cborHead(major: number, arg: number | bigint): Buffer {
  const mt = major << 5;
  const n = BigInt(arg);
  if (n < 24n) return Buffer.from([mt | Number(n)]);
  if (n < 0x100n) return Buffer.from([mt | 24, Number(n)]);
  if (n < 0x10000n) return Buffer.from([mt | 25, Number(n >> 8n), Number(n & 0xffn)]);
  if (n < 0x100000000n) {
    const b = Buffer.alloc(5);
    b[0] = mt | 26;
    b.writeUInt32BE(Number(n), 1);
    return b;
  }
  const b = Buffer.alloc(9);
  b[0] = mt | 27;
  b.writeBigUInt64BE(n, 1);
  return b;
}
export const cborBytes = (b: Buffer): Buffer => Buffer.concat([cborHead(2, b.length), b]);
export const cborText = (s: string): Buffer => Buffer.concat([cborHead(3, Buffer.byteLength(s)), Buffer.from(s)]);
export const cborArray = (...items: Buffer[]): Buffer => Buffer.concat([cborHead(4, items.length), ...items]);
export const cborMap = (...pairs: [Buffer, Buffer][]): Buffer => Buffer.concat([cborHead(5, pairs.length), ...pairs.flat()]);
export const cborUint = (n: number): Buffer => cborHead(0, n);
export const cborNeg = (n: number): Buffer => cborHead(1, -1 - n);
/** COSE_Sign1: tag 18 around [protected, unprotected, payload, signature]. */
export const coseSign1 = (body: Buffer): Buffer => Buffer.concat([cborHead(6, 18), body]);

// ---------------------------------------------------------------------------------------------
// DER / BER

export function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
export const der = (tag: number, content: Buffer): Buffer => Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);
export const derSeq = (...items: Buffer[]): Buffer => der(0x30, Buffer.concat(items));

/** SEQUENCE { SEQUENCE { … NULL } } `depth` levels deep (headers computed from the inside out, written once). */
export function derNested(depth: number, tag = 0x30): Buffer {
  const inner = Buffer.from([0x05, 0x00]);
  const heads: Buffer[] = [];
  let len = inner.length;
  for (let i = 0; i < depth; i++) {
    const h = Buffer.concat([Buffer.from([tag]), derLength(len)]);
    heads.push(h);
    len += h.length;
  }
  return Buffer.concat([...heads.reverse(), inner]);
}

/** An OBJECT IDENTIFIER with `arcs` sub-identifiers (1.2.1.1.1…). */
export function derLongOid(arcs: number): Buffer {
  return der(0x06, Buffer.concat([Buffer.from([0x2a]), Buffer.alloc(arcs, 0x01)]));
}

// ---------------------------------------------------------------------------------------------
// JSON

export const jsonDeepArrays = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);
export const jsonDeepObjects = (depth: number): string => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
