// Artifact storage: <root>/ocirepository/<namespace>/<name>/<sha256:hex>.tar.gz, written to a temp
// file in the same directory and renamed, plus a `latest.tar.gz` symlink. Nothing outside
// <root> is ever written: every path comes from validated names, never from artifact content.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, lstatSync, type Stats } from 'node:fs';
import { lstat, mkdir, readdir, rename, rm, stat, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { digestTap } from './digest-tap.ts';
import { createWriteStream } from 'node:fs';

export const KindDir = 'ocirepository';
export const LatestName = 'latest.tar.gz';
const ArtifactFile = /^(sha256|sha384|sha512):[a-f0-9]{64,128}\.tar\.gz$/;
// DNS-1123 subdomain for namespaces and names: no slashes or dots-only segments.
const ObjectName = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export class StorageError extends Error {
  readonly reason: 'InvalidPath' | 'DirectoryCreationFailed' | 'ArchiveOperationFailed';
  constructor(reason: StorageError['reason'], message: string) {
    super(message);
    this.name = 'StorageError';
    this.reason = reason;
  }
}

export interface StoredFile {
  /** Path relative to the storage root (what status.artifact.path holds). */
  path: string;
  digest: string;
  size: number;
}

export interface StorageOptions {
  root: string;
  /** Number of artifacts (including the current one) kept per object. */
  retentionRecords: number;
  /** Older artifacts are removed once older than this, even within the record count. */
  retentionTTLms: number;
  /** Host (and port) in advertised URLs, or a full http(s):// base. */
  advertisedAddr: string;
}

interface DigestCacheEntry {
  ino: number;
  size: number;
  mtimeMs: number;
  digest: string;
}

export class Storage {
  readonly root: string;
  readonly opts: StorageOptions;
  /** Digest of each file by (inode, size, mtime): an unchanged file is never re-hashed. */
  #digests = new Map<string, DigestCacheEntry>();
  /**
   * Object directories whose last collection left only kept files, with that keep set: collecting
   * again with the same set finds nothing until we write there, so the steady state skips the listing.
   */
  #collected = new Map<string, string>();

  constructor(opts: StorageOptions) {
    this.root = path.resolve(opts.root);
    this.opts = opts;
  }

  /** Relative directory of an object; throws InvalidPath for names that are not DNS labels. */
  objectDir(namespace: string, name: string): string {
    if (!ObjectName.test(namespace) || !ObjectName.test(name)) {
      throw new StorageError('InvalidPath', `invalid object name '${namespace}/${name}' for storage`);
    }
    return `${KindDir}/${namespace}/${name}`;
  }

  /** Relative artifact path for a manifest digest (Flux's layout: the file is named by the digest). */
  artifactPath(namespace: string, name: string, manifestDigest: string): string {
    const file = `${manifestDigest}.tar.gz`;
    if (!ArtifactFile.test(file)) throw new StorageError('InvalidPath', `invalid digest '${manifestDigest}' for an artifact file name`);
    return `${this.objectDir(namespace, name)}/${file}`;
  }

  /** Absolute path of a relative storage path, refusing anything that would leave the root. */
  abs(rel: string): string {
    const p = path.resolve(this.root, rel);
    if (p !== this.root && !p.startsWith(this.root + path.sep)) throw new StorageError('InvalidPath', `path '${rel}' is outside storage`);
    return p;
  }

  url(rel: string): string {
    const a = this.opts.advertisedAddr;
    const base = /^https?:\/\//.test(a) ? a.replace(/\/+$/, '') : `http://${a}`;
    return `${base}/${rel.split('/').map(encodeURIComponent).join('/').replace(/%3A/g, ':')}`;
  }

  /** A fresh work directory inside storage (same filesystem, so renames are atomic). */
  async workDir(): Promise<string> {
    const dir = this.abs(`.tmp/${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  /**
   * Writes a file atomically: `produce` writes to a temp path in the target directory, which is
   * then renamed over `rel`. Readers see the old file or the new one, never a partial one.
   */
  async writeAtomic(rel: string, produce: (tmpPath: string) => Promise<{ digest: string; size: number }>): Promise<StoredFile> {
    const target = this.abs(rel);
    const dir = path.dirname(target);
    this.#collected.delete(dir);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new StorageError('DirectoryCreationFailed', `failed to create artifact directory: ${(err as Error).message}`);
    }
    const tmp = path.join(dir, `.${path.basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      const { digest, size } = await produce(tmp);
      await rename(tmp, target);
      const st = await stat(target);
      this.#digests.set(target, { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, digest });
      return { path: rel, digest, size };
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /** Stores a stream unchanged (copy mode), hashing as it writes; `check` gates the final rename. */
  async writeStream(rel: string, source: Readable, check?: () => Promise<void>): Promise<StoredFile> {
    return this.writeAtomic(rel, async (tmp) => {
      const tap = digestTap();
      await pipeline(source, tap.stream, createWriteStream(tmp, { mode: 0o600 }));
      await check?.();
      return tap.result();
    });
  }

  /**
   * The digest and size of a stored file, or null when it is missing. Hashes only when the file
   * changed since we last saw it (inode, size and mtime), so steady state costs one stat (none
   * when the caller passes the lstat it just made).
   */
  async inspect(rel: string, known?: Stats): Promise<{ digest: string; size: number } | null> {
    const p = this.abs(rel);
    let st = known;
    // A synchronous lstat: storage is a local volume, where it takes microseconds, and every
    // reconcile makes one. The asynchronous one's hand-off to the thread pool and back cost more
    // than the call (a tenth of a steady-state reconcile's CPU).
    try {
      st ??= lstatSync(p);
    } catch {
      return null;
    }
    if (!st.isFile()) return null;
    const c = this.#digests.get(p);
    if (c && c.ino === st.ino && c.size === st.size && c.mtimeMs === st.mtimeMs) return { digest: c.digest, size: c.size };
    const hash = createHash('sha256');
    await pipeline(createReadStream(p), hash);
    const digest = `sha256:${hash.digest('hex')}`;
    this.#digests.set(p, { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, digest });
    return { digest, size: st.size };
  }

  /** True when the stored file exists and has the recorded digest. */
  async intact(rel: string, digest: string): Promise<boolean> {
    const info = await this.inspect(rel).catch(() => null);
    return info?.digest === digest;
  }

  /** Points `latest.tar.gz` at the artifact (relative symlink, replaced atomically). */
  async setLatest(rel: string): Promise<string> {
    const target = this.abs(rel);
    const link = path.join(path.dirname(target), LatestName);
    this.#collected.delete(path.dirname(target));
    const tmp = `${link}.${randomBytes(4).toString('hex')}.tmp`;
    await symlink(path.basename(target), tmp);
    await rename(tmp, link);
    return `${path.posix.dirname(rel)}/${LatestName}`;
  }

  /**
   * Garbage collection for one object. Never deletes a path in `keep`: the current artifact and
   * any artifact still handed out elsewhere (the one a published ExternalArtifact points at). Of
   * the other artifacts it deletes those older than the TTL or beyond the record count; kept
   * paths count towards the records, and the newest others fill the rest. Returns removed paths.
   */
  async garbageCollect(namespace: string, name: string, keep: readonly string[], now = Date.now()): Promise<string[]> {
    const dirRel = this.objectDir(namespace, name);
    const dir = this.abs(dirRel);
    const keepKey = [...keep].sort().join('\n');
    if (this.#collected.get(dir) === keepKey) return [];
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return [];
    }
    let pending = false;
    const kept = new Set(keep);
    let keptPresent = 0;
    const files: { rel: string; mtime: number }[] = [];
    for (const n of names) {
      const rel = `${dirRel}/${n}`;
      if (kept.has(rel)) {
        keptPresent++;
        continue;
      }
      if (ArtifactFile.test(n)) {
        const st = await lstat(path.join(dir, n)).catch(() => null);
        if (st?.isFile()) files.push({ rel, mtime: st.mtimeMs });
      } else if (n.endsWith('.tmp')) {
        // Leftover from a crash mid-write: safe to remove once it is clearly stale.
        const st = await lstat(path.join(dir, n)).catch(() => null);
        if (st && now - st.mtimeMs > 10 * 60_000) await rm(path.join(dir, n), { force: true });
        else if (st) pending = true;
      }
    }
    files.sort((a, b) => b.mtime - a.mtime);
    const keepOthers = Math.max(0, this.opts.retentionRecords - keptPresent);
    const removed: string[] = [];
    for (const [i, f] of files.entries()) {
      if (i < keepOthers && now - f.mtime < this.opts.retentionTTLms) continue;
      await unlink(this.abs(f.rel)).catch(() => undefined);
      this.#digests.delete(this.abs(f.rel));
      removed.push(f.rel);
    }
    if (!pending && removed.length === files.length) this.#collected.set(dir, keepKey);
    else this.#collected.delete(dir);
    return removed;
  }

  /** Removes everything stored for an object (finalizer). */
  async removeObject(namespace: string, name: string): Promise<void> {
    const dir = this.abs(this.objectDir(namespace, name));
    await rm(dir, { recursive: true, force: true });
    this.#collected.delete(dir);
    for (const k of this.#digests.keys()) if (k.startsWith(dir + path.sep)) this.#digests.delete(k);
  }

  /**
   * Removes what a crash can leave behind, at start-up (nothing is writing yet): work directories,
   * and temporary files next to the artifacts (an archive or latest.tar.gz link cut off mid-write).
   */
  async cleanWork(): Promise<void> {
    await rm(this.abs('.tmp'), { recursive: true, force: true });
    const kind = this.abs(KindDir);
    for (const ns of await readdir(kind).catch(() => [])) {
      for (const name of await readdir(path.join(kind, ns)).catch(() => [])) {
        const dir = path.join(kind, ns, name);
        for (const f of await readdir(dir).catch(() => [])) if (f.endsWith('.tmp')) await rm(path.join(dir, f), { force: true });
      }
    }
  }
}
