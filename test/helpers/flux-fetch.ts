// Consumes an artifact the way Flux's kustomize-controller and helm-controller do (fluxcd/pkg
// http/fetch ArchiveFetcher + pkg/tar Untar with WithSkipSymlinks): GET status.artifact.url with
// retries on 5xx and network errors, 404 means "not ready yet", the downloaded file must match
// status.artifact.digest, then the tar.gz is extracted with names checked and symlinks skipped.
// Used by the tests and the demo to prove that what we publish is consumable by Flux.
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';

/** Flux's ErrFileNotFound: the source is not ready yet, try again later. */
export class ArtifactNotFoundError extends Error {
  constructor(url: string) {
    super(`artifact not found at ${url} (404): not ready yet`);
    this.name = 'ArtifactNotFoundError';
  }
}

export interface FluxFetchOptions {
  /** Retries after a 5xx or a network error (Flux: --http-retry, default 9). */
  retries?: number;
  retryDelayMs?: number;
  /** Limit on the downloaded file (0: none). */
  maxDownloadSize?: number;
  /** Limit on the extracted bytes (Flux's default: 100 MiB). */
  maxUntarSize?: number;
  /** false: keep the file unextracted (helm-controller loads a chart .tgz as it is). */
  untar?: boolean;
}

export interface FluxFetchResult {
  /** The downloaded file, verified against the digest. */
  body: Buffer;
  /** Regular files written under the target directory (relative, sorted). */
  files: string[];
  /** Symbolic links found in the archive and skipped, as Flux does. */
  skippedSymlinks: string[];
}

const Algorithms: Record<string, string> = { sha256: 'sha256', sha384: 'sha384', sha512: 'sha512' };

/** go-digest semantics as the fetcher uses them: bare hex means sha256. */
export function verifyDigest(body: Buffer, digest: string): void {
  if (!digest) throw new Error('empty digest');
  const d = digest.includes(':') ? digest : `sha256:${digest}`;
  const [algo, hex] = d.split(':') as [string, string];
  const alg = Algorithms[algo];
  if (!alg) throw new Error(`failed to parse digest '${d}': unsupported algorithm`);
  const got = createHash(alg).update(body).digest('hex');
  if (got !== hex) throw new Error(`failed to verify archive: computed digest doesn't match provided '${d}'`);
}

async function download(url: string, opts: FluxFetchOptions): Promise<Buffer> {
  const retries = opts.retries ?? 3;
  for (let attempt = 0; ; attempt++) {
    let res: Response;
    try {
      res = await fetch(url);
    } catch (err) {
      if (attempt >= retries) throw new Error(`failed to download archive: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, opts.retryDelayMs ?? 200));
      continue;
    }
    if (res.status >= 500 && attempt < retries) {
      await res.arrayBuffer().catch(() => undefined);
      await new Promise((r) => setTimeout(r, opts.retryDelayMs ?? 200));
      continue;
    }
    if (res.status === 404) {
      await res.arrayBuffer().catch(() => undefined);
      throw new ArtifactNotFoundError(url);
    }
    if (res.status !== 200) {
      await res.arrayBuffer().catch(() => undefined);
      throw new Error(`failed to download archive from ${url} (status: ${res.status})`);
    }
    const max = opts.maxDownloadSize ?? 0;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
      size += c.length;
      if (max > 0 && size > max) throw new Error(`artifact is greater than the max download size of ${max} bytes`);
      chunks.push(Buffer.from(c));
    }
    return Buffer.concat(chunks);
  }
}

/** pkg/tar validRelPath. */
function validRelPath(p: string): boolean {
  return p !== '' && !p.includes('\\') && !p.startsWith('/') && !p.includes('../');
}

async function untar(body: Buffer, dir: string, maxUntarSize: number): Promise<{ files: string[]; skippedSymlinks: string[] }> {
  const files: string[] = [];
  const skippedSymlinks: string[] = [];
  const extract = tar.extract();
  let processed = 0;
  const done = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      processed += h.size ?? 0;
      if (maxUntarSize > 0 && processed > maxUntarSize) throw new Error(`tar "${h.name}" is bigger than max archive size of ${maxUntarSize} bytes`);
      if (h.type === 'symlink') {
        skippedSymlinks.push(h.name);
        entry.resume();
        continue;
      }
      if (!validRelPath(h.name)) throw new Error(`tar contained invalid name error "${h.name}"`);
      const abs = path.join(dir, h.name);
      if (h.type === 'directory') {
        await mkdir(abs, { recursive: true });
        entry.resume();
      } else if (h.type === 'file' || h.type === 'contiguous-file') {
        await mkdir(path.dirname(abs), { recursive: true });
        const chunks: Buffer[] = [];
        for await (const c of entry) chunks.push(c as Buffer);
        await writeFile(abs, Buffer.concat(chunks), { mode: (h.mode ?? 0o644) & 0o777 });
        files.push(h.name.replace(/^\.\//, ''));
      } else {
        throw new Error(`tar file entry ${h.name} contained unsupported file type ${h.type}`);
      }
    }
  })();
  await Promise.all([pipeline(Readable.from([body]), createGunzip(), extract), done]);
  return { files: files.sort(), skippedSymlinks };
}

/** Fetches `url`, checks `digest`, and extracts into `dir` (which it creates). */
export async function fetchLikeFlux(url: string, digest: string, dir: string, opts: FluxFetchOptions = {}): Promise<FluxFetchResult> {
  const body = await download(url, opts);
  verifyDigest(body, digest);
  await mkdir(dir, { recursive: true });
  if (opts.untar === false) return { body, files: [], skippedSymlinks: [] };
  const { files, skippedSymlinks } = await untar(body, dir, opts.maxUntarSize ?? 100 << 20);
  return { body, files, skippedSymlinks };
}
