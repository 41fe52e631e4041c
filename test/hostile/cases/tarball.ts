// Tarball attacks on the artifact layer. The tenant (or whoever publishes) signed the artifact,
// so verification passes and the layer reaches extraction: every case must be refused there,
// with nothing written outside storage, whatever the tar format trick.
import { cliPull, layerFailed, type CaseContext, type HostileCase } from '../types.ts';
import { gnuLong, gz, gzStream, paxHeader, paxRecord, tarEnd, tarEntry, tarHeader, tarOf, zeros } from '../bytes.ts';
import { budget, climbTo, inSentinel, signedLayer } from './common.ts';

// What a user must be told (and can act on: the entry, and what is wrong with it).
const Traversal = /escapes the archive root/;
const Absolute = /absolute path/;
const LinkOut = /outside the archive root/;
const Special = /unsupported type/;
const NotGzip = /not a valid gzip-compressed tarball/;
const NotTar = /not a valid (gzip-compressed )?tarball/;
const TooBig = /limit artifactMaxSize; raise it with --artifact-max-size/;
const TooDeep = /limit tarMaxPath(Length|Depth)/;
const TooManyEntries = /limit tarMaxEntries; raise it with --tar-max-entries/;
const Header = /limit tarMaxHeaderSize/;
const Conflict = /which is a file|both as a file and a directory/;

type Build = (ctx: CaseContext) => Buffer | Promise<Buffer>;

/** Cases also run through `pull` (each CLI run is a process start: a sample of every kind). */
const ThroughCLI = new Set(['dotdot', 'dotdot-gnu-longname', 'abs-etc', 'symlink-abs', 'hardlink-dotdot', 'chardev', 'depth-pax-80000', 'entries-over-budget', 'gzip-bomb-one-file', 'gzip-concat-traversal', 'gzip-truncated-half', 'size-pax-1tib', 'file-then-dir']);

/**
 * The entry budget is hit after 100,000 entries were written to the work directory; on a loaded
 * 2-core machine that alone can take longer than the default 20 s spec.timeout.
 */
const EntriesTimeout = '2m';

function tarCase(id: string, title: string, build: Build, message: RegExp, extra: Partial<HostileCase> = {}): HostileCase {
  return {
    id: `tar-${id}`,
    category: 'tarball',
    title,
    attacker: 'registry',
    profile: 'cosign-key',
    attack: { kind: 'push', run: async (ctx) => void (await signedLayer(ctx, await build(ctx))) },
    expect: layerFailed(message),
    ...(ThroughCLI.has(id) ? { cli: cliPull(message) } : {}),
    ...extra,
  };
}

const file = (name: string, body = 'pwned\n') => tarEntry({ name }, body);
const ok = () => file('ok.yaml', 'kind: ConfigMap\n');

/** `n` path components "a/a/…/f" (2n+1 bytes). */
const deep = (n: number): string => 'a/'.repeat(n) + 'f';

export function tarballCases(): HostileCase[] {
  const entries = budget('tarMaxEntries', 100_000);
  return [
    // Traversal.
    tarCase('dotdot', "a file named '../pwned'", () => gz(tarOf(ok(), file('../pwned'))), Traversal),
    tarCase('dotdot-nested', "a file named 'a/b/../../../pwned'", () => gz(tarOf(file('a/b/../../../pwned'))), Traversal),
    tarCase('dotdot-sentinel', 'a file whose ../ path climbs to a directory outside storage', (ctx) => gz(tarOf(tarEntry({ name: 'x' }, ''), paxHeader([['path', climbTo(ctx, 'pwned-dotdot')]]), file('placeholder'))), Traversal),
    tarCase('dotdot-dir', "a directory entry '../evil/'", () => gz(tarOf(tarEntry({ name: '../evil/', type: '5' }))), Traversal),
    tarCase('dotdot-bare', "a directory entry named '..'", () => gz(tarOf(tarEntry({ name: '..', type: '5' }))), Traversal),
    tarCase('dotdot-dot-slash', "a file named './../pwned'", () => gz(tarOf(file('./../pwned'))), Traversal),
    tarCase('dotdot-prefix-field', "ustar prefix field '../..' with name 'pwned'", () => gz(tarOf(tarEntry({ name: 'pwned', prefix: '../..' }, 'x'))), Traversal),
    tarCase('dotdot-pax-path', "a PAX path '../pwned' over a harmless ustar name", () => gz(tarOf(paxHeader([['path', '../pwned']]), file('harmless'))), Traversal),
    tarCase('dotdot-gnu-longname', 'a GNU long name climbing 40 directories', () => gz(tarOf(gnuLong('../'.repeat(40) + 'pwned'), tarEntry({ name: 'short', magic: 'gnu' }, 'x'))), Traversal),
    tarCase('dotdot-hardlink-name', "a hard link entry named '../x'", () => gz(tarOf(ok(), tarEntry({ name: '../x', type: '1', linkname: 'ok.yaml' }))), Traversal),
    tarCase('dotdot-middle', "a file named 'a/./../../pwned'", () => gz(tarOf(file('a/./../../pwned'))), Traversal),
    tarCase('backslash', "a file named '..\\\\..\\\\pwned' (Windows separators)", () => gz(tarOf(file('..\\..\\pwned'))), /backslash|escapes the archive root/),
    tarCase('nul-name', "a PAX path 'ok/../../pwned<NUL>x' (refused whether or not a reader stops at the NUL)", () => gz(tarOf(paxHeader([['path', 'ok/../../pwned\0x']]), file('harmless'))), /NUL|escapes the archive root/),

    // Absolute names.
    // Absolute targets point into the sentinel directory: the corpus may run as root.
    tarCase('abs-etc', "a file named '<sentinel>/etc/cron.d/pwned' (an absolute path)", (ctx) => gz(tarOf(tarEntry({ name: 'x' }), paxHeader([['path', inSentinel(ctx, 'etc/cron.d/pwned')]]), file('placeholder'))), Absolute),
    tarCase('abs-sentinel', 'an absolute path into a directory outside storage', (ctx) => gz(tarOf(tarEntry({ name: 'x' }), paxHeader([['path', inSentinel(ctx, 'pwned-abs')]]), file('placeholder'))), Absolute),
    tarCase('abs-double-slash', "a file named '//pwned'", () => gz(tarOf(file('//pwned'))), Absolute),
    tarCase('abs-windows', "a file named 'C:\\\\pwned'", () => gz(tarOf(file('C:\\pwned'))), /absolute path|backslash/),
    tarCase('abs-windows-slash', "a file named 'C:/pwned'", () => gz(tarOf(file('C:/pwned'))), Absolute),
    tarCase('abs-dir', "a directory entry '/tmp/'", () => gz(tarOf(tarEntry({ name: '/tmp/', type: '5' }))), Absolute),

    // Links out of the tree.
    tarCase('symlink-abs', 'a symlink to a directory outside storage', (ctx) => gz(tarOf(tarEntry({ name: 'link', type: '2', linkname: ctx.world.sentinel }))), LinkOut),
    tarCase('symlink-dotdot', "a symlink to '../../../../'", () => gz(tarOf(tarEntry({ name: 'link', type: '2', linkname: '../../../../' }))), LinkOut),
    tarCase('symlink-then-write', 'a symlink out of the tree, then a file written through it', (ctx) => gz(tarOf(tarEntry({ name: 'd', type: '2', linkname: ctx.world.sentinel }), file('d/pwned-through-link'))), LinkOut),
    tarCase('symlink-climb-inside', "a symlink 'sub/a' → 'b/../../../x' that leaves the tree after normalising", () => gz(tarOf(tarEntry({ name: 'sub/', type: '5' }), tarEntry({ name: 'sub/a', type: '2', linkname: 'b/../../../x' }))), LinkOut),
    tarCase('symlink-pax-linkpath', 'a symlink whose PAX linkpath is absolute (the ustar linkname is harmless)', (ctx) => gz(tarOf(paxHeader([['linkpath', ctx.world.sentinel]]), tarEntry({ name: 'link', type: '2', linkname: 'harmless' }))), LinkOut),
    tarCase('symlink-gnu-longlink', 'a symlink whose GNU long link climbs 50 directories', () => gz(tarOf(gnuLong('../'.repeat(50) + 'etc', 'K'), tarEntry({ name: 'link', type: '2', linkname: 'x', magic: 'gnu' }))), LinkOut),
    tarCase('hardlink-abs', 'a hard link to an absolute path outside storage', (ctx) => gz(tarOf(tarEntry({ name: 'h', type: '1', linkname: 'x' }), paxHeader([['linkpath', inSentinel(ctx, 'passwd')]]), tarEntry({ name: 'h2', type: '1', linkname: 'x' }))), LinkOut),
    tarCase('hardlink-dotdot', "a hard link to '../../outside'", () => gz(tarOf(tarEntry({ name: 'h', type: '1', linkname: '../../outside' }))), LinkOut),
    tarCase('hardlink-sentinel', 'a hard link to a file outside storage (climbing)', (ctx) => gz(tarOf(tarEntry({ name: 'h', type: '1', linkname: 'x' }), paxHeader([['linkpath', climbTo(ctx, 'target')]]), tarEntry({ name: 'h2', type: '1', linkname: 'x' }))), LinkOut),

    // Devices, FIFOs and other special entries.
    tarCase('chardev', 'a character device (like /dev/mem)', () => gz(tarOf(tarEntry({ name: 'mem', type: '3' }))), Special),
    tarCase('blockdev', 'a block device (like /dev/sda)', () => gz(tarOf(tarEntry({ name: 'sda', type: '4' }))), Special),
    tarCase('fifo', 'a FIFO', () => gz(tarOf(tarEntry({ name: 'pipe', type: '6' }))), Special),
    tarCase('gnu-sparse', 'a GNU sparse file', () => gz(tarOf(tarEntry({ name: 'sparse', type: 'S', magic: 'gnu' }, 'x'))), Special),
    tarCase('gnu-volume', 'a GNU volume header', () => gz(tarOf(tarEntry({ name: 'vol', type: 'V', magic: 'gnu' }))), Special),
    tarCase('unknown-type', "an entry of type 'Z'", () => gz(tarOf(tarEntry({ name: 'z', type: 'Z' }, 'x'))), Special),

    // Depth and name length: linear work or a clear refusal, never quadratic.
    tarCase('depth-pax-80000', 'one entry whose PAX path has 80,000 components (a 375-byte layer)', () => gz(tarOf(paxHeader([['path', deep(80_000)]]), file('f', 'x'))), TooDeep, { item: 1, solo: true }),
    tarCase('depth-pax-10000', 'one entry whose PAX path has 10,000 components', () => gz(tarOf(paxHeader([['path', deep(10_000)]]), file('f', 'x'))), TooDeep, { solo: true }),
    tarCase('depth-gnu-80000', 'one entry whose GNU long name has 80,000 components', () => gz(tarOf(gnuLong(deep(80_000)), tarEntry({ name: 'f', magic: 'gnu' }, 'x'))), TooDeep, { solo: true }),
    tarCase('depth-dirs-5000', '5,000 nested directory entries, each a separate entry', () => {
      const parts: Buffer[] = [];
      for (let i = 1; i <= 5000; i++) parts.push(paxHeader([['path', 'd/'.repeat(i)]]), tarEntry({ name: 'dir/', type: '5' }));
      return gz(tarOf(...parts));
    }, TooDeep, { solo: true }),
    tarCase('long-component', 'a file name of 300,000 bytes in one component', () => gz(tarOf(paxHeader([['path', 'n'.repeat(300_000)]]), file('f', 'x'))), TooDeep),
    tarCase('pax-header-4mib', 'an extended header of 4 MiB of comment records', () => gz(tarOf(paxHeader(Buffer.concat(Array.from({ length: 4000 }, () => paxRecord('comment', 'c'.repeat(1000))))), file('f', 'x'))), Header),
    tarCase('gnu-longname-huge', 'a GNU long-name entry claiming 100 MiB', () => gz(Buffer.concat([tarHeader({ name: '././@LongLink', type: 'L', magic: 'gnu', size: 100 << 20 }), Buffer.alloc(1 << 20, 0x61), tarEnd()])), /limit tarMaxHeaderSize|not a valid tarball/),

    // Entry count.
    tarCase('entries-over-budget', `${entries + 1} empty files (the entry budget is ${entries})`, () => gzStream((function* () {
      for (let i = 0; i <= entries; i++) yield tarHeader({ name: `f${i}` });
      yield tarEnd();
    })(), 6), TooManyEntries, { solo: true, timeout: EntriesTimeout }),
    tarCase('entries-links-over-budget', `${entries + 1} harmless symlinks (dropped links count too)`, () => gzStream((function* () {
      yield tarEntry({ name: 't' }, 'x');
      for (let i = 0; i < entries; i++) yield tarHeader({ name: `l${i}`, type: '2', linkname: 't' });
      yield tarEnd();
    })(), 6), TooManyEntries, { solo: true, timeout: EntriesTimeout }),

    // Decompression bombs (the corpus runs with --artifact-max-size 64Mi).
    tarCase('gzip-bomb-one-file', 'one file of 200 MiB of zeros (a 200 KiB layer)', () => gzStream([tarHeader({ name: 'zeros', size: 200 << 20 }), ...zeros(200 << 20), tarEnd()]), TooBig, { solo: true }),
    tarCase('gzip-bomb-many-files', '200 files of 1 MiB of zeros', () => gzStream((function* () {
      for (let i = 0; i < 200; i++) yield* [tarHeader({ name: `z${i}`, size: 1 << 20 }), ...zeros(1 << 20)];
      yield tarEnd();
    })()), TooBig, { solo: true }),
    tarCase('size-pax-1tib', 'a PAX size of 1 TiB on a tiny entry', () => gz(tarOf(paxHeader([['size', String(2 ** 40)]]), file('f', 'x'))), /limit (artifactMaxSize|tarMaxSize)|not a valid tarball/),
    tarCase('size-base256', 'a base-256 size field of 2^62 bytes', () => {
      const f = Buffer.alloc(12);
      f[0] = 0x80;
      f.writeBigUInt64BE(2n ** 62n, 4);
      return gz(tarOf(tarEntry({ name: 'f', sizeField: f }, 'x')));
    }, /--artifact-max-size|tarball|header|size/),
    tarCase('gzip-concat-bomb', 'a small gzip member followed by a second member of 200 MiB of zeros', async () => Buffer.concat([gz(tarEntry({ name: 'a' }, 'a')), await gzStream([tarHeader({ name: 'zeros', size: 200 << 20 }), ...zeros(200 << 20), tarEnd()])]), TooBig, { solo: true }),

    // Broken gzip and tar streams.
    tarCase('gzip-truncated-half', 'a gzip stream cut in the middle', () => {
      const b = gz(tarOf(file('a.yaml', 'x'.repeat(50_000))));
      return b.subarray(0, b.length >> 1);
    }, NotTar),
    tarCase('gzip-truncated-trailer', 'a gzip stream without its 8-byte trailer', () => {
      const b = gz(tarOf(file('a.yaml', 'x')));
      return b.subarray(0, b.length - 8);
    }, NotTar),
    tarCase('gzip-bad-crc', 'a gzip stream with a wrong CRC-32', () => {
      const b = Buffer.from(gz(tarOf(file('a.yaml', 'x'))));
      b[b.length - 8]! ^= 0xff;
      return b;
    }, NotGzip),
    tarCase('gzip-bad-isize', 'a gzip stream with a wrong length trailer', () => {
      const b = Buffer.from(gz(tarOf(file('a.yaml', 'x'))));
      b[b.length - 1]! ^= 0x01;
      return b;
    }, NotGzip),
    tarCase('gzip-concat-traversal', 'a second gzip member carrying ../pwned after a harmless first one', () => Buffer.concat([gz(ok()), gz(tarOf(file('../pwned-second-member')))]), Traversal),
    tarCase('not-gzip', 'an uncompressed tar where tar+gzip is announced', () => tarOf(ok()), NotGzip),
    tarCase('empty-layer', 'a layer of zero bytes', () => Buffer.alloc(0), NotTar),
    tarCase('raw-deflate', 'raw deflate data without the gzip wrapper', async () => (await import('node:zlib')).deflateRawSync(tarOf(ok())), NotGzip),
    tarCase('tar-truncated-body', 'an entry whose body stops 990 bytes short', () => gz(Buffer.concat([tarHeader({ name: 'f', size: 1000 }), Buffer.alloc(10, 0x61)])), NotTar),
    tarCase('tar-bad-checksum', 'a header with a wrong checksum', () => gz(tarOf(tarEntry({ name: 'f', badChecksum: true }, 'x'))), NotTar),

    // Conflicting entries.
    tarCase('file-then-dir', "'a' as a file, then 'a/b' below it", () => gz(tarOf(file('a'), file('a/b'))), Conflict),
    tarCase('dir-then-file', "'a/' as a directory, then 'a' as a file", () => gz(tarOf(tarEntry({ name: 'a/', type: '5' }), file('a'))), Conflict),
  ];
}
