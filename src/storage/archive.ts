// Safe extraction of a tar+gzip layer and a reproducible re-pack.
//
// Entries are never written at paths taken from the archive: each regular file goes to a temp
// file named by a counter, and the archive path lives only in memory. So a hostile name cannot
// reach the filesystem; it is still rejected, because a consumer unpacking our output would be
// exposed to it.
//
// Every step is linear in the input and bounded by a budget (src/api/limits.ts): paths are kept
// as a tree of components (an entry with N components costs O(N), not one string per parent),
// header sizes, path length and depth, entry count and the decompressed size are checked as the
// stream is read. Decompression runs on libuv's thread pool (node:zlib) and parsing works one
// chunk at a time, so a hostile layer never holds the event loop for long.
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { once } from 'node:events';
import { Transform, type Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { createGunzip, createGzip, constants as zlibConstants } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import tarStream from 'tar-stream';
import { exceeded, limitError, limitsWith, type Limits } from '../api/limits.ts';
import { digestTap } from './digest-tap.ts';
import { buildIgnore, isIgnored } from './ignore.ts';

export class ArchiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArchiveError';
  }
}

export interface ExtractOptions {
  /** Budgets (defaults from DefaultLimits): artifactMaxSize and the tar* ones. */
  limits?: Partial<Limits>;
  /**
   * Bytes of file content kept in memory (files up to 1 MiB each); the rest goes to temp files.
   * Thousands of small manifests are the common case, and a round trip to disk per file is what
   * dominated extraction time.
   */
  memoryBudget?: number;
}

const MaxInMemoryFile = 1 << 20;

export interface FileEntry {
  kind: 'file';
  mode: number;
  size: number;
  /** Small files stay in memory (within a budget); larger ones are spilled to `tmp`. */
  data?: Buffer;
  tmp?: string;
}
export interface DirEntry {
  kind: 'dir';
  /** Component name → entry. */
  children: Map<string, Entry>;
}
export type Entry = FileEntry | DirEntry;

export interface Extracted {
  /** The archive's tree (normalised relative paths; parents implied by entries are directories). */
  root: DirEntry;
  tmpDir: string;
  /** Links inside the root that were dropped (the re-packed artifact has regular files only). */
  droppedLinks: string[];
  /** `.sourceignore` files by their directory ('' for the root), noted while extracting so packing need not search. */
  sourceIgnores: Map<string, FileEntry>;
  cleanup(): Promise<void>;
}

/** Validates and normalises an archive path; throws ArchiveError for anything unsafe. */
export function safeEntryName(name: string): string {
  return entryParts(name).join('/');
}

function entryParts(name: string): string[] {
  if (name.includes('\0')) throw new ArchiveError(`tar entry name contains a NUL byte`);
  if (name.startsWith('/') || /^[A-Za-z]:[\\/]/.test(name)) throw new ArchiveError(`tar entry '${name}' has an absolute path`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) throw new ArchiveError(`tar entry '${name}' escapes the archive root ('..')`);
  if (parts.some((p) => p.includes('\\'))) throw new ArchiveError(`tar entry '${name}' contains a backslash`);
  return parts;
}

/** Path length is checked before a path is split or normalised, so a 1 MiB PAX name costs one scan. */
function checkLength(name: string, what: string, limits: Limits): void {
  const bytes = Buffer.byteLength(name);
  if (bytes > limits.tarMaxPathLength) exceeded('tarMaxPathLength', `tar entry ${what} '${short(name)}' is ${bytes} bytes long, over ${limits.tarMaxPathLength}`);
}

function checkedParts(name: string, limits: Limits): string[] {
  checkLength(name, 'path', limits);
  const parts = entryParts(name);
  if (parts.length > limits.tarMaxPathDepth) exceeded('tarMaxPathDepth', `tar entry '${short(name)}' has ${parts.length} path components, over ${limits.tarMaxPathDepth}`);
  return parts;
}

const short = (s: string) => (s.length > 80 ? `${s.slice(0, 80)}…` : s);

/** True when a link at `entry` pointing to `target` stays inside the root. */
function linkStaysInside(entry: string, target: string, hard: boolean): boolean {
  if (target.startsWith('/')) return false;
  const base = hard ? '' : path.posix.dirname(entry);
  const resolved = path.posix.normalize(path.posix.join(base === '.' ? '' : base, target));
  return resolved !== '..' && !resolved.startsWith('../') && !path.posix.isAbsolute(resolved);
}

// node-tar's names for the special types, as messages have always called them.
const SpecialTypes: Record<string, string> = { CharacterDevice: 'character-device', BlockDevice: 'block-device', FIFO: 'fifo' };

/**
 * Unpacks a gzip-compressed tar stream into memory and a temp dir under `workDir`. The source is
 * read to its end even when the archive's end marker comes first (a verifying source can finish
 * its digest check), within the tarMaxSize budget.
 */
export async function extractTarGz(source: Readable, workDir: string, opts: ExtractOptions = {}): Promise<Extracted> {
  const limits = limitsWith(opts.limits);
  const memoryBudget = opts.memoryBudget ?? 256 << 20;
  const tmpDir = await mkdtemp(path.join(workDir, 'extract-'));
  const root: DirEntry = { kind: 'dir', children: new Map() };
  const droppedLinks: string[] = [];
  const sourceIgnores = new Map<string, FileEntry>();
  const cleanup = () => rm(tmpDir, { recursive: true, force: true });
  let entries = 0;
  let total = 0;
  let inMemory = 0;
  const spills: Promise<unknown>[] = [];
  const outs: WriteStream[] = [];

  // Parent directories an entry implies count as entries: they are what a deep path costs.
  const countEntry = () => {
    if (++entries > limits.tarMaxEntries) exceeded('tarMaxEntries', `layer has more than ${limits.tarMaxEntries} tar entries (parent directories included)`);
  };
  const parentOf = (parts: string[], name: string): DirEntry => {
    let dir = root;
    for (let i = 0; i < parts.length - 1; i++) {
      let child = dir.children.get(parts[i]!);
      if (!child) {
        countEntry();
        child = { kind: 'dir', children: new Map() };
        dir.children.set(parts[i]!, child);
      } else if (child.kind !== 'dir') {
        throw new ArchiveError(`tar entry '${short(name)}' is below '${short(parts.slice(0, i + 1).join('/'))}', which is a file`);
      }
      dir = child;
    }
    return dir;
  };
  const add = (parts: string[], name: string, e: FileEntry | 'dir'): void => {
    const dir = parentOf(parts, name);
    const last = parts[parts.length - 1]!;
    const prev = dir.children.get(last);
    if (prev && (prev.kind === 'dir') !== (e === 'dir')) throw new ArchiveError(`tar entry '${short(name)}' appears both as a file and a directory`);
    if (e !== 'dir') dir.children.set(last, e);
    else if (!prev) dir.children.set(last, { kind: 'dir', children: new Map() });
  };

  const onEntry = (entry: ReadEntry): void => {
    countEntry();
    const name = entry.path;
    const parts = checkedParts(name, limits);
    switch (entry.type) {
      case 'Directory':
        if (parts.length) add(parts, name, 'dir');
        entry.resume();
        return;
      case 'File':
      case 'OldFile':
      case 'ContiguousFile': {
        if (!parts.length) throw new ArchiveError(`tar file entry with an empty name`);
        const size = entry.size;
        total += size;
        if (limits.artifactMaxSize > 0 && total > limits.artifactMaxSize) {
          exceeded('artifactMaxSize', `artifact exceeds the maximum size of ${limits.artifactMaxSize} bytes`);
        }
        const file: FileEntry = { kind: 'file', mode: entry.mode ?? 0o644, size };
        add(parts, name, file);
        if (parts[parts.length - 1] === '.sourceignore') sourceIgnores.set(parts.slice(0, -1).join('/'), file);
        if (size <= MaxInMemoryFile && inMemory + size <= memoryBudget) {
          inMemory += size;
          const chunks: Buffer[] = [];
          entry.on('data', (c: Buffer) => chunks.push(c));
          entry.on('end', () => (file.data = Buffer.concat(chunks)));
        } else {
          file.tmp = path.join(tmpDir, String(entries));
          const out = createWriteStream(file.tmp, { mode: 0o600 });
          entry.pipe(out);
          outs.push(out);
          const written = finished(out);
          written.catch(() => undefined); // reported when awaited below
          spills.push(written);
        }
        return;
      }
      case 'SymbolicLink':
      case 'Link': {
        const target = entry.linkpath ?? '';
        checkLength(target, 'link target', limits);
        if (!linkStaysInside(parts.join('/'), target, entry.type === 'Link')) {
          throw new ArchiveError(`tar entry '${short(name)}' is a link to '${short(target)}', outside the archive root`);
        }
        droppedLinks.push(parts.join('/'));
        entry.resume();
        return;
      }
      default:
        throw new ArchiveError(`tar entry '${short(name)}' has unsupported type '${SpecialTypes[entry.type] ?? entry.type}' (devices, FIFOs and other special files are refused)`);
    }
  };

  // Strict: anything node-tar would only warn about (bad checksum, truncation, not a tarball) fails.
  // zstd:false because the gunzip below is the only decompression we allow.
  const parser = new Parser({ strict: true, maxMetaEntrySize: limits.tarMaxHeaderSize, zstd: false });
  let failure: Error | undefined;
  let onFailure: (err: Error) => void = () => undefined;
  const fail = (err: Error) => {
    if (failure) return;
    failure = err;
    onFailure(err);
    // A fresh error: node-tar decorates the one it is given.
    parser.abort(new Error('extraction stopped'));
  };
  const failed = new Promise<never>((_, reject) => (onFailure = reject));
  failed.catch(() => undefined);
  // An archive of nothing but its end marker is empty, not invalid (node-tar, strict, says otherwise).
  let sawEnd = false;
  parser.on('eof', () => (sawEnd = true));
  parser.on('error', (err: Error) => {
    if (sawEnd && entries === 0 && /Unrecognized archive format/.test(err.message)) return;
    fail(toArchiveError(err));
  });
  parser.on('entry', (entry: ReadEntry) => {
    try {
      onEntry(entry);
    } catch (err) {
      entry.resume();
      fail(err as Error);
    }
  });
  parser.on('ignoredEntry', (entry: ReadEntry) => {
    if (entry.meta) fail(limitError('tarMaxHeaderSize', `tar ${entry.type} header of ${entry.size} bytes is over ${limits.tarMaxHeaderSize}`));
    else fail(new ArchiveError(`tar entry '${short(entry.path)}' has unsupported type '${entry.type}'`));
  });
  const parsed = new Promise<void>((resolve) => parser.on('end', () => resolve()));
  const drained = () => Promise.race([new Promise<void>((resolve) => parser.once('drain', () => resolve())), failed]);

  let tarBytes = 0;
  let head: Buffer | undefined = Buffer.alloc(0);
  const feed = async (chunks: AsyncIterable<Buffer>) => {
    for await (let c of chunks) {
      if (failure) throw failure;
      tarBytes += c.length;
      if (limits.tarMaxSize > 0 && tarBytes > limits.tarMaxSize) {
        exceeded('tarMaxSize', `layer decompresses to more than ${limits.tarMaxSize} bytes of tar data`);
      }
      if (head) {
        // node-tar would inflate a nested gzip stream itself, on the main thread and outside
        // our budgets: a tarball never starts with gzip's magic bytes, so refuse it here.
        head = Buffer.concat([head, c]);
        if (head.length < 2) continue;
        if (head[0] === 0x1f && head[1] === 0x8b) throw new ArchiveError('layer is gzip-compressed twice, not a gzip-compressed tarball');
        c = head;
        head = undefined;
      }
      if (!parser.write(c)) await drained();
    }
    if (failure) throw failure;
    if (head?.length) parser.write(head);
    parser.end();
  };

  try {
    await pipeline(source, createGunzip({ chunkSize: 64 << 10 }), feed).catch((err: Error) => {
      throw failure ?? toArchiveError(err);
    });
    await Promise.race([parsed, failed]);
    await Promise.race([Promise.all(spills), failed]);
    if (failure) throw failure;
  } catch (err) {
    fail(err as Error);
    for (const o of outs) o.destroy();
    await Promise.allSettled(spills);
    await cleanup();
    throw failure ?? err;
  }
  return { root, tmpDir, droppedLinks, sourceIgnores, cleanup };
}

function toArchiveError(err: Error): Error {
  if (err instanceof ArchiveError || err.name === 'LimitError') return err;
  const code = (err as { code?: string }).code;
  if (code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR' || /incorrect header check|unexpected end of file/.test(err.message)) {
    return new ArchiveError(`layer is not a valid gzip-compressed tarball: ${err.message} (use layerSelector.operation: copy for other content)`);
  }
  if ((err as { tarCode?: string }).tarCode) return new ArchiveError(`layer is not a valid tarball: ${err.message.replace(/^TAR_\w+: /, '')}`);
  return err;
}

/**
 * Every entry with its path, in the order of a plain sort of the full paths by UTF-16 code unit
 * (the order archives have always been written in), without building or comparing full paths:
 * in each directory, a child `c` sorts under the key `c` and its subtree under `c/`, which is
 * where every path below `c` falls among its siblings. Cost: a sort of sibling names per directory.
 * `skip(entry)` prunes a directory's subtree after the directory itself was seen.
 */
export function* walk(root: DirEntry, skip: (e: Entry) => boolean = () => false): Generator<[string, Entry]> {
  type Frame = { prefix: string; items: [string, Entry, boolean][]; i: number };
  const frame = (dir: DirEntry, prefix: string): Frame => {
    const items: [string, Entry, boolean][] = [];
    for (const [name, e] of dir.children) {
      items.push([name, e, false]);
      if (e.kind === 'dir' && e.children.size) items.push([`${name}/`, e, true]);
    }
    items.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return { prefix, items, i: 0 };
  };
  const stack: Frame[] = [frame(root, '')];
  while (stack.length) {
    const f = stack[stack.length - 1]!;
    const item = f.items[f.i++];
    if (!item) {
      stack.pop();
      continue;
    }
    const [key, e, subtree] = item;
    if (subtree) {
      if (!skip(e)) stack.push(frame(e as DirEntry, f.prefix + key));
    } else {
      yield [f.prefix + key, e];
    }
  }
}

export interface PackResult {
  digest: string;
  size: number;
  files: number;
}

/**
 * Writes a reproducible tar+gzip of the extracted files to `out`, dropping ignored paths:
 * entries sorted by path, owner 0:0 with no names, zero times, modes 0750 (dirs), 0700
 * (executables), 0600 (files). The same content always gives the same bytes and digest.
 */
export async function packReproducible(x: Extracted, out: string, specIgnore: string | undefined): Promise<PackResult> {
  const sourceIgnores: { dir: string; text: string }[] = [];
  for (const [dir, e] of x.sourceIgnores) sourceIgnores.push({ dir, text: e.data ? e.data.toString('utf8') : await readFile(e.tmp!, 'utf8') });
  const ig = buildIgnore(sourceIgnores, specIgnore);
  const pack = tarStream.pack();
  // tar-stream completes directory entries without waiting for its buffer to drain, so the loop
  // below watches the stream after it: a full meter means wait, and it yields every few entries
  // either way, so a tree of 100,000 directories neither piles up in memory nor holds the loop.
  // The meter also batches tar-stream's 512-byte pushes: each write to node:zlib is a round trip
  // to the thread pool.
  const meter = batching(64 << 10);
  const tap = digestTap();
  const written = pipeline(pack, meter, createGzip({ level: zlibConstants.Z_DEFAULT_COMPRESSION, chunkSize: 128 << 10 }), tap.stream, createWriteStream(out, { mode: 0o600 }));
  const failed = written.then(() => undefined);
  let files = 0;
  let n = 0;
  const epoch = new Date(0);
  // An ignored directory hides its subtree: it is tested once, not once per descendant.
  const ignoredDirs = new Set<Entry>();
  try {
    for (const [name, e] of walk(x.root, (d) => ignoredDirs.has(d))) {
      if (++n % 128 === 0) await Promise.race([new Promise((r) => setImmediate(r)), failed]);
      if (meter.writableNeedDrain) await Promise.race([once(meter, 'drain'), failed]);
      if (isIgnored(ig, name, e.kind === 'dir')) {
        if (e.kind === 'dir') ignoredDirs.add(e);
        continue;
      }
      const base = { name, uid: 0, gid: 0, uname: '', gname: '', mtime: epoch };
      if (e.kind === 'dir') {
        await writeEntry(pack, { ...base, name: `${name}/`, type: 'directory', mode: 0o750 });
      } else {
        files++;
        const header = { ...base, type: 'file' as const, mode: e.mode & 0o111 ? 0o700 : 0o600, size: e.size };
        if (e.data) await writeEntry(pack, header, e.data);
        else await writeEntry(pack, header, createReadStream(e.tmp!));
      }
    }
    pack.finalize();
    await written;
  } catch (err) {
    pack.destroy();
    await written.catch(() => undefined);
    throw err;
  }
  return { ...tap.result(), files };
}

/** Passes bytes on in chunks of at least `size` (except the last), with a 1 MiB buffer. */
function batching(size: number): Transform {
  let held: Buffer[] = [];
  let bytes = 0;
  return new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc, cb) {
      held.push(chunk);
      bytes += chunk.length;
      if (bytes >= size) {
        this.push(Buffer.concat(held, bytes));
        held = [];
        bytes = 0;
      }
      cb();
    },
    flush(cb) {
      if (bytes) this.push(Buffer.concat(held, bytes));
      cb();
    },
  });
}

function writeEntry(pack: tarStream.Pack, header: Partial<tarStream.Header> & { name: string }, body?: Readable | Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (Buffer.isBuffer(body)) {
      pack.entry(header, body, (err) => (err ? reject(err) : resolve()));
      return;
    }
    const stream = pack.entry(header, (err) => (err ? reject(err) : resolve()));
    if (body) {
      body.on('error', reject);
      body.pipe(stream);
    } else {
      stream.end(Buffer.alloc(0));
    }
  });
}
