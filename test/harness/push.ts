// Test-only OCI distribution client: pushes blobs (monolithic POST+PUT), manifests (by tag or by
// digest), Flux-style tar.gz artifacts and whole OCI image layouts; reads manifests back; deletes.
// Uses node:http/https directly (the test CA is passed per request) with Basic and Bearer auth
// (WWW-Authenticate challenge → token from the realm, cached per endpoint and scope).
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import type { RegistryEndpoint } from './registry.ts';

export const FLUX_CONTENT_MEDIA_TYPE = 'application/vnd.cncf.flux.content.v1.tar+gzip';
export const FLUX_CONFIG_MEDIA_TYPE = 'application/vnd.cncf.flux.config.v1+json';
export const OCI_MANIFEST_MEDIA_TYPE = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX_MEDIA_TYPE = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

/** Accept header covering every manifest type distribution 2.8 serves. */
export const MANIFEST_ACCEPT = [
  OCI_MANIFEST_MEDIA_TYPE,
  OCI_INDEX_MEDIA_TYPE,
  'application/vnd.docker.distribution.manifest.v2+json',
  DOCKER_MANIFEST_LIST,
].join(', ');

export function sha256Digest(data: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

// ---------------------------------------------------------------------------------------------
// HTTP with registry auth
// ---------------------------------------------------------------------------------------------

export interface RegistryResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface RegistryRequestOptions {
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Send no credentials at all, and do not answer challenges (to test 401s). */
  anonymous?: boolean;
  /** Scope to ask a token for when the challenge names none, e.g. "repository:foo:pull". */
  scope?: string;
}

/** One raw HTTP(S) request, trusting `caPem` and presenting a client cert when given. No auth handling. */
export function httpRequest(
  url: string,
  method: string,
  opts: { headers?: Record<string, string>; body?: Buffer | string; caPem?: string; clientCertPem?: string; clientKeyPem?: string } = {},
): Promise<RegistryResponse> {
  return new Promise<RegistryResponse>((resolve, reject) => {
    const u = new URL(url);
    const isHttps = u.protocol === 'https:';
    const body = opts.body === undefined ? undefined : Buffer.from(opts.body);
    const headers: Record<string, string> = { ...opts.headers };
    if (body !== undefined) headers['content-length'] = String(body.length);
    const req = (isHttps ? https : http).request(
      u,
      {
        method,
        headers,
        agent: false,
        ...(isHttps && opts.caPem ? { ca: opts.caPem } : {}),
        ...(isHttps && opts.clientCertPem ? { cert: opts.clientCertPem, key: opts.clientKeyPem } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.once('error', reject);
      },
    );
    req.once('error', reject);
    req.end(body);
  });
}

const tokenCache = new WeakMap<RegistryEndpoint, Map<string, string>>();

function cacheFor(ep: RegistryEndpoint): Map<string, string> {
  let m = tokenCache.get(ep);
  if (!m) {
    m = new Map();
    tokenCache.set(ep, m);
  }
  return m;
}

/** Parses a WWW-Authenticate header into scheme + params. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const sp = header.indexOf(' ');
  const scheme = (sp < 0 ? header : header.slice(0, sp)).toLowerCase();
  const params: Record<string, string> = {};
  const re = /([A-Za-z_]+)="([^"]*)"/g;
  for (let m = re.exec(header); m !== null; m = re.exec(header)) {
    if (m[1] !== undefined && m[2] !== undefined) params[m[1]] = m[2];
  }
  return { scheme, params };
}

function tlsOpts(ep: RegistryEndpoint): { caPem?: string; clientCertPem?: string; clientKeyPem?: string } {
  return { caPem: ep.caPem, clientCertPem: ep.clientCertPem, clientKeyPem: ep.clientKeyPem };
}

function basicHeader(ep: RegistryEndpoint): string | undefined {
  if (ep.username === undefined) return undefined;
  return 'Basic ' + Buffer.from(`${ep.username}:${ep.password ?? ''}`).toString('base64');
}

async function fetchToken(ep: RegistryEndpoint, params: Record<string, string>, scope: string | undefined): Promise<string> {
  const realm = params['realm'];
  if (!realm) throw new Error('Bearer challenge without realm');
  const u = new URL(realm);
  if (params['service']) u.searchParams.set('service', params['service']);
  for (const s of (params['scope'] ?? scope ?? '').split(' ')) if (s) u.searchParams.append('scope', s);
  const headers: Record<string, string> = {};
  const basic = basicHeader(ep);
  if (basic) headers['authorization'] = basic;
  const res = await httpRequest(u.toString(), 'GET', { headers, ...tlsOpts(ep) });
  if (res.status !== 200) throw new Error(`token request to ${realm} failed: ${res.status} ${res.body.toString()}`);
  const json = JSON.parse(res.body.toString()) as { token?: string; access_token?: string };
  const tok = json.token ?? json.access_token;
  if (!tok) throw new Error('token response without token');
  return tok;
}

/**
 * An authenticated request to the registry: `pathOrUrl` is "/v2/..." or an absolute URL. Answers
 * a 401 challenge once (Basic with the endpoint's credentials, or Bearer via the realm) and
 * caches the resulting Authorization header per endpoint object and scope.
 */
export async function registryRequest(
  ep: RegistryEndpoint,
  method: string,
  pathOrUrl: string,
  opts: RegistryRequestOptions = {},
): Promise<RegistryResponse> {
  const url = new URL(pathOrUrl, ep.url).toString();
  const headers: Record<string, string> = { ...opts.headers };
  const cacheKey = opts.scope ?? '';
  const cache = cacheFor(ep);
  const cached = opts.anonymous ? undefined : cache.get(cacheKey);
  if (cached) headers['authorization'] = cached;
  const res = await httpRequest(url, method, { headers, body: opts.body, ...tlsOpts(ep) });
  if (res.status !== 401 || opts.anonymous) return res;
  const challenge = res.headers['www-authenticate'];
  if (typeof challenge !== 'string') return res;
  const { scheme, params } = parseChallenge(challenge);
  let authz: string | undefined;
  if (scheme === 'basic') authz = basicHeader(ep);
  else if (scheme === 'bearer') authz = 'Bearer ' + (await fetchToken(ep, params, opts.scope));
  if (!authz || authz === cached) return res;
  cache.set(cacheKey, authz);
  return httpRequest(url, method, { headers: { ...headers, authorization: authz }, body: opts.body, ...tlsOpts(ep) });
}

function fail(what: string, res: RegistryResponse): never {
  throw new Error(`${what}: HTTP ${res.status} ${res.body.toString().slice(0, 500)}`);
}

// ---------------------------------------------------------------------------------------------
// Blobs and manifests
// ---------------------------------------------------------------------------------------------

/** Pushes a blob (skipped when it already exists); returns its digest. */
export async function pushBlob(ep: RegistryEndpoint, repo: string, data: Buffer | string, digest?: string): Promise<string> {
  const bytes = Buffer.from(data);
  const d = digest ?? sha256Digest(bytes);
  const scope = `repository:${repo}:pull,push`;
  const head = await registryRequest(ep, 'HEAD', `/v2/${repo}/blobs/${d}`, { scope });
  if (head.status === 200) return d;
  const start = await registryRequest(ep, 'POST', `/v2/${repo}/blobs/uploads/`, { scope, body: Buffer.alloc(0) });
  if (start.status !== 202) fail(`start upload to ${repo}`, start);
  const loc = start.headers['location'];
  if (typeof loc !== 'string') throw new Error('upload without Location');
  const u = new URL(loc, ep.url);
  u.searchParams.set('digest', d);
  const put = await registryRequest(ep, 'PUT', u.toString(), {
    scope,
    body: bytes,
    headers: { 'content-type': 'application/octet-stream' },
  });
  if (put.status !== 201) fail(`upload blob ${d} to ${repo}`, put);
  return d;
}

export interface PushedManifest {
  digest: string;
  bytes: Buffer;
  mediaType: string;
}

/**
 * PUTs a manifest at `ref` (a tag, or its digest). Objects are JSON-serialised; Buffers are sent
 * byte for byte. Content-Type: `mediaType`, else the manifest's own mediaType, else OCI manifest.
 */
export async function pushManifest(
  ep: RegistryEndpoint,
  repo: string,
  ref: string | undefined,
  manifest: Buffer | string | object,
  mediaType?: string,
): Promise<PushedManifest> {
  const bytes = Buffer.isBuffer(manifest)
    ? manifest
    : Buffer.from(typeof manifest === 'string' ? manifest : JSON.stringify(manifest));
  let mt = mediaType;
  if (!mt) {
    try {
      const parsed = JSON.parse(bytes.toString()) as { mediaType?: string };
      mt = parsed.mediaType;
    } catch {
      /* not JSON */
    }
  }
  mt ??= OCI_MANIFEST_MEDIA_TYPE;
  const digest = sha256Digest(bytes);
  const res = await registryRequest(ep, 'PUT', `/v2/${repo}/manifests/${ref ?? digest}`, {
    scope: `repository:${repo}:pull,push`,
    body: bytes,
    headers: { 'content-type': mt },
  });
  if (res.status !== 201) fail(`push manifest ${repo}:${ref ?? digest}`, res);
  const got = res.headers['docker-content-digest'];
  if (typeof got === 'string' && got !== digest) throw new Error(`registry computed ${got}, expected ${digest}`);
  return { digest, bytes, mediaType: mt };
}

export interface FetchedManifestResult {
  status: number;
  digest?: string;
  mediaType?: string;
  bytes: Buffer;
  headers: http.IncomingHttpHeaders;
}

/** GETs (or HEADs) a manifest; `anonymous: true` sends no credentials. Does not throw on 4xx. */
export async function getManifest(
  ep: RegistryEndpoint,
  repo: string,
  ref: string,
  opts: { accept?: string; anonymous?: boolean; method?: 'GET' | 'HEAD' } = {},
): Promise<FetchedManifestResult> {
  const res = await registryRequest(ep, opts.method ?? 'GET', `/v2/${repo}/manifests/${ref}`, {
    scope: `repository:${repo}:pull`,
    anonymous: opts.anonymous,
    headers: { accept: opts.accept ?? MANIFEST_ACCEPT },
  });
  const digest = res.headers['docker-content-digest'];
  const ct = res.headers['content-type'];
  return {
    status: res.status,
    ...(typeof digest === 'string' ? { digest } : {}),
    ...(typeof ct === 'string' ? { mediaType: ct } : {}),
    bytes: res.body,
    headers: res.headers,
  };
}

/** GETs a blob's bytes (throws unless 200). */
export async function getBlob(ep: RegistryEndpoint, repo: string, digest: string): Promise<Buffer> {
  const res = await registryRequest(ep, 'GET', `/v2/${repo}/blobs/${digest}`, { scope: `repository:${repo}:pull` });
  if (res.status !== 200) fail(`get blob ${repo}@${digest}`, res);
  return res.body;
}

/** Tags of a repository (empty when the repository does not exist). */
export async function listTags(ep: RegistryEndpoint, repo: string): Promise<string[]> {
  const res = await registryRequest(ep, 'GET', `/v2/${repo}/tags/list`, { scope: `repository:${repo}:pull` });
  if (res.status === 404) return [];
  if (res.status !== 200) fail(`list tags of ${repo}`, res);
  return (JSON.parse(res.body.toString()) as { tags?: string[] | null }).tags ?? [];
}

/** Deletes a manifest by digest (distribution also drops every tag pointing at it). */
export async function deleteManifest(ep: RegistryEndpoint, repo: string, digest: string): Promise<void> {
  const res = await registryRequest(ep, 'DELETE', `/v2/${repo}/manifests/${digest}`, {
    scope: `repository:${repo}:delete`,
  });
  if (res.status !== 202 && res.status !== 200) fail(`delete ${repo}@${digest}`, res);
}

/**
 * Makes `tag` disappear. Distribution 2.8 cannot delete a tag alone, so this resolves the tag and
 * deletes the manifest it points to, which also removes every other tag on that manifest.
 * Returns the deleted digest (undefined when the tag did not exist).
 */
export async function deleteTag(ep: RegistryEndpoint, repo: string, tag: string): Promise<string | undefined> {
  const head = await getManifest(ep, repo, tag, { method: 'HEAD' });
  if (head.status === 404) return undefined;
  if (head.status !== 200 || !head.digest) fail(`resolve ${repo}:${tag}`, { ...head, body: head.bytes });
  await deleteManifest(ep, repo, head.digest);
  return head.digest;
}

// ---------------------------------------------------------------------------------------------
// Flux-style tar.gz artifacts
// ---------------------------------------------------------------------------------------------

/**
 * A deterministic tar.gz of `files` (path → content), entries sorted by path, mode 0644,
 * uid/gid 0, fixed mtime (default 2020-01-01T00:00:00Z).
 */
export async function buildTarGz(files: Record<string, string | Buffer>, opts: { mtime?: Date } = {}): Promise<Buffer> {
  const pack = tar.pack();
  const mtime = opts.mtime ?? new Date('2020-01-01T00:00:00Z');
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(Buffer.from(c as Uint8Array));
  })();
  for (const name of Object.keys(files).sort()) {
    const content = Buffer.from(files[name] as string | Buffer);
    await new Promise<void>((resolve, reject) => {
      pack.entry({ name, size: content.length, mode: 0o644, mtime, uid: 0, gid: 0, type: 'file' }, content, (err) =>
        err ? reject(err) : resolve(),
      );
    });
  }
  pack.finalize();
  await done;
  return gzipSync(Buffer.concat(chunks));
}

export interface TarGzArtifactOptions {
  /** Layer media type (default application/vnd.cncf.flux.content.v1.tar+gzip). */
  layerMediaType?: string;
  /** Config media type (default application/vnd.cncf.flux.config.v1+json). */
  configMediaType?: string;
  /** Config blob (default "{}"). */
  config?: string | Buffer;
  /** Manifest annotations (e.g. org.opencontainers.image.revision / .source / .created). */
  annotations?: Record<string, string>;
  /** Layer descriptor annotations. */
  layerAnnotations?: Record<string, string>;
  /** Manifest artifactType (OCI 1.1). */
  artifactType?: string;
  /** A prebuilt layer instead of tarring `files`. */
  layer?: Buffer;
  /** tar mtime (default 2020-01-01). */
  mtime?: Date;
  /** Push by digest only (no tag) when `tag` is undefined; this forces pushing by digest too. */
  byDigest?: boolean;
}

export interface PushedArtifact {
  manifestDigest: string;
  manifestBytes: Buffer;
  manifest: {
    schemaVersion: 2;
    mediaType: string;
    artifactType?: string;
    config: { mediaType: string; digest: string; size: number };
    layers: Array<{ mediaType: string; digest: string; size: number; annotations?: Record<string, string> }>;
    annotations?: Record<string, string>;
  };
  layerDigest: string;
  layerBytes: Buffer;
  configDigest: string;
  /** "<host>/<repo>:<tag>" (or "@<digest>" when pushed by digest). */
  ref: string;
}

/**
 * Pushes a single-layer tar.gz artifact the way `flux push artifact` does (OCI manifest, flux
 * config + content media types) and tags it `tag` (undefined: by digest only).
 */
export async function pushTarGzArtifact(
  ep: RegistryEndpoint,
  repo: string,
  tag: string | undefined,
  files: Record<string, string | Buffer>,
  opts: TarGzArtifactOptions = {},
): Promise<PushedArtifact> {
  const layerBytes = opts.layer ?? (await buildTarGz(files, { mtime: opts.mtime }));
  const config = Buffer.from(opts.config ?? '{}');
  const layerDigest = await pushBlob(ep, repo, layerBytes);
  const configDigest = await pushBlob(ep, repo, config);
  const manifest: PushedArtifact['manifest'] = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    ...(opts.artifactType ? { artifactType: opts.artifactType } : {}),
    config: { mediaType: opts.configMediaType ?? FLUX_CONFIG_MEDIA_TYPE, digest: configDigest, size: config.length },
    layers: [
      {
        mediaType: opts.layerMediaType ?? FLUX_CONTENT_MEDIA_TYPE,
        digest: layerDigest,
        size: layerBytes.length,
        ...(opts.layerAnnotations ? { annotations: opts.layerAnnotations } : {}),
      },
    ],
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
  };
  const pushed = await pushManifest(ep, repo, opts.byDigest ? undefined : tag, manifest, OCI_MANIFEST_MEDIA_TYPE);
  if (opts.byDigest && tag !== undefined) await pushManifest(ep, repo, tag, pushed.bytes, OCI_MANIFEST_MEDIA_TYPE);
  return {
    manifestDigest: pushed.digest,
    manifestBytes: pushed.bytes,
    manifest,
    layerDigest,
    layerBytes,
    configDigest,
    ref: tag !== undefined ? `${ep.host}/${repo}:${tag}` : `${ep.host}/${repo}@${pushed.digest}`,
  };
}

// ---------------------------------------------------------------------------------------------
// OCI image layouts
// ---------------------------------------------------------------------------------------------

interface LayoutDescriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  annotations?: Record<string, string>;
}

const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const REFERRERS_TAG_RE = /^sha256-[0-9a-f]{64}$/;

function refNameToTag(ref: string | undefined): string | undefined {
  if (ref === undefined) return undefined;
  if (TAG_RE.test(ref)) return ref;
  const m = /:([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$/.exec(ref);
  return m?.[1];
}

export interface PushedLayout {
  /** Every manifest pushed, children before parents (push order). */
  manifests: Array<{ digest: string; mediaType: string; size: number }>;
  /** tag → digest, from `org.opencontainers.image.ref.name` annotations and the `tag` argument. */
  tags: Record<string, string>;
  /** Digest of the first index.json entry with a ref name that is not a referrers tag (sha256-<hex>), else of the first entry. */
  mainDigest: string;
  blobCount: number;
}

/**
 * Pushes an OCI image layout directory: every blob under blobs/, then every manifest reachable
 * from index.json (children first, each by digest), then tags from the
 * `org.opencontainers.image.ref.name` annotations of index.json entries (so notation's
 * `sha256-<hex>` referrers-tag indexes land as that tag). `tag`, when given, is also applied to
 * the main manifest (first entry with a ref name that is not a `sha256-<hex>` referrers tag, else
 * the first entry).
 */
export async function pushOciLayout(ep: RegistryEndpoint, layoutDir: string, repo: string, tag?: string): Promise<PushedLayout> {
  if (!existsSync(path.join(layoutDir, 'oci-layout'))) throw new Error(`${layoutDir} is not an OCI image layout`);
  const blobPath = (digest: string): string => {
    const [alg, hex] = digest.split(':');
    if (!alg || !hex) throw new Error(`bad digest ${digest}`);
    return path.join(layoutDir, 'blobs', alg, hex);
  };

  let blobCount = 0;
  const blobsRoot = path.join(layoutDir, 'blobs');
  for (const alg of readdirSync(blobsRoot)) {
    for (const hex of readdirSync(path.join(blobsRoot, alg))) {
      await pushBlob(ep, repo, readFileSync(path.join(blobsRoot, alg, hex)), `${alg}:${hex}`);
      blobCount++;
    }
  }

  const index = JSON.parse(readFileSync(path.join(layoutDir, 'index.json'), 'utf8')) as { manifests?: LayoutDescriptor[] };
  const top = index.manifests ?? [];
  const pushed = new Map<string, { digest: string; mediaType: string; size: number }>();
  const order: Array<{ digest: string; mediaType: string; size: number }> = [];

  const visit = async (desc: LayoutDescriptor): Promise<void> => {
    if (pushed.has(desc.digest)) return;
    const bytes = readFileSync(blobPath(desc.digest));
    const parsed = JSON.parse(bytes.toString()) as { mediaType?: string; manifests?: LayoutDescriptor[] };
    const mediaType = desc.mediaType ?? parsed.mediaType ?? OCI_MANIFEST_MEDIA_TYPE;
    if (mediaType === OCI_INDEX_MEDIA_TYPE || mediaType === DOCKER_MANIFEST_LIST) {
      for (const child of parsed.manifests ?? []) {
        if (existsSync(blobPath(child.digest))) await visit(child);
      }
    }
    const r = await pushManifest(ep, repo, undefined, bytes, mediaType);
    const entry = { digest: r.digest, mediaType, size: bytes.length };
    pushed.set(desc.digest, entry);
    order.push(entry);
  };
  for (const d of top) await visit(d);

  const tags: Record<string, string> = {};
  for (const d of top) {
    const t = refNameToTag(d.annotations?.['org.opencontainers.image.ref.name']);
    if (t === undefined) continue;
    const entry = pushed.get(d.digest);
    if (!entry) continue;
    await pushManifest(ep, repo, t, readFileSync(blobPath(d.digest)), entry.mediaType);
    tags[t] = d.digest;
  }
  const refTag = (d: LayoutDescriptor): string | undefined => refNameToTag(d.annotations?.['org.opencontainers.image.ref.name']);
  const main = top.find((d) => {
    const t = refTag(d);
    return t !== undefined && !REFERRERS_TAG_RE.test(t);
  }) ?? top[0];
  if (!main) throw new Error(`${layoutDir}/index.json lists no manifests`);
  if (tag !== undefined) {
    const entry = pushed.get(main.digest);
    await pushManifest(ep, repo, tag, readFileSync(blobPath(main.digest)), entry?.mediaType);
    tags[tag] = main.digest;
  }
  return { manifests: order, tags, mainDigest: main.digest, blobCount };
}
