// A map bounded by the bytes its entries cost, oldest first out: what the artifact, verification
// and revocation caches share. Callers say what an entry costs; `touch` makes the eviction order
// least-recently-used instead of oldest-inserted.
export class ByteBoundedMap<V> {
  readonly #entries = new Map<string, { value: V; bytes: number }>();
  #bytes = 0;
  readonly maxBytes: number;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: string): V | undefined {
    return this.#entries.get(key)?.value;
  }

  /** Moves an entry to the newest end (Map keeps insertion order). */
  touch(key: string): void {
    const e = this.#entries.get(key);
    if (!e) return;
    this.#entries.delete(key);
    this.#entries.set(key, e);
  }

  /** Replaces the entry, evicting the oldest until it fits; one larger than the whole budget is not kept. */
  set(key: string, value: V, bytes: number): void {
    this.delete(key);
    if (bytes > this.maxBytes) return;
    for (const oldest of this.#entries.keys()) {
      if (this.#bytes + bytes <= this.maxBytes) break;
      this.delete(oldest);
    }
    this.#entries.set(key, { value, bytes });
    this.#bytes += bytes;
  }

  delete(key: string): void {
    const e = this.#entries.get(key);
    if (!e) return;
    this.#bytes -= e.bytes;
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }
}
