// The token cache shared by every object: cloud access tokens and the registry credentials made
// from them. Semantics follow Flux's pkg/cache TokenCache: LRU bounded by --token-cache-max-size,
// an entry expires at 80 % of the token's lifetime (kubelet's rotation threshold) and never later
// than --token-cache-max-duration (capped at one hour). Concurrent misses of one key share a
// single fetch, so a burst of reconciles after start-up asks the cloud once.

export const TokenMaxDurationMs = 60 * 60 * 1000;

export interface CacheRecorder {
  /** A lookup answered from the cache (hit) or by a fetch (miss). */
  event(kind: 'hit' | 'miss', provider: string): void;
  /** An entry dropped to make room (size bound), not one that merely expired. */
  eviction(): void;
  items(n: number): void;
}

interface Entry<T> {
  value: T;
  expiresAt: number;
}

export interface TokenCacheOptions {
  maxSize: number;
  maxDurationMs?: number;
  recorder?: CacheRecorder;
  now?: () => number;
}

export class TokenCache {
  readonly maxSize: number;
  readonly maxDurationMs: number;
  readonly #recorder: CacheRecorder | undefined;
  readonly #now: () => number;
  // Map iteration order is insertion order: re-inserting on use keeps the least recently used first.
  readonly #entries = new Map<string, Entry<unknown>>();
  readonly #inflight = new Map<string, Promise<unknown>>();

  constructor(opts: TokenCacheOptions) {
    this.maxSize = opts.maxSize;
    this.maxDurationMs = Math.min(opts.maxDurationMs ?? TokenMaxDurationMs, TokenMaxDurationMs);
    this.#recorder = opts.recorder;
    this.#now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * The cached value for `key`, or the result of `fetch` (stored until 80 % of `expiresAt`).
   * Errors are not cached: the next call tries again.
   */
  async getOrSet<T>(key: string, provider: string, fetch: () => Promise<{ value: T; expiresAt: number }>): Promise<T> {
    const now = this.#now();
    const e = this.#entries.get(key);
    if (e && e.expiresAt > now) {
      this.#entries.delete(key);
      this.#entries.set(key, e);
      this.#recorder?.event('hit', provider);
      return e.value as T;
    }
    if (e) {
      this.#entries.delete(key);
      this.#recorder?.items(this.#entries.size);
    }
    const pending = this.#inflight.get(key);
    if (pending) {
      this.#recorder?.event('hit', provider);
      return pending as Promise<T>;
    }
    this.#recorder?.event('miss', provider);
    const p = (async () => {
      const started = this.#now();
      const { value, expiresAt } = await fetch();
      if (this.maxSize > 0) this.#store(key, value, started, expiresAt);
      return value;
    })();
    this.#inflight.set(key, p);
    try {
      return await p;
    } finally {
      this.#inflight.delete(key);
    }
  }

  #store(key: string, value: unknown, started: number, expiresAt: number): void {
    const lifetime = Math.max(0, expiresAt - started);
    const ttl = Math.min(Math.floor(lifetime * 0.8), this.maxDurationMs);
    if (ttl <= 0) return;
    this.#entries.delete(key);
    while (this.#entries.size >= this.maxSize) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
      this.#recorder?.eviction();
    }
    this.#entries.set(key, { value, expiresAt: started + ttl });
    this.#recorder?.items(this.#entries.size);
  }

  clear(): void {
    this.#entries.clear();
    this.#recorder?.items(0);
  }
}
