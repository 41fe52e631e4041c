// A Distribution-spec client for one repository: resolve, list tags, fetch manifests and blobs,
// referrers. Every call goes through one request path that handles auth challenges, redirects,
// size limits and the reconcile's deadline, so resolve, verify and pull share the same settings.
import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { Agent, ProxyAgent, request, type Dispatcher } from 'undici';
import { defaultTokenCache, parseChallenge, type Credentials, type TokenCache } from './auth.ts';
import { RegistryError } from './errors.ts';
import type { RegistryReader } from './reader.ts';
import { isDigest, type RepositoryRef } from './reference.ts';
import { MediaTypes, type Descriptor, type FetchedManifest, type ImageIndex } from './types.ts';

export interface TLSOptions {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
}

export interface ProxyOptions {
  address: string;
  username?: string;
  password?: string;
}

export interface ClientOptions {
  credentials?: Credentials;
  tls?: TLSOptions;
  /** Plain HTTP; with HTTPS and no CA given, TLS verification is skipped (Flux's semantics). */
  insecure?: boolean;
  proxy?: ProxyOptions;
  /** Deadline for the whole operation this client serves (spec.timeout). */
  signal?: AbortSignal;
  userAgent?: string;
  tokenCache?: TokenCache;
  /** `n` for tag listing; the registry's Link header drives the following pages. */
  tagPageSize?: number;
}

export const ManifestAccept = [MediaTypes.ociManifest, MediaTypes.dockerManifest, MediaTypes.ociIndex, MediaTypes.dockerManifestList];
const DefaultManifestLimit = 4 << 20;
const DefaultBlobLimit = 32 << 20;

// The auth challenge each registry answered with, so a new client (one per reconcile) can send
// credentials or a cached token on its first request instead of taking a 401 first.
const knownChallenges = new Map<string, { scheme: string; params: Record<string, string> }>();

// Connection pools are reused across reconciles, keyed by everything that shapes a connection.
const dispatchers = new Map<string, Dispatcher>();
function dispatcherFor(tls: TLSOptions | undefined, insecure: boolean, proxy: ProxyOptions | undefined): Dispatcher {
  const key = createHash('sha256')
    .update(JSON.stringify([String(tls?.ca ?? ''), String(tls?.cert ?? ''), String(tls?.key ?? ''), insecure, proxy ?? null]))
    .digest('hex');
  let d = dispatchers.get(key);
  if (d) return d;
  const connect = {
    ...(tls?.ca ? { ca: tls.ca } : {}),
    ...(tls?.cert && tls?.key ? { cert: tls.cert, key: tls.key } : {}),
    rejectUnauthorized: !(insecure && !tls?.ca),
  };
  if (proxy) {
    const auth = proxy.username ? `Basic ${Buffer.from(`${proxy.username}:${proxy.password ?? ''}`).toString('base64')}` : undefined;
    // Plain-HTTP registries go through the proxy as absolute-form requests: many proxies (squid's
    // default) refuse CONNECT to non-TLS ports. HTTPS registries are tunnelled with CONNECT.
    d = new ProxyAgent({ uri: proxy.address, ...(auth ? { token: auth } : {}), requestTls: connect, connections: 16, proxyTunnel: !insecure });
  } else {
    d = new Agent({ connect, connections: 16, keepAliveTimeout: 30_000 });
  }
  dispatchers.set(key, d);
  return d;
}

/** Closes pooled connections (tests and shutdown). */
export async function closeDispatchers(): Promise<void> {
  const all = [...dispatchers.values()];
  dispatchers.clear();
  await Promise.all(all.map((d) => d.close().catch(() => undefined)));
}

interface Req {
  method: 'GET' | 'HEAD';
  path: string;
  accept?: string[];
  /** Absolute URL (after a redirect); no registry auth is sent to another host. */
  absolute?: string;
}

export class RegistryClient implements RegistryReader {
  readonly registry: string;
  readonly repository: string;
  readonly apiHost: string;
  readonly #opts: ClientOptions;
  readonly #dispatcher: Dispatcher;
  readonly #tokens: TokenCache;
  #authHeader: string | undefined;
  #tokenKey: string | undefined;
  /** Count of HTTP requests made, for tests and benchmarks of the steady-state cost. */
  requests = 0;

  constructor(ref: RepositoryRef, opts: ClientOptions = {}) {
    this.registry = ref.registry;
    this.repository = ref.repository;
    this.apiHost = ref.apiHost;
    this.#opts = opts;
    this.#dispatcher = dispatcherFor(opts.tls, !!opts.insecure, opts.proxy);
    this.#tokens = opts.tokenCache ?? defaultTokenCache;
    if (opts.credentials?.registryToken) this.#authHeader = `Bearer ${opts.credentials.registryToken}`;
    else this.#preauthorize();
  }

  /** Uses what we learned from this registry's last challenge: Basic credentials or a cached token. */
  #preauthorize(): void {
    const ch = knownChallenges.get(this.apiHost);
    if (!ch) return;
    const creds = this.#opts.credentials;
    if (ch.scheme === 'basic' && creds?.username) {
      this.#authHeader = `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}`;
    } else if (ch.scheme === 'bearer' && ch.params.realm) {
      const key = this.#tokenKeyFor(ch.params.realm, ch.params.service);
      const token = this.#tokens.get(key);
      if (token) {
        this.#authHeader = `Bearer ${token}`;
        this.#tokenKey = key;
      }
    }
  }

  #tokenKeyFor(realm: string, service: string | undefined): string {
    const creds = this.#opts.credentials;
    const who = creds?.username ? `u:${creds.username}:${createHash('sha256').update(creds.password ?? '').digest('hex').slice(0, 16)}` : creds?.identityToken ? `id:${createHash('sha256').update(creds.identityToken).digest('hex').slice(0, 16)}` : 'anon';
    return `${realm}|${service ?? ''}|repository:${this.repository}:pull|${who}`;
  }

  get #base(): string {
    return `${this.#opts.insecure ? 'http' : 'https'}://${this.apiHost}`;
  }

  /** HEAD the manifest; falls back to GET when the registry omits Docker-Content-Digest. Null on 404. */
  async head(ref: string): Promise<Descriptor | null> {
    const res = await this.#send({ method: 'HEAD', path: `/v2/${this.repository}/manifests/${ref}`, accept: ManifestAccept });
    if (res.statusCode === 404) {
      await drain(res);
      return null;
    }
    await this.#expectOK(res, `HEAD manifest '${ref}'`);
    await drain(res);
    const digest = header(res, 'docker-content-digest');
    const size = Number(header(res, 'content-length'));
    const mediaType = (header(res, 'content-type') ?? '').split(';')[0]!.trim();
    if (digest && isDigest(digest) && Number.isFinite(size) && mediaType) {
      if (isDigest(ref) && ref !== digest) throw new RegistryError(`registry returned digest ${digest} for ${ref}`, res.statusCode);
      return { mediaType, digest, size };
    }
    const m = await this.fetchManifest(ref);
    return m?.descriptor ?? null;
  }

  async fetchManifest(ref: string, opts: { maxBytes?: number; accept?: string[] } = {}): Promise<FetchedManifest | null> {
    const res = await this.#send({ method: 'GET', path: `/v2/${this.repository}/manifests/${ref}`, accept: opts.accept ?? ManifestAccept });
    if (res.statusCode === 404) {
      await drain(res);
      return null;
    }
    await this.#expectOK(res, `GET manifest '${ref}'`);
    const bytes = await readLimited(res.body, opts.maxBytes ?? DefaultManifestLimit, `manifest '${ref}'`);
    const digest = digestOf(bytes, isDigest(ref) ? ref.split(':')[0]! : 'sha256');
    if (isDigest(ref) && digest !== ref) throw new RegistryError(`manifest ${ref} failed digest verification: content hashes to ${digest}`);
    let mediaType = (header(res, 'content-type') ?? '').split(';')[0]!.trim();
    try {
      const parsed = JSON.parse(bytes.toString()) as { mediaType?: unknown };
      if (typeof parsed.mediaType === 'string' && parsed.mediaType) mediaType = parsed.mediaType;
    } catch {
      // Not JSON: the caller's parser reports it with context.
    }
    return { descriptor: { mediaType, digest, size: bytes.length }, bytes };
  }

  async fetchBlob(desc: Descriptor, opts: { maxBytes?: number } = {}): Promise<Buffer> {
    const limit = opts.maxBytes ?? DefaultBlobLimit;
    if (desc.size > limit) throw new RegistryError(`blob ${desc.digest} is ${desc.size} bytes, over the ${limit} byte limit`);
    const blob = await this.openBlob(desc);
    const bytes = await readLimited(blob.stream, Math.min(limit, desc.size) + 1, `blob ${desc.digest}`);
    await blob.verified;
    return bytes;
  }

  /**
   * Streams a blob. `verified` settles once the whole blob has been read: it rejects when the
   * content does not match the descriptor's digest and size. Consumers must read the stream to
   * its end and await `verified` before they keep anything (a tar reader may stop early, at the
   * archive's end marker, so a plain stream error could come too late to be seen).
   */
  async openBlob(desc: Descriptor): Promise<VerifiedStream> {
    if (!isDigest(desc.digest)) throw new RegistryError(`invalid blob digest '${desc.digest}'`);
    const res = await this.#send({ method: 'GET', path: `/v2/${this.repository}/blobs/${desc.digest}` });
    await this.#expectOK(res, `GET blob ${desc.digest}`);
    return verifyingStream(res.body, desc);
  }

  /** All tags, following `Link: <…>; rel="next"` pagination. */
  async listTags(): Promise<string[]> {
    const tags: string[] = [];
    let path: string | undefined = `/v2/${this.repository}/tags/list?n=${this.#opts.tagPageSize ?? 1000}`;
    for (let page = 0; path && page < 1000; page++) {
      const res = await this.#send({ method: 'GET', path });
      await this.#expectOK(res, 'list tags');
      const body = JSON.parse((await readLimited(res.body, 32 << 20, 'tag list')).toString()) as { tags?: string[] | null };
      tags.push(...(body.tags ?? []));
      path = nextLink(header(res, 'link'));
    }
    return tags;
  }

  async referrers(subjectDigest: string, artifactType?: string): Promise<Descriptor[]> {
    if (!isDigest(subjectDigest)) throw new RegistryError(`invalid subject digest '${subjectDigest}'`);
    const out: Descriptor[] = [];
    let path: string | undefined = `/v2/${this.repository}/referrers/${subjectDigest}${artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : ''}`;
    let first = true;
    for (let page = 0; path && page < 100; page++) {
      const res = await this.#send({ method: 'GET', path, accept: [MediaTypes.ociIndex] });
      if (first && (res.statusCode === 404 || res.statusCode === 405)) {
        await drain(res);
        return this.#referrersByTag(subjectDigest, artifactType);
      }
      first = false;
      await this.#expectOK(res, `GET referrers of ${subjectDigest}`);
      const index = parseIndex(await readLimited(res.body, DefaultManifestLimit, 'referrers index'), 'referrers response');
      const filtered = (header(res, 'oci-filters-applied') ?? '').split(',').map((s) => s.trim()).includes('artifactType');
      out.push(...(filtered ? index.manifests : filterByType(index.manifests, artifactType)));
      path = nextLink(header(res, 'link'));
    }
    return out;
  }

  async #referrersByTag(subjectDigest: string, artifactType?: string): Promise<Descriptor[]> {
    const tag = subjectDigest.replace(':', '-');
    const m = await this.fetchManifest(tag, { accept: [MediaTypes.ociIndex] });
    if (!m) return [];
    return filterByType(parseIndex(m.bytes, `referrers tag '${tag}'`).manifests, artifactType);
  }

  async #expectOK(res: Dispatcher.ResponseData, what: string): Promise<void> {
    if (res.statusCode >= 200 && res.statusCode < 300) return;
    let code: string | undefined;
    let detail = '';
    try {
      const text = (await readLimited(res.body, 64 << 10, 'error body')).toString();
      const body = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
      code = body.errors?.[0]?.code;
      detail = body.errors?.map((e) => `${e.code ?? ''}: ${e.message ?? ''}`).join('; ') ?? '';
    } catch {
      // Non-JSON error body: the status says enough.
    }
    const status = res.statusCode;
    const hint = status === 401 ? ' (unauthorized: check spec.secretRef credentials)' : status === 403 ? ' (forbidden: the credentials lack pull access)' : '';
    throw new RegistryError(`${what} from ${this.registry}/${this.repository}: HTTP ${status}${detail ? ` ${detail}` : ''}${hint}`, status, code);
  }

  /** One request with auth challenge handling (one retry) and redirects (blob storage backends). */
  async #send(req: Req, redirects = 0): Promise<Dispatcher.ResponseData> {
    const url = req.absolute ?? `${this.#base}${req.path}`;
    const sameHost = !req.absolute || new URL(req.absolute).host === this.apiHost;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { 'user-agent': this.#opts.userAgent ?? 'oci-source-controller' };
      if (req.accept) headers.accept = req.accept.join(', ');
      if (sameHost && this.#authHeader) headers.authorization = this.#authHeader;
      const res = await this.#raw(req.method, url, headers);
      if (res.statusCode >= 300 && res.statusCode < 400 && res.statusCode !== 304) {
        const location = header(res, 'location');
        await drain(res);
        if (!location || redirects >= 5) throw new RegistryError(`too many redirects for ${url}`, res.statusCode);
        return this.#send({ ...req, absolute: new URL(location, url).toString() }, redirects + 1);
      }
      if (res.statusCode !== 401 || attempt > 0 || !sameHost) return res;
      const challenge = parseChallenge(header(res, 'www-authenticate'));
      if (!challenge) return res;
      await drain(res);
      if (!(await this.#answer(challenge))) {
        throw new RegistryError(`${req.method} ${req.path ?? url} on ${this.registry}: HTTP 401: the registry requires credentials (set spec.secretRef to a kubernetes.io/dockerconfigjson Secret)`, 401, 'UNAUTHORIZED');
      }
    }
  }

  /** Sets #authHeader for a challenge; returns false if there is nothing better to send. */
  async #answer(challenge: { scheme: string; params: Record<string, string> }): Promise<boolean> {
    const creds = this.#opts.credentials;
    knownChallenges.set(this.apiHost, challenge);
    if (challenge.scheme === 'basic') {
      if (!creds?.username) return false;
      this.#authHeader = `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}`;
      return true;
    }
    if (challenge.scheme !== 'bearer' || !challenge.params.realm) return false;
    const { realm, service } = challenge.params;
    const scope = `repository:${this.repository}:pull`;
    const key = this.#tokenKeyFor(realm, service);
    const cached = this.#tokens.get(key);
    if (cached && this.#tokenKey !== key) {
      this.#authHeader = `Bearer ${cached}`;
      this.#tokenKey = key;
      return true;
    }
    const u = new URL(realm);
    if (service) u.searchParams.set('service', service);
    u.searchParams.set('scope', scope);
    const headers: Record<string, string> = { 'user-agent': this.#opts.userAgent ?? 'oci-source-controller' };
    let method: 'GET' | 'POST' = 'GET';
    let body: string | undefined;
    if (creds?.identityToken) {
      // OAuth2 refresh-token grant (docker "identitytoken").
      method = 'POST';
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, service: service ?? '', scope, client_id: 'oci-source-controller' }).toString();
    } else if (creds?.username) {
      headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}`;
    }
    const res = await this.#raw(method, u.toString(), headers, body);
    if (res.statusCode !== 200) {
      await drain(res);
      throw new RegistryError(`token request to ${u.origin}${u.pathname} for ${scope}: HTTP ${res.statusCode} (check spec.secretRef credentials)`, res.statusCode === 200 ? 0 : 401);
    }
    const tok = JSON.parse((await readLimited(res.body, 1 << 20, 'token response')).toString()) as { token?: string; access_token?: string; expires_in?: number };
    const token = tok.token ?? tok.access_token;
    if (!token) throw new RegistryError(`token response from ${u.origin} has no token`, 401);
    this.#tokens.set(key, token, tok.expires_in ?? 60);
    this.#tokenKey = key;
    this.#authHeader = `Bearer ${token}`;
    return true;
  }

  async #raw(method: string, url: string, headers: Record<string, string>, body?: string): Promise<Dispatcher.ResponseData> {
    this.requests++;
    try {
      // The race guarantees the deadline even where undici does not watch the signal (a proxy
      // that never answers CONNECT); a lost request is aborted by the same signal.
      return await withDeadline(request(url, {
        method: method as Dispatcher.HttpMethod,
        headers,
        ...(body !== undefined ? { body } : {}),
        dispatcher: this.#dispatcher,
        ...(this.#opts.signal ? { signal: this.#opts.signal } : {}),
        headersTimeout: 30_000,
        bodyTimeout: 60_000,
      }), this.#opts.signal);
    } catch (err) {
      throw networkError(err, url, this.#opts.signal);
    }
  }
}

/** Rejects when `signal` aborts (or after 120 s without a signal), whatever `p` does. */
function withDeadline<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const fallback = signal ? undefined : setTimeout(() => reject(new Error('no response within 120 s')), 120_000);
    const onAbort = () => reject(signal!.reason instanceof Error ? signal!.reason : new Error('operation aborted'));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal?.removeEventListener('abort', onAbort);
        if (fallback) clearTimeout(fallback);
        resolve(v);
      },
      (e: unknown) => {
        signal?.removeEventListener('abort', onAbort);
        if (fallback) clearTimeout(fallback);
        reject(e as Error);
      },
    );
  });
}

function networkError(err: unknown, url: string, signal?: AbortSignal): RegistryError {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const host = (() => {
    try {
      return new URL(url).host;
    } catch {
      return url;
    }
  })();
  if (signal?.aborted) {
    const reason = signal.reason instanceof Error ? signal.reason.message : 'operation aborted';
    return new RegistryError(`request to ${host} stopped: ${reason}`, 0, 'TIMEOUT', { cause: err });
  }
  const code = e.code ?? e.cause?.code;
  const msg = e.cause?.message ?? e.message ?? String(err);
  if (code === 'ECONNREFUSED') return new RegistryError(`cannot connect to registry ${host}: connection refused`, 0, code, { cause: err });
  if (code === 'ENOTFOUND') return new RegistryError(`cannot resolve registry host ${host}`, 0, code, { cause: err });
  if (/certificate|self.signed|SSL|TLS|EPROTO/i.test(`${code} ${msg}`)) {
    return new RegistryError(`TLS handshake with ${host} failed: ${msg} (set spec.certSecretRef with the registry's ca.crt, or spec.insecure for a plain-HTTP registry)`, 0, code, { cause: err });
  }
  return new RegistryError(`request to ${host} failed: ${msg}`, 0, code, { cause: err });
}

function header(res: Dispatcher.ResponseData, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

async function drain(res: Dispatcher.ResponseData): Promise<void> {
  await res.body.dump().catch(() => undefined);
}

/** Reads a stream into memory, failing as soon as it exceeds `limit` bytes. */
export async function readLimited(stream: Readable, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of stream) {
    const b = chunk as Buffer;
    n += b.length;
    if (n > limit) {
      stream.destroy();
      throw new RegistryError(`${what} exceeds the ${limit} byte limit`);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

export function digestOf(bytes: Buffer, algo = 'sha256'): string {
  return `${algo}:${createHash(algo).update(bytes).digest('hex')}`;
}

export interface VerifiedStream {
  stream: Readable;
  /** Resolves when the stream ended with the descriptor's digest and size; rejects otherwise. */
  verified: Promise<void>;
}

/** A pass-through stream whose `verified` promise says whether the content matched. */
export function verifyingStream(source: Readable, desc: Descriptor): VerifiedStream {
  const [algo, want] = desc.digest.split(':') as [string, string];
  const hash = createHash(algo);
  let n = 0;
  let settle!: (err?: Error) => void;
  const verified = new Promise<void>((resolve, reject) => {
    settle = (err) => (err ? reject(err) : resolve());
  });
  // Always handled here; consumers await it explicitly.
  verified.catch(() => undefined);
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      if (n > desc.size) {
        const err = new RegistryError(`blob ${desc.digest} is larger than its descriptor's ${desc.size} bytes`);
        settle(err);
        cb(err);
        return;
      }
      hash.update(chunk);
      cb(null, chunk);
    },
    flush(cb) {
      if (n !== desc.size) settle(new RegistryError(`blob ${desc.digest} is ${n} bytes, descriptor says ${desc.size}`));
      else if (hash.digest('hex') !== want) settle(new RegistryError(`blob ${desc.digest} failed digest verification`));
      else settle();
      cb();
    },
  });
  // Errors are reported through `verified`; this listener keeps a late one from crashing the process.
  stream.on('error', (err) => settle(err));
  // Destroyed before the end (the consumer gave up): settle so nobody waits forever.
  stream.on('close', () => settle(new RegistryError(`blob ${desc.digest} was not read to the end`, 0, 'INCOMPLETE')));
  source.on('error', (err) => {
    settle(err);
    stream.destroy(err);
  });
  source.pipe(stream);
  return { stream, verified };
}

function nextLink(link: string | undefined): string | undefined {
  if (!link) return undefined;
  const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(link);
  if (!m) return undefined;
  const u = new URL(m[1]!, 'http://placeholder');
  return u.pathname + u.search;
}

function parseIndex(bytes: Buffer, what: string): ImageIndex {
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString());
  } catch (err) {
    throw new RegistryError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
  const idx = v as ImageIndex;
  if (typeof v !== 'object' || v === null || !Array.isArray(idx.manifests)) throw new RegistryError(`${what} is not an image index (no 'manifests' array)`);
  return idx;
}

/** Keeps descriptors of the wanted artifactType, and those that carry none (the caller inspects them). */
function filterByType(ds: Descriptor[], artifactType: string | undefined): Descriptor[] {
  if (!artifactType) return ds;
  return ds.filter((d) => !d.artifactType || d.artifactType === artifactType);
}
