// The state that registry traffic shares across reconciles, in one object that its owner (the
// controller's manager, or one CLI command) creates, hands to every RegistryClient and closes:
// connection pools, bearer tokens, and the auth challenge each registry answered with. Nothing of
// it lives in module state, so two owners never share or leak each other's connections.
import { createHash } from 'node:crypto';
import type { Dispatcher } from 'undici';
import { TokenCache, type Challenge } from './auth.ts';
import { undici } from './undici.ts';

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

/** Everything that shapes a connection: what a pool is keyed by. */
export interface ConnectionOptions {
  tls?: TLSOptions | undefined;
  /** Plain HTTP; with HTTPS and no CA given, TLS verification is skipped (Flux's semantics). */
  insecure: boolean;
  proxy?: ProxyOptions | undefined;
}

export interface TransportOptions {
  /** Cached bearer tokens (oldest dropped first). */
  maxTokens?: number;
  /** Registries whose auth challenge is remembered (oldest dropped first). */
  maxChallenges?: number;
  /** Connections per pool. */
  connections?: number;
}

interface Pool {
  dispatcher: Promise<Dispatcher>;
  owners: Set<string>;
}

export class Transport {
  readonly tokens: TokenCache;
  readonly #challenges = new Map<string, Challenge>();
  readonly #maxChallenges: number;
  readonly #connections: number;
  readonly #pools = new Map<string, Pool>();
  /** Which pool each owner holds: an owner holds one at a time. */
  readonly #held = new Map<string, string>();
  #closed = false;
  /** Pools closed because no owner held them any more (tests and metrics). */
  evicted = 0;

  constructor(opts: TransportOptions = {}) {
    this.tokens = new TokenCache(opts.maxTokens ?? 1000);
    this.#maxChallenges = opts.maxChallenges ?? 1000;
    this.#connections = opts.connections ?? 16;
  }

  /** Open connection pools. */
  get pools(): number {
    return this.#pools.size;
  }

  /**
   * The pool for these connection settings. An `owner` (the controller uses the object's
   * namespace/name) holds one pool at a time: when its settings change, as when the TLS or proxy
   * Secret it was built from is rotated, the pool it held is closed once no other owner holds
   * it. Pools asked for without an owner live until close().
   */
  dispatcher(conn: ConnectionOptions, owner?: string): Promise<Dispatcher> {
    if (this.#closed) throw new Error('transport is closed');
    const key = poolKey(conn);
    let pool = this.#pools.get(key);
    if (!pool) {
      const opened = this.#open(conn);
      pool = { dispatcher: opened, owners: new Set() };
      this.#pools.set(key, pool);
      // Settings undici refuses fail the requests that use them (awaited there), and are not kept.
      opened.catch(() => {
        if (this.#pools.get(key)?.dispatcher === opened) this.#pools.delete(key);
      });
    }
    if (owner !== undefined) {
      const before = this.#held.get(owner);
      if (before !== key) {
        if (before !== undefined) this.#drop(before, owner);
        this.#held.set(owner, key);
        pool.owners.add(owner);
      }
    }
    return pool.dispatcher;
  }

  /** The owner is gone (its object was deleted): its pool closes if nobody else holds it. */
  release(owner: string): void {
    const key = this.#held.get(owner);
    if (key === undefined) return;
    this.#held.delete(owner);
    this.#drop(key, owner);
  }

  /** The challenge `host` answered with last, so a new client can authenticate up front. */
  challenge(host: string): Challenge | undefined {
    return this.#challenges.get(host);
  }

  learnChallenge(host: string, challenge: Challenge): void {
    this.#challenges.delete(host);
    if (this.#challenges.size >= this.#maxChallenges) {
      const oldest = this.#challenges.keys().next().value;
      if (oldest !== undefined) this.#challenges.delete(oldest);
    }
    this.#challenges.set(host, challenge);
  }

  /** Closes every pool (in-flight requests finish first) and forgets tokens and challenges. */
  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#pools.values()];
    this.#pools.clear();
    this.#held.clear();
    this.#challenges.clear();
    this.tokens.clear();
    await Promise.all(all.map((p) => p.dispatcher.then((d) => d.close()).catch(() => undefined)));
  }

  #drop(key: string, owner: string): void {
    const pool = this.#pools.get(key);
    if (!pool) return;
    pool.owners.delete(owner);
    if (pool.owners.size > 0) return;
    this.#pools.delete(key);
    this.evicted++;
    // Graceful: requests still running on the old pool complete.
    void pool.dispatcher.then((d) => d.close()).catch(() => undefined);
  }

  async #open(conn: ConnectionOptions): Promise<Dispatcher> {
    const { Agent, ProxyAgent } = await undici();
    const { tls, insecure, proxy } = conn;
    const connect = {
      ...(tls?.ca ? { ca: tls.ca } : {}),
      ...(tls?.cert && tls?.key ? { cert: tls.cert, key: tls.key } : {}),
      rejectUnauthorized: !(insecure && !tls?.ca),
    };
    if (proxy) {
      const auth = proxy.username ? `Basic ${Buffer.from(`${proxy.username}:${proxy.password ?? ''}`).toString('base64')}` : undefined;
      // Plain-HTTP registries go through the proxy as absolute-form requests: many proxies (squid's
      // default) refuse CONNECT to non-TLS ports. HTTPS registries are tunnelled with CONNECT.
      return new ProxyAgent({ uri: proxy.address, ...(auth ? { token: auth } : {}), requestTls: connect, connections: this.#connections, proxyTunnel: !insecure });
    }
    return new Agent({ connect, connections: this.#connections, keepAliveTimeout: 30_000 });
  }
}

/** A digest of the settings, so key material never sits in a map key. */
function poolKey(conn: ConnectionOptions): string {
  const { tls, insecure, proxy } = conn;
  // Nothing secret to hide (the usual case): no hash on every reconcile.
  if (!tls?.ca && !tls?.cert && !tls?.key && !proxy) return insecure ? 'plain:insecure' : 'plain';
  return createHash('sha256')
    .update(JSON.stringify([String(tls?.ca ?? ''), String(tls?.cert ?? ''), String(tls?.key ?? ''), insecure, proxy ?? null]))
    .digest('hex');
}
