import { gunzipSync } from 'node:zlib';

/** Entry names of a .tar.gz, in archive order (a minimal ustar reader for assertions). */
export function tarGzNames(tgz: Buffer): string[] {
  const tar = gunzipSync(tgz);
  const names: string[] = [];
  const field = (h: Buffer, start: number, end: number) => h.subarray(start, end).toString().replace(/\0.*$/s, '');
  for (let off = 0; off + 512 <= tar.length; ) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const prefix = field(h, 345, 500);
    const name = field(h, 0, 100);
    names.push(prefix ? `${prefix}/${name}` : name);
    off += 512 + Math.ceil(parseInt(field(h, 124, 136).trim() || '0', 8) / 512) * 512;
  }
  return names;
}
