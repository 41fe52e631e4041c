// HTTP server for stored artifacts: GET and HEAD of artifact files only, with Content-Length,
// an ETag of the file digest, single Range requests, and 404 for everything else (no listings).
import { lstatSync, type Stats } from 'node:fs';
import { open, readFile, readlink } from 'node:fs/promises';
import type { IncomingMessage, OutgoingHttpHeaders, RequestListener, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { ByteBoundedMap } from '../util/bounded-map.ts';
import { http } from '../util/node-http.ts';
import { KindDir, LatestName, type Storage } from './store.ts';

const Route = new RegExp(`^/${KindDir}/([a-z0-9][-a-z0-9.]*)/([a-z0-9][-a-z0-9.]*)/((?:sha256|sha384|sha512):[a-f0-9]{64,128}\\.tar\\.gz|${LatestName.replace('.', '\\.')})$`);

export interface ArtifactServer {
  server: Server;
  address: AddressInfo;
  cache: SmallFileCache;
  close(): Promise<void>;
}

/** Maps a request path to a relative storage path, or null when it is not an artifact route. */
export async function routeToFile(storage: Storage, urlPath: string): Promise<string | null> {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  const m = Route.exec(decoded);
  if (!m || m[1]!.includes('..') || m[2]!.includes('..')) return null;
  let rel = `${KindDir}/${m[1]}/${m[2]}/${m[3]}`;
  if (m[3] === LatestName) {
    // Follow the alias only to an artifact file in the same directory.
    const target = await readlink(storage.abs(rel)).catch(() => null);
    if (!target || target.includes('/') || !/^(sha256|sha384|sha512):[a-f0-9]+\.tar\.gz$/.test(target)) return null;
    rel = `${path.posix.dirname(rel)}/${target}`;
  }
  return rel;
}

/** What the artifact cache holds and how it answered, for metrics. */
export interface ArtifactCacheStats {
  bytes: number;
  entries: number;
  hits: number;
  misses: number;
}

/**
 * Small artifacts are served from memory, within `maxBytes` (--artifact-cache-max-size; 0 turns
 * the cache off). Files are immutable once written (named by digest, replaced only by rename), so
 * an entry keyed by inode, size and mtime can never be stale. Least recently served goes first.
 */
export class SmallFileCache {
  readonly #entries: ByteBoundedMap<{ key: string; data: Buffer }>;
  hits = 0;
  misses = 0;
  readonly maxBytes: number;
  readonly maxFile: number;
  constructor(maxBytes = 64 << 20, maxFile = 1 << 20) {
    this.maxBytes = maxBytes;
    this.maxFile = Math.min(maxFile, maxBytes);
    this.#entries = new ByteBoundedMap(maxBytes);
  }
  async get(p: string, st: { ino: number; size: number; mtimeMs: number }): Promise<Buffer | undefined> {
    if (st.size > this.maxFile) return undefined;
    const key = `${st.ino}:${st.size}:${st.mtimeMs}`;
    const hit = this.#entries.get(p);
    if (hit?.key === key) {
      this.hits++;
      this.#entries.touch(p);
      return hit.data;
    }
    this.misses++;
    const data = await readFile(p);
    if (data.length !== st.size) return undefined;
    // Another request may have filled the entry while this one read the file: set replaces it.
    this.#entries.set(p, { key, data }, data.length);
    return data;
  }
  stats(): ArtifactCacheStats {
    return { bytes: this.#entries.bytes, entries: this.#entries.size, hits: this.hits, misses: this.misses };
  }
}

export function handler(storage: Storage, cache = new SmallFileCache()): RequestListener {
  return (req, res) => {
    void serve(storage, cache, req, res).catch(() => {
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end();
      } else {
        res.destroy();
      }
    });
  };
}

async function serve(storage: Storage, cache: SmallFileCache, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-length': 0 }).end();
    return;
  }
  const urlPath = (req.url ?? '/').split('?')[0]!;
  const rel = await routeToFile(storage, urlPath);
  const st = rel ? statOrNull(storage.abs(rel)) : null;
  if (!rel || !st?.isFile()) {
    res.writeHead(404, { 'content-type': 'text/plain', 'content-length': 10 }).end('not found\n');
    return;
  }
  const info = await storage.inspect(rel, st);
  if (!info) {
    res.writeHead(404, { 'content-length': 0 }).end();
    return;
  }
  const etag = `"${info.digest}"`;
  const headers: OutgoingHttpHeaders = {
    'content-type': 'application/gzip',
    etag,
    'accept-ranges': 'bytes',
    'last-modified': st.mtime.toUTCString(),
    'cache-control': 'no-cache',
  };
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, headers).end();
    return;
  }
  let start = 0;
  let end = info.size - 1;
  let status = 200;
  const range = req.headers.range;
  if (range && (!req.headers['if-range'] || req.headers['if-range'] === etag)) {
    const r = parseRange(range, info.size);
    if (r === 'unsatisfiable') {
      res.writeHead(416, { ...headers, 'content-range': `bytes */${info.size}`, 'content-length': 0 }).end();
      return;
    }
    if (r) {
      [start, end] = r;
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${info.size}`;
    }
  }
  headers['content-length'] = info.size === 0 ? 0 : end - start + 1;
  res.writeHead(status, headers);
  if (req.method === 'HEAD' || info.size === 0) {
    res.end();
    return;
  }
  const small = await cache.get(storage.abs(rel), st);
  if (small) {
    res.end(status === 206 ? small.subarray(start, end + 1) : small);
    return;
  }
  await sendFile(storage.abs(rel), start, end, res);
}

/**
 * A synchronous lstat: storage is a local volume, where a stat answered from the dentry cache
 * takes microseconds, and the thread-pool round trip of the async one was most of the cost of
 * serving a small artifact (64 KiB from the cache: 8.9k -> 15.2k requests/s).
 */
function statOrNull(file: string): Stats | null {
  try {
    return lstatSync(file, { throwIfNoEntry: false }) ?? null;
  } catch {
    return null;
  }
}

/**
 * Read buffers for streaming, reused across requests: a fresh multi-megabyte buffer per read
 * costs a page fault per 4 KiB, which made streaming 4 MiB three times slower than nginx.
 */
const ChunkSize = 1 << 20;
const MaxPooledChunks = 16;
const chunks: Buffer[] = [];

/**
 * Streams bytes start..end of a file: one 1 MiB read at a time into a pooled buffer, which is
 * reused once the socket has taken the bytes. The file is named by digest and never rewritten in
 * place, so a short read means it was removed: the response is cut rather than padded.
 */
async function sendFile(file: string, start: number, end: number, res: ServerResponse): Promise<void> {
  const fh = await open(file, 'r');
  const buf = chunks.pop() ?? Buffer.allocUnsafeSlow(ChunkSize);
  let reusable = true;
  try {
    for (let pos = start; pos <= end; ) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(ChunkSize, end - pos + 1), pos);
      if (bytesRead === 0) throw new Error(`${file} shrank while being served`);
      pos += bytesRead;
      if (!(await written(res, buf.subarray(0, bytesRead)))) {
        // The client went away: the socket may still hold the chunk, so the buffer is not reused.
        reusable = false;
        return;
      }
    }
    res.end();
  } finally {
    await fh.close();
    if (reusable && chunks.length < MaxPooledChunks) chunks.push(buf);
  }
}

/** Writes a chunk and resolves once the socket has taken it: true, or false if the response closed first. */
function written(res: ServerResponse, chunk: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    if (res.destroyed) return resolve(false);
    const onClose = () => resolve(false);
    res.once('close', onClose);
    res.write(chunk, (err) => {
      res.off('close', onClose);
      resolve(!err);
    });
  });
}

/** One byte range; null for a syntax we ignore (serve the whole file), as RFC 9110 allows. */
export function parseRange(h: string, size: number): [number, number] | null | 'unsatisfiable' {
  const m = /^bytes=(\d*)-(\d*)$/.exec(h.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    return [Math.max(0, size - n), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || start > end) return 'unsatisfiable';
  return [start, end];
}

export async function startArtifactServer(storage: Storage, host: string, port: number, opts: { cacheMaxBytes?: number } = {}): Promise<ArtifactServer> {
  const cache = new SmallFileCache(opts.cacheMaxBytes);
  const server = http.createServer({ keepAliveTimeout: 30_000 }, handler(storage, cache));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    server,
    address: server.address() as AddressInfo,
    cache,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
