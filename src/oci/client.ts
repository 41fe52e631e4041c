// A Distribution-spec client for one repository: resolve, list tags, fetch manifests and blobs,
// referrers. Every call goes through one request path that handles auth challenges, redirects,
// size limits and the reconcile's deadline, so resolve, verify and pull share the same settings.
import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { exceeded, LimitError, limitError, limitsWith, type Limits } from '../api/limits.ts';
import { parseJSON } from '../util/json.ts';
import { parseChallenge, type Challenge, type Credentials } from './auth.ts';
import { parseRetryAfter, RegistryError } from './errors.ts';
import type { RegistryReader } from './reader.ts';
import { isDigest, type RepositoryRef } from './reference.ts';
import { undici } from './undici.ts';
import type { ProxyOptions, TLSOptions, Transport } from './transport.ts';
import { MediaTypes, type Descriptor, type FetchedManifest, type ImageIndex } from './types.ts';

export type { ProxyOptions, TLSOptions } from './transport.ts';

export interface ClientOptions {
  /** Pools, tokens and learned challenges: owned by the caller, shared by its clients. */
  transport: Transport;
  /** Who holds the connection pool (the object's namespace/name): see Transport.dispatcher. */
  poolOwner?: string;
  credentials?: Credentials;
  /** Where `credentials` came from, for error hints ("secret 'ns/name'", "provider azure workload identity"). */
  credentialSource?: string;
  tls?: TLSOptions;
  /** Plain HTTP; with HTTPS and no CA given, TLS verification is skipped (Flux's semantics). */
  insecure?: boolean;
  proxy?: ProxyOptions;
  /** Deadline for the whole operation this client serves (spec.timeout). */
  signal?: AbortSignal;
  userAgent?: string;
  /** `n` for tag listing; the registry's Link header drives the following pages. */
  tagPageSize?: number;
  /** Budgets (defaults from DefaultLimits): manifestMaxSize, maxTags, tagListMaxSize, maxReferrers. */
  limits?: Partial<Limits>;
}

export const ManifestAccept = [MediaTypes.ociManifest, MediaTypes.dockerManifest, MediaTypes.ociIndex, MediaTypes.dockerManifestList];
const DefaultBlobLimit = 32 << 20;

interface Req {
  method: 'GET' | 'HEAD';
  path: string;
  accept?: string[];
  /** Absolute URL (after a redirect); registry credentials go only to the registry's own origin. */
  absolute?: string;
}

export class RegistryClient implements RegistryReader {
  readonly registry: string;
  readonly repository: string;
  readonly apiHost: string;
  readonly #opts: ClientOptions;
  readonly #transport: Transport;
  readonly #dispatcher: Promise<Dispatcher>;
  /** The budgets this client enforces (defaults where its options set none). */
  readonly limits: Limits;
  readonly #origin: string;
  #authHeader: string | undefined;
  #tokenKey: string | undefined;
  /** Count of HTTP requests made, for tests and benchmarks of the steady-state cost. */
  requests = 0;

  constructor(ref: RepositoryRef, opts: ClientOptions) {
    this.registry = ref.registry;
    this.repository = ref.repository;
    this.apiHost = ref.apiHost;
    this.#opts = opts;
    this.#transport = opts.transport;
    this.#dispatcher = opts.transport.dispatcher({ tls: opts.tls, insecure: !!opts.insecure, proxy: opts.proxy }, opts.poolOwner);
    this.limits = limitsWith(opts.limits);
    this.#origin = new URL(`${opts.insecure ? 'http' : 'https'}://${this.apiHost}`).origin;
    if (opts.credentials?.registryToken) this.#authHeader = `Bearer ${opts.credentials.registryToken}`;
    else this.#preauthorize();
  }

  /** Uses what we learned from this registry's last challenge: Basic credentials or a cached token. */
  #preauthorize(): void {
    const ch = this.#transport.challenge(this.apiHost);
    if (!ch) return;
    const creds = this.#opts.credentials;
    if (ch.scheme === 'basic' && creds?.username) {
      this.#authHeader = `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}`;
    } else if (ch.scheme === 'bearer' && ch.params.realm) {
      const key = this.#tokenKeyFor(ch.params.realm, ch.params.service);
      const token = this.#transport.tokens.get(key);
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
    const limit = opts.maxBytes ?? this.limits.manifestMaxSize;
    const what = `manifest '${ref}' of ${this.registry}/${this.repository}`;
    const bytes = await readLimited(res.body, limit, what, opts.maxBytes === undefined ? () => limitError('manifestMaxSize', `${what} is larger than ${limit} bytes`) : undefined);
    const digest = digestOf(bytes, isDigest(ref) ? ref.split(':')[0]! : 'sha256');
    if (isDigest(ref) && digest !== ref) throw new RegistryError(`manifest ${ref} failed digest verification: content hashes to ${digest}`);
    let mediaType = (header(res, 'content-type') ?? '').split(';')[0]!.trim();
    try {
      const parsed = parseJSON(bytes, what, this.limits.maxJSONDepth) as { mediaType?: unknown };
      if (typeof parsed?.mediaType === 'string' && parsed.mediaType) mediaType = parsed.mediaType;
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

  /**
   * All tags, following `Link: <…>; rel="next"` pagination, within the maxTags and tagListMaxSize
   * budgets across all pages (a registry can page forever; each page must bring a tag).
   */
  async listTags(): Promise<string[]> {
    const { maxTags, tagListMaxSize } = this.limits;
    const where = `${this.registry}/${this.repository}`;
    const tags: string[] = [];
    let bytes = 0;
    let path: string | undefined = `/v2/${this.repository}/tags/list?n=${this.#opts.tagPageSize ?? 1000}`;
    while (path) {
      const res = await this.#send({ method: 'GET', path });
      await this.#expectOK(res, 'list tags');
      const body = await readLimited(res.body, tagListMaxSize - bytes, `tag list of ${where}`, () => limitError('tagListMaxSize', `tag list of ${where} is larger than ${tagListMaxSize} bytes`));
      bytes += body.length;
      const page = parseTagPage(body, where, this.limits.maxJSONDepth);
      if (tags.length + page.length > maxTags) exceeded('maxTags', `${where} has more than ${maxTags} tags`);
      for (const t of page) tags.push(t);
      path = nextLink(header(res, 'link'));
      if (path && page.length === 0) throw new RegistryError(`tag list of ${where}: an empty page links to a next page`);
    }
    return tags;
  }

  async referrers(subjectDigest: string, artifactType?: string): Promise<Descriptor[]> {
    if (!isDigest(subjectDigest)) throw new RegistryError(`invalid subject digest '${subjectDigest}'`);
    const { maxReferrers, manifestMaxSize } = this.limits;
    const out: Descriptor[] = [];
    let path: string | undefined = `/v2/${this.repository}/referrers/${subjectDigest}${artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : ''}`;
    let first = true;
    while (path) {
      const res = await this.#send({ method: 'GET', path, accept: [MediaTypes.ociIndex] });
      if (first && (res.statusCode === 404 || res.statusCode === 405)) {
        await drain(res);
        return this.#referrersByTag(subjectDigest, artifactType);
      }
      first = false;
      await this.#expectOK(res, `GET referrers of ${subjectDigest}`);
      const what = `referrers of ${subjectDigest} in ${this.registry}/${this.repository}`;
      const index = parseIndex(await readLimited(res.body, manifestMaxSize, what, () => limitError('manifestMaxSize', `a page of ${what} is larger than ${manifestMaxSize} bytes`)), 'referrers response', this.limits.maxJSONDepth);
      this.#checkReferrers(out.length + index.manifests.length, subjectDigest);
      const filtered = (header(res, 'oci-filters-applied') ?? '').split(',').map((s) => s.trim()).includes('artifactType');
      for (const d of filtered ? index.manifests : filterByType(index.manifests, artifactType)) out.push(d);
      path = nextLink(header(res, 'link'));
      if (path && index.manifests.length === 0) throw new RegistryError(`${what}: an empty page links to a next page`);
    }
    return out;
  }

  #checkReferrers(n: number, subjectDigest: string): void {
    const max = this.limits.maxReferrers;
    if (n > max) exceeded('maxReferrers', `${subjectDigest} in ${this.registry}/${this.repository} has more than ${max} referrers`);
  }

  async #referrersByTag(subjectDigest: string, artifactType?: string): Promise<Descriptor[]> {
    const tag = subjectDigest.replace(':', '-');
    const m = await this.fetchManifest(tag, { accept: [MediaTypes.ociIndex] });
    if (!m) return [];
    const index = parseIndex(m.bytes, `referrers tag '${tag}'`, this.limits.maxJSONDepth);
    this.#checkReferrers(index.manifests.length, subjectDigest);
    return filterByType(index.manifests, artifactType);
  }

  #checkCredentials(): string {
    if (!this.#opts.credentials) return 'the registry requires credentials: set spec.secretRef to a kubernetes.io/dockerconfigjson Secret, or spec.provider for workload identity';
    return `check the credentials from ${this.#opts.credentialSource ?? 'spec.secretRef'}`;
  }

  async #expectOK(res: Dispatcher.ResponseData, what: string): Promise<void> {
    if (res.statusCode >= 200 && res.statusCode < 300) return;
    let code: string | undefined;
    let detail = '';
    try {
      const text = (await readLimited(res.body, 64 << 10, 'error body')).toString();
      const body = parseJSON(text, 'error body', this.limits.maxJSONDepth) as { errors?: { code?: string; message?: string }[] };
      code = body.errors?.[0]?.code;
      detail = body.errors?.map((e) => `${e.code ?? ''}: ${e.message ?? ''}`).join('; ') ?? '';
    } catch {
      // Non-JSON error body: the status says enough.
    }
    const status = res.statusCode;
    const hint = status === 401 ? ` (unauthorized: ${this.#checkCredentials()})` : status === 403 ? ` (forbidden: the credentials from ${this.#opts.credentialSource ?? 'the client'} lack pull access)` : '';
    const retryAfterMs = parseRetryAfter(header(res, 'retry-after'));
    const wait = retryAfterMs !== undefined ? ` (Retry-After: ${Math.ceil(retryAfterMs / 1000)}s)` : '';
    throw new RegistryError(`${what} from ${this.registry}/${this.repository}: HTTP ${status}${detail ? ` ${detail}` : ''}${hint}${wait}`, status, code, retryAfterMs !== undefined ? { retryAfterMs } : undefined);
  }

  /**
   * One request with auth challenge handling (one retry) and redirects (blob storage backends).
   * Credentials go only to the registry's own origin: a redirect that changes scheme, host or
   * port (https → http on the same host included) is followed without them.
   */
  async #send(req: Req, redirects = 0): Promise<Dispatcher.ResponseData> {
    const target = new URL(req.absolute ?? `${this.#origin}${req.path}`);
    if (target.protocol !== 'https:' && target.protocol !== 'http:') throw new RegistryError(`registry redirected to '${target.protocol}' URL, which is not HTTP(S)`);
    const url = target.toString();
    const sameOrigin = target.origin === this.#origin;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { 'user-agent': this.#opts.userAgent ?? 'oci-source-controller' };
      if (req.accept) headers.accept = req.accept.join(', ');
      if (sameOrigin && this.#authHeader) headers.authorization = this.#authHeader;
      const res = await this.#raw(req.method, url, headers);
      if (res.statusCode >= 300 && res.statusCode < 400 && res.statusCode !== 304) {
        const location = header(res, 'location');
        await drain(res);
        if (!location || redirects >= 5) throw new RegistryError(`too many redirects for ${url}`, res.statusCode);
        return this.#send({ ...req, absolute: new URL(location, url).toString() }, redirects + 1);
      }
      if (res.statusCode !== 401 || attempt > 0 || !sameOrigin) return res;
      const challenge = parseChallenge(header(res, 'www-authenticate'));
      if (!challenge) return res;
      await drain(res);
      if (!(await this.#answer(challenge))) {
        throw new RegistryError(`${req.method} ${req.path} on ${this.registry}: HTTP 401: ${this.#checkCredentials()}`, 401, 'UNAUTHORIZED');
      }
    }
  }

  /** Sets #authHeader for a challenge; returns false if there is nothing better to send. */
  async #answer(challenge: Challenge): Promise<boolean> {
    const creds = this.#opts.credentials;
    this.#transport.learnChallenge(this.apiHost, challenge);
    if (challenge.scheme === 'basic') {
      if (!creds?.username) return false;
      this.#authHeader = `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}`;
      return true;
    }
    if (challenge.scheme !== 'bearer' || !challenge.params.realm) return false;
    const { realm, service } = challenge.params;
    const scope = `repository:${this.repository}:pull`;
    const key = this.#tokenKeyFor(realm, service);
    const cached = this.#transport.tokens.get(key);
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
    const where = `token request to ${u.origin}${u.pathname} for ${scope}`;
    if (res.statusCode < 200 || res.statusCode >= 300) {
      await drain(res);
      // 401/403 mean the credentials were refused; anything else (a 5xx, a 404 from a
      // misconfigured realm) is a failed fetch that a retry or the registry's owner fixes.
      const status = res.statusCode;
      const hint = status === 401 || status === 403 ? ` (${this.#checkCredentials()})` : status >= 500 ? ' (the token service failed; will retry)' : '';
      const retryAfterMs = parseRetryAfter(header(res, 'retry-after'));
      throw new RegistryError(`${where}: HTTP ${status}${hint}`, status, undefined, retryAfterMs !== undefined ? { retryAfterMs } : undefined);
    }
    const text = (await readLimited(res.body, 1 << 20, `token response from ${u.origin}`)).toString();
    let tok: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      tok = parseJSON(text, `${where}: the answer`, this.limits.maxJSONDepth) as typeof tok;
    } catch (err) {
      if (err instanceof LimitError) throw err;
      throw new RegistryError(`${where}: the answer is not JSON (${JSON.stringify(text.slice(0, 80))})`, 0, 'INVALID_TOKEN_RESPONSE');
    }
    const token = typeof tok?.token === 'string' && tok.token ? tok.token : typeof tok?.access_token === 'string' ? tok.access_token : undefined;
    if (!token) throw new RegistryError(`${where}: the answer has no token`, 0, 'INVALID_TOKEN_RESPONSE');
    const ttl = typeof tok.expires_in === 'number' && Number.isFinite(tok.expires_in) ? tok.expires_in : 60;
    this.#transport.tokens.set(key, token, ttl);
    this.#tokenKey = key;
    this.#authHeader = `Bearer ${token}`;
    return true;
  }

  async #raw(method: string, url: string, headers: Record<string, string>, body?: string): Promise<Dispatcher.ResponseData> {
    this.requests++;
    try {
      // The race guarantees the deadline even where undici does not watch the signal (a proxy
      // that never answers CONNECT); a lost request is aborted by the same signal.
      const [{ request }, dispatcher] = await Promise.all([undici(), this.#dispatcher]);
      return await withDeadline(request(url, {
        method: method as Dispatcher.HttpMethod,
        headers,
        ...(body !== undefined ? { body } : {}),
        dispatcher,
        // undici closes the connection after a HEAD unless told otherwise (in case a server sends a
        // body anyway); the steady-state reconcile is one HEAD, so keeping the connection saves a
        // connect (and TLS handshake) per reconcile.
        ...(method === 'HEAD' ? { reset: false } : {}),
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

/** Reads a stream into memory, failing (with `tooLarge()` if given) as soon as it exceeds `limit` bytes. */
export async function readLimited(stream: Readable, limit: number, what: string, tooLarge?: () => Error): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of stream) {
    const b = chunk as Buffer;
    n += b.length;
    if (n > limit) {
      stream.destroy();
      throw tooLarge?.() ?? new RegistryError(`${what} exceeds the ${limit} byte limit`);
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
  // The blob's own failures (source errors, size, digest) have settled `verified` before the
  // stream errors; an error first seen here is the consumer's, destroying the stream (e.g. a
  // write that hit ENOSPC): it gave up reading, which says nothing against the blob.
  stream.on('error', (err) => settle(new RegistryError(`blob ${desc.digest} was not read to the end: ${err.message}`, 0, 'INCOMPLETE', { cause: err })));
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

/** One page of a tag list: `{"name": …, "tags": [string…] | null}`, or a typed error. */
function parseTagPage(bytes: Buffer, where: string, maxDepth: number): string[] {
  let v: unknown;
  try {
    v = parseJSON(bytes, `tag list of ${where}`, maxDepth);
  } catch (err) {
    if (err instanceof LimitError) throw err;
    throw new RegistryError(`tag list of ${where} is not valid JSON: ${(err as Error).message}`);
  }
  const tags = (v as { tags?: unknown } | null)?.tags;
  if (typeof v !== 'object' || v === null || (tags !== undefined && tags !== null && !Array.isArray(tags))) {
    throw new RegistryError(`tag list of ${where} is not a tag list (expected {"tags": [...]})`);
  }
  const list = (tags ?? []) as unknown[];
  if (!list.every((t) => typeof t === 'string')) throw new RegistryError(`tag list of ${where} holds a tag that is not a string`);
  return list as string[];
}

function parseIndex(bytes: Buffer, what: string, maxDepth: number): ImageIndex {
  let v: unknown;
  try {
    v = parseJSON(bytes, what, maxDepth);
  } catch (err) {
    if (err instanceof LimitError) throw err;
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
