// Tar layers no well-behaved writer produces, built by hand (headers, PAX records, padding), for
// the hostile-input tests and bench/hostile.ts.
import { gzipSync } from 'node:zlib';

/** A ustar header block; `name` is cut to 99 bytes (long names go in a PAX record). */
export function tarHeader(name: string, type: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name.slice(0, 99), 0);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write(type, 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return h;
}
/** Pads to the 512-byte block size. */
export const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);
/** One PAX record "LEN key=value\n", LEN counting itself. */
export function record(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body);
  len += String(len + String(len).length).length;
  return `${len}${body}`;
}
/** A PAX header carrying `pax`, then a file entry `name` holding `body`. */
export function paxEntry(pax: string, name: string, body: string): Buffer[] {
  const p = Buffer.from(pax);
  return [tarHeader('PaxHeader', 'x', p.length), pad(p), tarHeader(name, '0', body.length), pad(Buffer.from(body))];
}

/** The end-of-archive marker after `parts`, gzip-compressed. */
export function tarGz(parts: Buffer[]): Buffer {
  return gzipSync(Buffer.concat([...parts, Buffer.alloc(1024)]), { level: 9 });
}

/** Issue 7 item 1: one entry whose PAX path is 'a/' repeated `components` times (a few hundred bytes). */
export function deepPathLayer(components: number): Buffer {
  return tarGz(paxEntry(record('path', 'a/'.repeat(components) + 'f'), 'f', 'x'));
}

/** A global PAX header of `records` records, then `entries` files, each with its own PAX header. */
export function globalPaxLayer(records: number, entries: number): Buffer {
  let g = '';
  for (let i = 0; i < records; i++) g += record(`k${i}`, 'v');
  const gb = Buffer.from(g);
  const parts: Buffer[] = [tarHeader('GlobalHead', 'g', gb.length), pad(gb)];
  for (let i = 0; i < entries; i++) parts.push(...paxEntry(record('path', `f${i}`), 'f', 'x'));
  return tarGz(parts);
}

/** `entries` files, each `depth` components deep under its own top directory (all parents implied). */
export function deepLegalLayer(entries: number, depth: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < entries; i++) parts.push(...paxEntry(record('path', `r${i}/` + 'a/'.repeat(depth - 2) + 'f'), 'f', 'x'));
  return tarGz(parts);
}

