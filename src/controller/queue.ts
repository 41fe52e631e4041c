// A work queue keyed by object: deduplicates, never runs one key twice at once (a key added
// while in flight runs again afterwards), applies per-key exponential backoff on failure and
// delayed re-adds for interval requeues.

export interface QueueOptions {
  workers: number;
  minRetryMs: number;
  maxRetryMs: number;
}

export type Outcome = { requeueAfterMs?: number } | { error: Error };

export class WorkQueue {
  #pending = new Set<string>();
  #order: string[] = [];
  #inFlight = new Set<string>();
  #dirty = new Set<string>();
  #timers = new Map<string, { at: number; t: NodeJS.Timeout }>();
  #failures = new Map<string, number>();
  #wake: (() => void)[] = [];
  #stopped = false;
  #workers: Promise<void>[] = [];
  readonly opts: QueueOptions;
  readonly process: (key: string) => Promise<Outcome>;

  constructor(opts: QueueOptions, process: (key: string) => Promise<Outcome>) {
    this.opts = opts;
    this.process = process;
  }

  start(): void {
    for (let i = 0; i < this.opts.workers; i++) this.#workers.push(this.#worker());
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const { t } of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    for (const w of this.#wake.splice(0)) w();
    await Promise.all(this.#workers);
  }

  /** Adds a key now; cancels a pending delayed add (the work happens now instead). */
  add(key: string): void {
    if (this.#stopped) return;
    const timer = this.#timers.get(key);
    if (timer) {
      clearTimeout(timer.t);
      this.#timers.delete(key);
    }
    if (this.#inFlight.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#pending.has(key)) return;
    this.#pending.add(key);
    this.#order.push(key);
    this.#wake.shift()?.();
  }

  /** Adds a key after `ms`, keeping the earlier of two delayed adds. */
  addAfter(key: string, ms: number): void {
    if (this.#stopped) return;
    if (ms <= 0) return this.add(key);
    const at = Date.now() + ms;
    const prev = this.#timers.get(key);
    if (prev && prev.at <= at) return;
    if (prev) clearTimeout(prev.t);
    const t = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, ms);
    t.unref?.();
    this.#timers.set(key, { at, t });
  }

  /** Drops a key's pending work and failure history (object deleted). */
  forget(key: string): void {
    const timer = this.#timers.get(key);
    if (timer) clearTimeout(timer.t);
    this.#timers.delete(key);
    this.#failures.delete(key);
  }

  /** Backoff for the n-th consecutive failure: min * 2^(n-1), capped. */
  backoff(failures: number): number {
    return Math.min(this.opts.minRetryMs * 2 ** Math.max(0, failures - 1), this.opts.maxRetryMs);
  }

  get length(): number {
    return this.#pending.size;
  }

  async #next(): Promise<string | undefined> {
    while (!this.#stopped) {
      const key = this.#order.shift();
      if (key !== undefined) {
        this.#pending.delete(key);
        return key;
      }
      await new Promise<void>((r) => this.#wake.push(r));
    }
    return undefined;
  }

  async #worker(): Promise<void> {
    for (;;) {
      const key = await this.#next();
      if (key === undefined) return;
      this.#inFlight.add(key);
      let outcome: Outcome;
      try {
        outcome = await this.process(key);
      } catch (err) {
        outcome = { error: err as Error };
      }
      this.#inFlight.delete(key);
      if ('error' in outcome) {
        const n = (this.#failures.get(key) ?? 0) + 1;
        this.#failures.set(key, n);
        this.addAfter(key, this.backoff(n));
      } else {
        this.#failures.delete(key);
        if (outcome.requeueAfterMs !== undefined) this.addAfter(key, outcome.requeueAfterMs);
      }
      if (this.#dirty.delete(key)) this.add(key);
    }
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
