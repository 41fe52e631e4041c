// The work queue, shaped like client-go's util/workqueue: the queue only orders keys (dedupe,
// one holder per key, delayed adds); backoff comes from a separate rate limiter; time from an
// injected clock; the worker loop that calls the reconciler lives in the manager.

/** Time source, injectable so tests can drive delays without sleeping. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** How long a key waits before its next retry; `forget` resets it after a success. */
export interface RateLimiter {
  when(key: string): number;
  forget(key: string): void;
  retries(key: string): number;
}

/** Per-key exponential backoff: base * 2^(n-1) for the n-th consecutive failure, capped. */
export class ExponentialRateLimiter implements RateLimiter {
  readonly baseMs: number;
  readonly maxMs: number;
  #failures = new Map<string, number>();
  constructor(baseMs: number, maxMs: number) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
  }
  when(key: string): number {
    const n = (this.#failures.get(key) ?? 0) + 1;
    this.#failures.set(key, n);
    return Math.min(this.baseMs * 2 ** (n - 1), this.maxMs);
  }
  forget(key: string): void {
    this.#failures.delete(key);
  }
  retries(key: string): number {
    return this.#failures.get(key) ?? 0;
  }
}

/** Hooks for the controller-runtime queue metrics. */
export interface QueueMetrics {
  added(): void;
  depth(n: number): void;
  /** Seconds a key waited between being added and being handed to a worker. */
  queued(seconds: number): void;
  /** Seconds a worker held a key. */
  worked(seconds: number): void;
  retried(): void;
}

export interface QueueOptions {
  rateLimiter: RateLimiter;
  clock?: Clock;
  metrics?: QueueMetrics;
  /**
   * Delayed adds of at least ten times this are rounded up to a multiple of it on the clock, so
   * keys due within the same slot share one timer and run back to back (0: every add is exact).
   * A process woken once per key per interval pays a cold start each time; woken once per slot,
   * it pays it once for the slot (timer slack, as in Linux's timer_slack or Go's timer batching).
   */
  alignMs?: number;
}

export class WorkQueue {
  readonly #clock: Clock;
  readonly #limiter: RateLimiter;
  readonly #metrics: QueueMetrics | undefined;
  #order: string[] = [];
  /** Keys waiting to be processed, with the time they were added. */
  #dirty = new Map<string, number>();
  /** Keys held by a worker, with the time they were handed out. */
  #processing = new Map<string, number>();
  /** When each delayed key is due; the keys due at one time share a slot and its timer. */
  #delayed = new Map<string, number>();
  #slots = new Map<number, { keys: Set<string>; handle: unknown }>();
  readonly #alignMs: number;
  #getters: ((key: string | undefined) => void)[] = [];
  #shuttingDown = false;

  constructor(opts: QueueOptions) {
    this.#clock = opts.clock ?? realClock;
    this.#limiter = opts.rateLimiter;
    this.#metrics = opts.metrics;
    this.#alignMs = opts.alignMs ?? 0;
  }

  /** Adds a key now. A key already waiting is not added twice; a key being processed is processed again after `done`. A delayed add of the key is cancelled: the work happens now. */
  add(key: string): void {
    if (this.#shuttingDown) return;
    this.#cancelDelayed(key);
    if (this.#dirty.has(key)) return;
    this.#metrics?.added();
    this.#dirty.set(key, this.#clock.now());
    if (this.#processing.has(key)) return;
    this.#push(key);
  }

  /** Adds a key after `ms`; of two delayed adds the earlier wins. */
  addAfter(key: string, ms: number): void {
    if (this.#shuttingDown) return;
    if (ms <= 0) return this.add(key);
    const now = this.#clock.now();
    const align = this.#alignMs;
    const at = align > 0 && ms >= 10 * align ? Math.ceil((now + ms) / align) * align : now + ms;
    const prev = this.#delayed.get(key);
    if (prev !== undefined && prev <= at) return;
    if (prev !== undefined) this.#cancelDelayed(key);
    this.#delayed.set(key, at);
    const slot = this.#slots.get(at);
    if (slot) {
      slot.keys.add(key);
      return;
    }
    const keys = new Set([key]);
    const handle = this.#clock.setTimeout(() => {
      this.#slots.delete(at);
      for (const k of keys) this.#delayed.delete(k);
      for (const k of keys) this.add(k);
    }, at - now);
    this.#slots.set(at, { keys, handle });
  }

  /** Adds a key after the rate limiter's backoff (at least `minMs`, e.g. a registry's Retry-After). */
  addRateLimited(key: string, minMs = 0): void {
    this.#metrics?.retried();
    this.addAfter(key, Math.max(this.#limiter.when(key), minMs));
  }

  /** Resets a key's backoff after a success. */
  forget(key: string): void {
    this.#limiter.forget(key);
  }

  /** Drops a key's delayed add and backoff (the object is gone). */
  remove(key: string): void {
    this.#cancelDelayed(key);
    this.#limiter.forget(key);
  }

  /** Waits for the next key; undefined once the queue is shut down. The caller must call `done`. */
  get(): Promise<string | undefined> {
    if (this.#shuttingDown) return Promise.resolve(undefined);
    const key = this.#order.shift();
    if (key !== undefined) return Promise.resolve(this.#handOut(key));
    return new Promise((resolve) => this.#getters.push(resolve));
  }

  /** Marks a key as no longer processed; if it was added meanwhile it is queued again. */
  done(key: string): void {
    const since = this.#processing.get(key);
    if (since === undefined) return;
    this.#processing.delete(key);
    this.#metrics?.worked((this.#clock.now() - since) / 1000);
    if (this.#dirty.has(key) && !this.#shuttingDown) this.#push(key);
  }

  /** Stops handing out keys; waiting `get` calls resolve with undefined. */
  shutDown(): void {
    this.#shuttingDown = true;
    for (const { handle } of this.#slots.values()) this.#clock.clearTimeout(handle);
    this.#slots.clear();
    this.#delayed.clear();
    for (const g of this.#getters.splice(0)) g(undefined);
  }

  /** Keys waiting to be processed. */
  get length(): number {
    return this.#order.length;
  }

  /** Keys with a delayed add pending (interval requeues and backoffs). */
  get delayed(): number {
    return this.#delayed.size;
  }

  #push(key: string): void {
    const getter = this.#getters.shift();
    if (getter) getter(this.#handOut(key));
    else {
      this.#order.push(key);
      this.#metrics?.depth(this.#order.length);
    }
  }

  #handOut(key: string): string {
    const added = this.#dirty.get(key) ?? this.#clock.now();
    this.#dirty.delete(key);
    const now = this.#clock.now();
    this.#processing.set(key, now);
    this.#metrics?.queued((now - added) / 1000);
    this.#metrics?.depth(this.#order.length);
    return key;
  }

  #cancelDelayed(key: string): void {
    const at = this.#delayed.get(key);
    if (at === undefined) return;
    this.#delayed.delete(key);
    const slot = this.#slots.get(at);
    if (!slot) return;
    slot.keys.delete(key);
    if (slot.keys.size > 0) return;
    this.#clock.clearTimeout(slot.handle);
    this.#slots.delete(at);
  }
}

/** Spreads requeues by ±pct% so objects with the same interval do not synchronise. */
export function jitter(ms: number, pct: number, rnd = Math.random): number {
  const f = (pct / 100) * (2 * rnd() - 1);
  return Math.max(1, Math.round(ms * (1 + f)));
}

/** Parses a Go duration as the CRD allows ("1m30s", "500ms", "1.5h"). */
export function parseDuration(s: string): number {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let total = 0;
  let consumed = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    const n = Number(m[1]);
    total += n * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const)[m[2] as 'ms' | 's' | 'm' | 'h'];
    consumed += m[0].length;
  }
  if (consumed !== s.length || s.length === 0) throw new Error(`invalid duration '${s}'`);
  return total;
}

/** Formats milliseconds as a Go duration, for messages ("5s", "1m30s", "750ms"). */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  let s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s || (!h && !m) ? `${s}s` : ''}`;
}
