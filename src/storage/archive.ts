// Safe extraction of a tar+gzip layer and a reproducible re-pack.
//
// Entries are never written at paths taken from the archive: each regular file goes to a temp
// file named by a counter, and the archive path lives only in memory. So a hostile name cannot
// reach the filesystem; it is still rejected, because a consumer unpacking our output would be
// exposed to it.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { createGunzip, createGzip, constants as zlibConstants } from 'node:zlib';
import tar from 'tar-stream';
import { digestTap } from './digest-tap.ts';
import { buildIgnore, isIgnored } from './ignore.ts';

export class ArchiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArchiveError';
  }
}

export interface ExtractLimits {
  /** Total bytes of file content; 0 or negative means unlimited. */
  maxBytes: number;
  /** Number of entries, a guard against archives of millions of empty files. */
  maxEntries?: number;
  /**
   * Bytes of file content kept in memory (files up to 1 MiB each); the rest goes to temp files.
   * Thousands of small manifests are the common case, and a round trip to disk per file is what
   * dominated extraction time.
   */
  memoryBudget?: number;
}

const MaxInMemoryFile = 1 << 20;

interface FileEntry {
  kind: 'file';
  mode: number;
  size: number;
  /** Small files stay in memory (within a budget); larger ones are spilled to `tmp`. */
  data?: Buffer;
  tmp?: string;
}
interface DirEntry {
  kind: 'dir';
}
type Entry = FileEntry | DirEntry;

export interface Extracted {
  /** Archive path (normalised, relative, no trailing slash) → entry. */
  entries: Map<string, Entry>;
  tmpDir: string;
  /** Links inside the root that were dropped (the re-packed artifact has regular files only). */
  droppedLinks: string[];
  cleanup(): Promise<void>;
}

/** Validates and normalises an archive path; throws ArchiveError for anything unsafe. */
export function safeEntryName(name: string): string {
  if (name.includes('\0')) throw new ArchiveError(`tar entry name contains a NUL byte`);
  if (name.startsWith('/') || /^[A-Za-z]:[\\/]/.test(name)) throw new ArchiveError(`tar entry '${name}' has an absolute path`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) throw new ArchiveError(`tar entry '${name}' escapes the archive root ('..')`);
  if (parts.some((p) => p.includes('\\'))) throw new ArchiveError(`tar entry '${name}' contains a backslash`);
  return parts.join('/');
}

/** True when a link at `entry` pointing to `target` stays inside the root. */
function linkStaysInside(entry: string, target: string, hard: boolean): boolean {
  if (target.startsWith('/')) return false;
  const base = hard ? '' : path.posix.dirname(entry);
  const resolved = path.posix.normalize(path.posix.join(base === '.' ? '' : base, target));
  return resolved !== '..' && !resolved.startsWith('../') && !path.posix.isAbsolute(resolved);
}

/**
 * Unpacks a gzip-compressed tar stream into a temp dir under `workDir`. The source is read to
 * its end even when the archive's end marker comes first, so a verifying source can finish its
 * digest check.
 */
export async function extractTarGz(source: Readable, workDir: string, limits: ExtractLimits): Promise<Extracted> {
  const tmpDir = await mkdtemp(path.join(workDir, 'extract-'));
  const entries = new Map<string, Entry>();
  const droppedLinks: string[] = [];
  const cleanup = () => rm(tmpDir, { recursive: true, force: true });
  let total = 0;
  let count = 0;
  let inMemory = 0;
  const memoryBudget = limits.memoryBudget ?? 256 << 20;
  const maxEntries = limits.maxEntries ?? 1_000_000;
  const extract = tar.extract();

  const consume = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      count++;
      if (count > maxEntries) throw new ArchiveError(`archive has more than ${maxEntries} entries`);
      const name = safeEntryName(h.name);
      switch (h.type) {
        case 'directory':
          if (name) addEntry(entries, name, { kind: 'dir' });
          entry.resume();
          break;
        case 'file':
        case 'contiguous-file': {
          if (!name) throw new ArchiveError(`tar file entry with an empty name`);
          const size = h.size ?? 0;
          total += size;
          if (limits.maxBytes > 0 && total > limits.maxBytes) {
            throw new ArchiveError(`artifact exceeds the maximum size of ${limits.maxBytes} bytes (--artifact-max-size)`);
          }
          if (size <= MaxInMemoryFile && inMemory + size <= memoryBudget) {
            const chunks: Buffer[] = [];
            for await (const c of entry) chunks.push(c as Buffer);
            const data = Buffer.concat(chunks);
            inMemory += data.length;
            addEntry(entries, name, { kind: 'file', mode: h.mode ?? 0o644, size: data.length, data });
          } else {
            const tmp = path.join(tmpDir, String(count));
            await pipeline(entry, createWriteStream(tmp, { mode: 0o600 }));
            addEntry(entries, name, { kind: 'file', mode: h.mode ?? 0o644, size, tmp });
          }
          break;
        }
        case 'symlink':
        case 'link': {
          const target = h.linkname ?? '';
          if (!linkStaysInside(name, target, h.type === 'link')) {
            throw new ArchiveError(`tar entry '${h.name}' is a link to '${target}', outside the archive root`);
          }
          droppedLinks.push(name);
          entry.resume();
          break;
        }
        default:
          throw new ArchiveError(`tar entry '${h.name}' has unsupported type '${h.type}' (devices, FIFOs and other special files are refused)`);
      }
    }
  })();

  const gunzip = createGunzip({ chunkSize: 128 << 10 });
  try {
    await Promise.all([pipeline(source, gunzip, extract).catch((err: Error) => {
      throw translateStreamError(err);
    }), consume]);
    if (!source.readableEnded) {
      // Bytes after the tar end marker: read them so the source can verify its digest.
      source.unpipe();
      source.resume();
      await finished(source).catch(() => undefined);
    }
  } catch (err) {
    extract.destroy();
    await cleanup();
    throw err instanceof ArchiveError ? err : translateStreamError(err as Error);
  }
  return { entries, tmpDir, droppedLinks, cleanup };
}

function translateStreamError(err: Error): Error {
  const code = (err as { code?: string }).code;
  if (code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR' || /incorrect header check|unexpected end of file/.test(err.message)) {
    return new ArchiveError(`layer is not a valid gzip-compressed tarball: ${err.message} (use layerSelector.operation: copy for other content)`);
  }
  if (/Unexpected end of data|Invalid tar header|checksum/i.test(err.message)) return new ArchiveError(`layer is not a valid tarball: ${err.message}`);
  return err;
}

function addEntry(entries: Map<string, Entry>, name: string, e: Entry): void {
  // Parents must be directories; a file where a directory is needed is a conflict.
  const parts = name.split('/');
  for (let i = 1; i < parts.length; i++) {
    const parent = parts.slice(0, i).join('/');
    const p = entries.get(parent);
    if (p && p.kind !== 'dir') throw new ArchiveError(`tar entry '${name}' is below '${parent}', which is a file`);
    if (!p) entries.set(parent, { kind: 'dir' });
  }
  const prev = entries.get(name);
  if (prev && prev.kind !== e.kind) throw new ArchiveError(`tar entry '${name}' appears both as a file and a directory`);
  entries.set(name, e);
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
  for (const [name, e] of x.entries) {
    if (e.kind === 'file' && (name === '.sourceignore' || name.endsWith('/.sourceignore'))) {
      sourceIgnores.push({ dir: name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : '', text: e.data ? e.data.toString('utf8') : await readFile(e.tmp!, 'utf8') });
    }
  }
  const ig = buildIgnore(sourceIgnores, specIgnore);
  const names = [...x.entries.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const pack = tar.pack();
  const tap = digestTap();
  const written = pipeline(pack, createGzip({ level: zlibConstants.Z_DEFAULT_COMPRESSION, chunkSize: 128 << 10 }), tap.stream, createWriteStream(out, { mode: 0o600 }));
  let files = 0;
  const epoch = new Date(0);
  try {
    for (const name of names) {
      const e = x.entries.get(name)!;
      if (isIgnored(ig, name, e.kind === 'dir')) continue;
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

function writeEntry(pack: tar.Pack, header: Partial<tar.Header> & { name: string }, body?: Readable | Buffer): Promise<void> {
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
